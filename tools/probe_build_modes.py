"""Compares the kernels of one program built by NVRTC and by nvcc (two-part): registers, local
memory, shared memory, SASS, and each kernel's time when launched directly (CuPy), beside the
parpy call's time in each mode. Usage: python3 tools/probe_build_modes.py OUTDIR"""
import glob, os, subprocess, sys, tempfile, json
out = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "benchmarks"))
if len(sys.argv) > 2:  # child: one build mode, own cache
    import torch, parpy
    from kernels import layer_norm
    N = M = 8192
    x = torch.randn(N, M, device="cuda"); g = torch.randn(M, device="cuda"); b = torch.randn(M, device="cuda")
    o = parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(1024)}); o.backend = parpy.CompileBackend.Cuda
    y = torch.empty_like(x)
    def t(fn, reps=50):
        fn(); torch.cuda.synchronize()
        s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True); r = []
        for _ in range(7):
            s.record()
            for _ in range(reps): fn()
            e.record(); e.synchronize(); r.append(s.elapsed_time(e) / reps)
        return min(r)
    ms = t(lambda: layer_norm(x, g, b, y, N, M, opts=o))
    ref = torch.nn.functional.layer_norm(x, (M,), g, b, eps=1e-5)
    print(json.dumps({"mode": sys.argv[2], "ms": ms, "err": float((y - ref).abs().max())}))
    sys.exit(0)
import cupy, torch
res = {}
for mode in ["nvrtc", "two-part"]:
    cache = tempfile.mkdtemp()
    env = dict(os.environ, PARPY_CUDA_BUILD=mode, PARPY_CACHE_DIR=cache)
    r = subprocess.run([sys.executable, __file__, out, mode], env=env, capture_output=True, text=True)
    print(mode, r.stdout.strip(), r.stderr[-2000:])
    res[mode] = glob.glob(cache + "/**/*.cubin", recursive=True)
    print(mode, "cubins:", res[mode])
N = M = 8192
x = cupy.random.standard_normal((N, M), dtype=cupy.float32); g = cupy.ones(M, cupy.float32); b = cupy.zeros(M, cupy.float32)
y = cupy.empty_like(x)
for mode, files in res.items():
    for f in files:
        sass = subprocess.run(["cuobjdump", "-sass", f], capture_output=True, text=True).stdout
        open(os.path.join(out, f"{mode}.sass"), "w").write(sass)
        names = [l.split("Function :")[1].strip() for l in sass.splitlines() if "Function :" in l]
        mod = cupy.RawModule(path=f)
        for n in names:
            fn = mod.get_function(n)
            a = fn.attributes
            s, e = cupy.cuda.Event(), cupy.cuda.Event()
            fn((N,), (1024,), (x, g, b, y)); cupy.cuda.Device().synchronize()
            best = 1e9
            for _ in range(7):
                s.record()
                for _ in range(50): fn((N,), (1024,), (x, g, b, y))
                e.record(); e.synchronize(); best = min(best, cupy.cuda.get_elapsed_time(s, e) / 50)
            print(f"{mode:9s} {n:40s} {best:.3f} ms regs={a['num_regs']} local={a['local_size_bytes']} shared={a['shared_size_bytes']} "
                  f"carveout={a.get('preferred_shared_memory_carveout')} cache={a.get('cache_mode_ca')} ptx={a['ptx_version']} bin={a['binary_version']}")
