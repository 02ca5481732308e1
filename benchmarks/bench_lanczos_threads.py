"""Block Lanczos with its large products in torch's thread pool against the same in numpy's BLAS.

The Hessian-vector products run in torch (OpenMP pool); until 2026-12-05 the block recurrence's
Gram–Schmidt products and thin QR ran in numpy (OpenBLAS, a second pool). Each library's idle
threads spin for a while after a call, so alternating between the two pools on few cores makes
each wait for the other's spinning threads. ``lanczos._matmul`` now keeps those products in torch.

This script times :func:`pruning_limits.lanczos.block_lanczos` (8 probes, 150 steps, with and
without re-orthogonalisation) on the 64-24-16-10 MLP of tests/test_adaptive.py (D = 2 080,
1 400 digits samples, float64) in both variants, round-robin in every round after a warm-up
(the numpy variant swaps in numpy forms of ``lanczos``' four recurrence helpers: products,
in-place subtraction, column norms and thin QR), and prints the median over the rounds and the
median of the per-round ratios. Each wait policy runs in its own subprocess, because
``OMP_WAIT_POLICY`` is read when torch loads::

    python benchmarks/bench_lanczos_threads.py [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import runpy
import statistics
import subprocess
import sys
import time
from pathlib import Path


def measure(rounds: int, threads: int) -> dict:
    import numpy as np
    import torch

    lanczos = importlib.import_module("pruning_limits.lanczos")  # the package exports a function of that name
    from pruning_limits.hessian import HessianOperator

    torch.set_num_threads(threads)
    path = Path(__file__).resolve().parent / "slq_accuracy.py"
    model, x, y = runpy.run_path(str(path))["digits_mlp"]()  # the oracle MLP of benchmarks/slq_accuracy.py
    op = HessianOperator(model, (x, y))
    starts = lanczos.rademacher_probes(op.dim, 8, seed=0)
    helpers = ("_matmul", "_orthonormal_block", "_subtract_product", "_column_norms")
    torch_helpers = tuple(getattr(lanczos, name) for name in helpers)

    def numpy_block(vectors, tol, limit, *, overwrite=False):  # the code before 2026-12-05, in numpy's BLAS
        q, r = np.linalg.qr(vectors)
        u, singular, vt = np.linalg.svd(r)
        rank = min(int(np.sum(singular > tol)), limit)
        coupling = singular[:rank, None] * vt[:rank]
        # as lanczos._orthonormal_block: a full-rank float64 block may receive Q U in place
        if overwrite and rank == vectors.shape[1] and vectors.dtype == np.float64 and vectors.flags.c_contiguous:
            np.matmul(q, u, out=vectors)
            return vectors, coupling
        return q @ u[:, :rank], coupling

    def numpy_subtract(out, a, b):
        out -= a @ b

    numpy_helpers = (lambda a, b: a @ b, numpy_block, numpy_subtract, lambda block: np.linalg.norm(block, axis=0))
    variants = {"torch pool": torch_helpers, "numpy BLAS": numpy_helpers}
    times: dict[str, list[float]] = {f"{v}, {m}": [] for v in variants for m in ("full", "none")}
    for round_ in range(rounds + 1):
        for variant, functions in variants.items():
            for name, function in zip(helpers, functions):
                setattr(lanczos, name, function)
            for mode in ("full", "none"):
                start = time.perf_counter()
                lanczos.block_lanczos(op.matmat, op.dim, 150, starts, reorthogonalization=mode)
                if round_:  # round 0 warms up
                    times[f"{variant}, {mode}"].append(time.perf_counter() - start)
    for name, function in zip(helpers, torch_helpers):
        setattr(lanczos, name, function)
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "times": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.rounds, args.threads)))
        return
    for policy in ("unset", "PASSIVE"):
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        if policy != "unset":
            env["OMP_WAIT_POLICY"] = policy
        done = subprocess.run([sys.executable, __file__, "--child", "--rounds", str(args.rounds), "--threads", str(args.threads)],
                              capture_output=True, text=True, env=env)
        if done.returncode:
            sys.exit(f"the OMP_WAIT_POLICY={policy} child exited with status {done.returncode}:\n{done.stderr}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"torch {result['torch']}, torch threads {result['threads']}, OMP_WAIT_POLICY {policy}, "
              f"OMP_NUM_THREADS and OPENBLAS_NUM_THREADS unset, median of {args.rounds} rounds, load {os.getloadavg()[0]:.1f}")
        times = result["times"]
        for mode in ("full", "none"):
            new, old = times[f"torch pool, {mode}"], times[f"numpy BLAS, {mode}"]
            ratio = statistics.median(o / n for o, n in zip(old, new))
            print(f"  150 steps x 8 probes, reorthogonalization={mode}: torch pool {statistics.median(new):.2f} s, "
                  f"numpy BLAS {statistics.median(old):.2f} s, ratio {ratio:.1f}x")


if __name__ == "__main__":
    main()
