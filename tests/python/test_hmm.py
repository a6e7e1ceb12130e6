"""A program with the structure of the HMM forward algorithm (the original library's paper
benchmark): model parameters in a dict with 0-dimensional scalars, two alpha arrays named through
locals swapped by the parity of the time step, a log-sum-exp over five predecessors per state, and
a final log-sum-exp over a slice of the aliased local. Compared with numpy on random data."""

import numpy as np
import parpy
import pytest
from parpy.operators import exp, log, max, sum

NPRED = 5


@parpy.jit
def forward(hmm, seqs, alpha1, alpha2, result):
    parpy.label('inst')
    for inst in range(seqs["num_instances"]):
        o = seqs["data"][inst, 0]
        parpy.label('state')
        for state in range(hmm["num_states"]):
            alpha1[inst, state] = hmm["initial"][state] + hmm["output"][o, state]
        for t in range(1, seqs["maxlen"]):
            alpha_src = alpha1
            alpha_dst = alpha2
            if (t & 1) == 0:
                alpha_src = alpha2
                alpha_dst = alpha1
            if t < seqs["lens"][inst]:
                o = seqs["data"][inst, t]
                parpy.label('state')
                for state in range(hmm["num_states"]):
                    m = -parpy.operators.inf
                    for k in range(5):
                        pred = (state * 4 + k) % hmm["num_states"]
                        v = alpha_src[inst, pred] + hmm["trans"][state, k]
                        if k == 4:
                            v = v + hmm["gamma"]
                        m = max(m, v)
                    s = 0.0
                    for k in range(5):
                        pred = (state * 4 + k) % hmm["num_states"]
                        v = alpha_src[inst, pred] + hmm["trans"][state, k]
                        if k == 4:
                            v = v + hmm["gamma"]
                        s = s + exp(v - m)
                    alpha_dst[inst, state] = m + log(s) + hmm["output"][o, state]
        alpha = alpha1
        if (seqs["lens"][inst] & 1) == 0:
            alpha = alpha2
        parpy.label('state')
        maxp = max(alpha[inst, :], axis=0)
        parpy.label('state')
        psum = sum(exp(alpha[inst, :] - maxp), axis=0)
        result[inst] = maxp + log(psum)


def reference(hmm, seqs):
    n, S = seqs["num_instances"], hmm["num_states"]
    result = np.zeros(n)
    for inst in range(n):
        alpha = hmm["initial"] + hmm["output"][seqs["data"][inst, 0]]
        for t in range(1, int(seqs["lens"][inst])):
            v = np.empty((S, NPRED))
            for state in range(S):
                for k in range(NPRED):
                    v[state, k] = alpha[(state * 4 + k) % S] + hmm["trans"][state, k]
                v[state, NPRED - 1] += hmm["gamma"]
            m = v.max(axis=1)
            alpha = m + np.log(np.exp(v - m[:, None]).sum(axis=1)) + hmm["output"][seqs["data"][inst, t]]
        mx = alpha.max()
        result[inst] = mx + np.log(np.exp(alpha - mx).sum())
    return result


def make_problem(rng, n=6, S=64, maxlen=9, nsym=4):
    hmm = {
        "num_states": np.array(S, dtype=np.int64),
        "gamma": np.array(np.log(0.3), dtype=np.float64),
        "initial": np.log(rng.dirichlet(np.ones(S))),
        "output": np.log(rng.dirichlet(np.ones(S), size=nsym)),
        "trans": np.log(rng.dirichlet(np.ones(NPRED), size=S)),
    }
    lens = rng.integers(1, maxlen + 1, size=n).astype(np.int64)
    lens[0] = maxlen  # one sequence of full length, one of length 1
    lens[1] = 1
    seqs = {
        "num_instances": n,
        "maxlen": maxlen,
        "lens": lens,
        "data": rng.integers(0, nsym, size=(n, maxlen)).astype(np.int64),
    }
    return hmm, seqs


def opts_for(backend, n, S):
    opts = parpy.par({"inst": parpy.threads(n), "state": parpy.threads(S)})
    opts.backend = backend
    return opts


def test_forward_numpy(backend):
    rng = np.random.default_rng(7)
    hmm, seqs = make_problem(rng)
    n, S = seqs["num_instances"], int(hmm["num_states"])
    alpha1 = np.zeros((n, S))
    alpha2 = np.zeros((n, S))
    result = np.zeros(n)
    forward(hmm, seqs, alpha1, alpha2, result, opts=opts_for(backend, n, S))
    np.testing.assert_allclose(result, reference(hmm, seqs), rtol=1e-10, atol=1e-10)


def test_forward_torch_cuda_model():
    """The model's parameters as torch CUDA tensors, 0-dimensional scalars included."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or not parpy.backend.is_enabled(parpy.CompileBackend.Cuda):
        pytest.skip("needs torch with CUDA and the Cuda backend")
    rng = np.random.default_rng(11)
    hmm, seqs = make_problem(rng, n=5, S=128)
    n, S = seqs["num_instances"], int(hmm["num_states"])
    dev = "cuda"
    thmm = {k: torch.as_tensor(v, device=dev) for k, v in hmm.items()}
    tseqs = {k: (torch.as_tensor(v, device=dev) if isinstance(v, np.ndarray) else v) for k, v in seqs.items()}
    alpha1 = torch.zeros((n, S), dtype=torch.float64, device=dev)
    alpha2 = torch.zeros((n, S), dtype=torch.float64, device=dev)
    result = torch.zeros(n, dtype=torch.float64, device=dev)
    forward(thmm, tseqs, alpha1, alpha2, result, opts=opts_for(parpy.CompileBackend.Cuda, n, S))
    np.testing.assert_allclose(result.cpu().numpy(), reference(hmm, seqs), rtol=1e-10, atol=1e-10)
