"""Memory of SLQ against D: the engine's own bytes per weight, D = 10⁴ … 10⁸ (issue 20).

One command (from the repository root)::

    python benchmarks/bench_memory.py                         # D = 1e4, 1e5, 1e6, 1e7
    python benchmarks/bench_memory.py --dims 1e4,1e6,1e8 --dtype float32

Each run is a fresh subprocess (so that its peak resident memory, ``VmHWM``, is its own) that
builds a diagonal operator of dimension D (eigenvalues spread over [0, 1) with an atom at zero:
the products cost O(D) and hold no graph, so what is measured is the Lanczos layer, not a
network) and runs
:func:`pruning_limits.spectrum.slq` on it, ``--probes`` (default 2: the adaptive default's probes
above D = 80 000, ``spectrum.default_probes``; 1 runs the Gauss rule of one probe) × ``--steps``
steps, in two ways:

* ``none``: the block rule without re-orthogonalisation, the bounded path
  (``reorthogonalization="none"``), whose memory should be ``c · D`` at any step count;
* ``auto``: the default (``reorthogonalization="auto"``, 1 GiB budget): fully re-orthogonalised
  while the basis (``probes × steps × D`` × 8 bytes, × 4 for float32) fits with the projected
  matrix and the working blocks (``lanczos.full_block_lanczos_bytes``; one probe:
  ``lanczos.lanczos_probes_bytes``), the bounded path above.

Reported: the peak resident memory above the process's resident memory just before the run
(after a run at D = 100 that loads every module, and with the operator's own D values
allocated), in MiB and in bytes per weight, and the wall time. A network adds its model, data and gradient graph, which the
``HessianOperator`` keeps within half the budget (docs/benchmarks.md, "Engine at scale").
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the import of torch

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402


class DiagonalOperator:
    """``A = diag(values)``: products in O(D) time and no memory beyond their result."""

    def __init__(self, dim: int, dtype: torch.dtype, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        values = torch.rand(dim, generator=generator, dtype=torch.float64)
        values[: dim // 4] = 0.0  # an atom at zero, as trained networks have
        self.values = values.to(dtype)
        self.dim = dim
        self.dtype = dtype

    def matmat(self, block: Any) -> torch.Tensor:
        block = torch.as_tensor(block, dtype=self.dtype)
        return self.values[:, None] * block

    def matvec(self, vector: Any) -> torch.Tensor:
        return self.values * torch.as_tensor(vector, dtype=self.dtype)


def rss_bytes() -> int:
    """The process's current resident memory (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The process's peak resident memory (``VmHWM`` of /proc/self/status, as ``bench_hvp.peak_rss_kib``).

    ``ru_maxrss`` is inherited across fork+exec on Linux: a child would report its parent's peak.
    """
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmHWM in /proc/self/status: the peak memory needs Linux")


def run_once(
    dim: int, mode: str, dtype: str, steps: int, threads: int, probes: int = 2, budget_gib: float | None = None
) -> dict[str, Any]:
    """One SLQ run in this process: peak memory above the memory before it, and its time."""
    from pruning_limits.spectrum import slq

    torch.set_num_threads(threads)
    slq(DiagonalOperator(100, getattr(torch, dtype)), iterations=5, probes=probes, seed=0, reorthogonalization=mode)
    operator = DiagonalOperator(dim, getattr(torch, dtype))  # (the small run above loaded every module)
    before = rss_bytes()
    start = time.perf_counter()
    budget = None if budget_gib is None else int(budget_gib * 2**30)
    spectrum = slq(operator, iterations=steps, probes=probes, seed=0, reorthogonalization=mode, memory_budget=budget)
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    return {"dim": dim, "mode": mode, "dtype": dtype, "probes": probes, "steps": steps, "seconds": seconds,
            "rule": spectrum.rule,
            "reorthogonalization": spectrum.reorthogonalization, "products": int(spectrum.num_hvps),
            "rss_before_bytes": before, "peak_rss_bytes": peak, "above_bytes": max(peak - before, 0)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", default="1e4,1e5,1e6,1e7", help="comma-separated dimensions, e.g. 1e4,1e8")
    parser.add_argument("--modes", default="none,auto", help="re-orthogonalisation: none (bounded), auto (default)")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"), help="the operator's dtype")
    parser.add_argument("--steps", type=int, default=50, help="Lanczos steps per probe")
    parser.add_argument("--probes", type=int, default=2, help="probes (1: the Gauss rule of one probe)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-budget", type=float, default=None, metavar="GIB", help="slq's memory_budget (default: its own)")
    parser.add_argument("--json", default=None, help="write the records to this file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        dim, mode = args.child.split(":")
        print(json.dumps(run_once(int(dim), mode, args.dtype, args.steps, args.threads, args.probes, args.memory_budget)))
        return
    dims = [int(float(d)) for d in args.dims.split(",")]
    print(f"threads {args.threads}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, torch {torch.__version__}, "
          f"{args.dtype} operator, {args.probes} probes x {args.steps} steps, load average {os.getloadavg()[0]:.1f}",
          flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    records = []
    for mode in args.modes.split(","):
        for dim in dims:
            command = [sys.executable, __file__, "--child", f"{dim}:{mode}", "--dtype", args.dtype,
                       "--steps", str(args.steps), "--threads", str(args.threads), "--probes", str(args.probes)]
            if args.memory_budget is not None:
                command += ["--memory-budget", str(args.memory_budget)]
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise SystemExit(f"D = {dim} ({mode}) failed:\n{done.stderr[-2000:]}")
            record = json.loads(done.stdout.strip().splitlines()[-1])
            records.append(record)
            print(f"{mode:>4}  D = {dim:>11,}  {record['rule']} {record['reorthogonalization']:>4}  {record['seconds']:7.1f} s  "
                  f"{record['above_bytes'] / 2**20:9.1f} MiB above the operator  "
                  f"{record['above_bytes'] / dim:6.1f} bytes per weight", flush=True)
    if args.json:
        from pruning_limits.report import write_json

        write_json(args.json, {"threads": args.threads, "records": records})  # atomic: a failed run leaves no half-written file


if __name__ == "__main__":
    main()
