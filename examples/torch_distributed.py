"""parpy kernels inside a torch.distributed job: one process per GPU, each running a parpy kernel on
its own GPU between collectives (NCCL), the way users go past one GPU. Without a GPU, two CPU
processes do the same over gloo with the Cpu backend. The result is compared with torch.

Run: python examples/torch_distributed.py [processes]
(default: one process per GPU, or 2 CPU processes where there is no GPU)
"""

import os
import socket
import sys

import parpy
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

N, M = 256, 1024


@parpy.jit
def axpy_rows(x, y, a, N, M):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        for j in range(M):
            y[i, j] = a * x[i, j] + y[i, j]


def rank_data(rank):
    """The same random x for a rank in every process."""
    return torch.randn(N, M, generator=torch.Generator().manual_seed(rank))


def run(rank, world, port, use_cuda):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    if use_cuda:
        torch.cuda.set_device(rank)
        device, backend = torch.device("cuda", rank), "nccl"
        opts = parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(M)})
        opts.backend = parpy.CompileBackend.Cuda
    else:
        device, backend = torch.device("cpu"), "gloo"
        opts = parpy.par({"rows": parpy.threads(1)})
        opts.backend = parpy.CompileBackend.Cpu
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        x = rank_data(rank).to(device)
        y = torch.ones(N, M, device=device)
        # The kernel runs on the GPU that holds x and y (this rank's), on torch's current stream.
        axpy_rows(x, y, 2.0, N, M, opts=opts)
        dist.all_reduce(y)  # the sum over the ranks
        axpy_rows(x, y, -1.0, N, M, opts=opts)  # and once more after the collective
        want = sum(2.0 * rank_data(r) + 1.0 for r in range(world)) - rank_data(rank)
        torch.testing.assert_close(y.cpu(), want, rtol=1e-5, atol=1e-5)
        dist.barrier()
        if rank == 0:
            where = f"{world} GPUs" if use_cuda else f"{world} CPU processes"
            print(f"{where} ({backend}): parpy kernels between collectives, equal to torch")
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    use_cuda = torch.cuda.is_available() and parpy.backend.is_enabled(parpy.CompileBackend.Cuda)
    world = int(sys.argv[1]) if len(sys.argv) > 1 else (torch.cuda.device_count() if use_cuda else 2)
    if use_cuda and world > torch.cuda.device_count():
        sys.exit(f"NCCL needs one GPU per process: {world} processes, {torch.cuda.device_count()} GPUs")
    mp.spawn(run, args=(world, free_port(), use_cuda), nprocs=world)


if __name__ == "__main__":
    main()
