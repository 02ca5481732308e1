"""Speed and memory of the Hessian engine against PyHessian's data-loader product.

One command (from the repository root)::

    python benchmarks/bench_hvp.py            # add --threads N, --repeats R, --json FILE

For an MLP of 330 240 weights (64→1024→256→10) and a small CNN on scikit-learn's digits
(1 400 training samples, DataLoader with batch 128, float32, random initialisation: the cost
of a product does not depend on the weights), it reports the median wall time over
``--repeats`` rounds after one warm-up (all measured calls run round-robin in each round, so
that every round sees the same load; ratios are medians of per-round ratios) of

* one full-data gradient (the unit of cost),
* one Hessian-vector product of this engine (``matvec``, method chosen by ``auto``; each
  method forced with ``--forced``), and per vector of a batched ``matmat`` of 8 vectors,
* one product of PyHessian 0.1's ``hessian.dataloader_hv_product`` on the same DataLoader,

and the peak resident memory (``VmHWM`` of a fresh subprocess) of a 128-step Lanczos run
(engine construction included) minus that of the same process that only loads the model and
data. Both engines get every
parameter (``params="all"``) so they compute the same product.
"""

from __future__ import annotations

import os

os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # must precede the import of torch

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from pruning_limits.hessian import HessianOperator  # noqa: E402
from pruning_limits.lanczos import lanczos  # noqa: E402

BATCH_SIZE = 128
TRAIN_SAMPLES = 1400
LANCZOS_STEPS = 128
BLOCK = 8


def build(kind: str) -> tuple[nn.Module, DataLoader]:
    """The benchmark model (seeded) and the digits DataLoader (batch 128, fixed order)."""
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x[:TRAIN_SAMPLES] / 16.0, dtype=torch.float32)
    y = torch.tensor(y[:TRAIN_SAMPLES])
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 10))
    elif kind == "cnn":
        x = x.reshape(-1, 1, 8, 8)
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
        )
    else:
        raise SystemExit(f"unknown model {kind!r}: expected mlp or cnn")
    return model, DataLoader(TensorDataset(x, y), batch_size=BATCH_SIZE, shuffle=False)


def interleaved_times(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Wall times of each function, run round-robin ``repeats`` times after one warm-up each.

    Interleaving makes every round see the same machine load, so per-round ratios stay
    meaningful on a shared machine.
    """
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def full_gradient(model: nn.Module, loader: DataLoader) -> None:
    """One full-data gradient of the mean loss: batches weighted by their size."""
    model.zero_grad()
    total = len(loader.dataset)
    for x, y in loader:
        (nn.functional.cross_entropy(model(x), y) * (len(x) / total)).backward()


def time_model(kind: str, repeats: int, forced: bool) -> dict[str, Any]:
    import pyhessian

    model, loader = build(kind)
    dim = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(dim, generator=gen)
    V = torch.randn(dim, BLOCK, generator=gen)
    row: dict[str, Any] = {"model": kind, "dim": dim}
    start = time.perf_counter()
    op = HessianOperator(model, loader, params="all")
    row["engine_setup_s"] = time.perf_counter() - start
    row["engine_methods"] = op.methods
    row["engine_caches"] = {"gradient_graph": op._graph is not None, "linearized": op._linearized is not None}
    fns: dict[str, Callable[[], Any]] = {
        "gradient": lambda: full_gradient(model, loader),
        "engine_matvec": lambda: op.matvec(v),
        "engine_matmat": lambda: op.matmat(V),
    }
    for method in ("double-backward", "forward-over-reverse") if forced else ():
        fixed = HessianOperator(model, loader, params="all", method=method)
        fns[f"{method}_matvec"] = lambda f=fixed: f.matvec(v)
        fns[f"{method}_matmat"] = lambda f=fixed: f.matmat(V)
    model.eval()
    ph = pyhessian.hessian(model, nn.CrossEntropyLoss(), dataloader=loader, cuda=False)
    pieces = [t.view_as(p) for t, p in zip(torch.split(v, [p.numel() for p in ph.params]), ph.params)]
    fns["pyhessian_dataloader"] = lambda: ph.dataloader_hv_product(pieces)

    times = interleaved_times(fns, repeats)
    for name in times:
        if name.endswith("_matmat"):
            times[name] = [t / BLOCK for t in times[name]]
    for name, values in times.items():
        suffix = "_per_vector_s" if name.endswith("_matmat") else "_s"
        row[name + suffix] = statistics.median(values)
        # ratios per round (same load), then the median over rounds
        row[name + "_x_gradient"] = statistics.median(t / g for t, g in zip(values, times["gradient"]))
    for name in ("engine_matvec", "engine_matmat"):
        row[f"speedup_{name}"] = statistics.median(
            p / t for p, t in zip(times["pyhessian_dataloader"], times[name])
        )

    _, theirs = ph.dataloader_hv_product(pieces)
    theirs = torch.cat([t.reshape(-1) for t in theirs])
    row["max_rel_diff_vs_pyhessian"] = float((op.matvec(v) - theirs).norm() / theirs.norm())
    model.zero_grad(set_to_none=True)
    return row


def peak_memory_child(kind: str, run: bool, threads: int) -> None:
    """Subprocess body: load model and data, optionally run 128 Lanczos steps; print the peak RSS."""
    torch.set_num_threads(threads)
    model, loader = build(kind)
    elapsed = 0.0
    if run:
        start = time.perf_counter()
        op = HessianOperator(model, loader)
        lanczos(op.matvec, op.dim, LANCZOS_STEPS, seed=0)
        elapsed = time.perf_counter() - start
    print(json.dumps({"peak_kib": peak_rss_kib(), "seconds": elapsed}))


def peak_rss_kib() -> int:
    """Peak resident memory of this process in KiB.

    ``VmHWM`` of /proc/self/status belongs to the current program image; ``ru_maxrss`` is
    inherited across fork+exec on Linux and would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_memory(kind: str, threads: int) -> dict[str, float]:
    def child(run: bool) -> dict[str, float]:
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--threads", str(threads)] + (["--run"] if run else []),
            check=True, capture_output=True, text=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    base, full = child(False), child(True)
    return {
        "lanczos128_peak_mib": (full["peak_kib"] - base["peak_kib"]) / 1024,
        "baseline_rss_mib": base["peak_kib"] / 1024,
        "lanczos128_seconds": full["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up (default 5)")
    parser.add_argument("--models", default="mlp,cnn", help="comma-separated: mlp, cnn")
    parser.add_argument("--forced", action="store_true", help="also time each method forced (slower)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        peak_memory_child(args.child, args.run, args.threads)
        return

    torch.set_num_threads(args.threads)
    settings = {
        "torch": torch.__version__,
        "torch.get_num_threads()": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "OMP_WAIT_POLICY": os.environ["OMP_WAIT_POLICY"],
        "cpu_count": os.cpu_count(),
        "repeats": args.repeats,
    }
    print("thread settings:", json.dumps(settings))
    rows = []
    for kind in args.models.split(","):
        row = time_model(kind, args.repeats, args.forced)
        row.update(peak_memory(kind, args.threads))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    print(f"\nmedian over {args.repeats} interleaved rounds; ratios are medians of per-round ratios\n")
    print("| model | D | gradient (ms) | engine matvec (ms, x gradient) | engine matmat per vector (ms, x gradient) "
          f"| PyHessian dataloader (ms, x gradient) | speed-up over PyHessian: matvec / matmat "
          f"| Lanczos {LANCZOS_STEPS}: extra peak RSS (MiB), time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['dim']:,} | {1e3 * r['gradient_s']:.1f} "
            f"| {1e3 * r['engine_matvec_s']:.1f} ({r['engine_matvec_x_gradient']:.2f}x) "
            f"| {1e3 * r['engine_matmat_per_vector_s']:.1f} ({r['engine_matmat_x_gradient']:.2f}x) "
            f"| {1e3 * r['pyhessian_dataloader_s']:.1f} ({r['pyhessian_dataloader_x_gradient']:.2f}x) "
            f"| {r['speedup_engine_matvec']:.2f}x / {r['speedup_engine_matmat']:.2f}x "
            f"| {r['lanczos128_peak_mib']:.0f}, {r['lanczos128_seconds']:.1f} |"
        )
    for r in rows:
        print(f"\n{r['model']}: auto picked {r['engine_methods']} (caches {r['engine_caches']}), "
              f"setup {r['engine_setup_s']:.2f} s, "
              f"max rel. difference to PyHessian {r['max_rel_diff_vs_pyhessian']:.1e}, "
              f"baseline RSS {r['baseline_rss_mib']:.0f} MiB")
        for method in ("double-backward", "forward-over-reverse"):
            if f"{method}_matvec_s" in r:
                print(f"  forced {method}: matvec {1e3 * r[f'{method}_matvec_s']:.1f} ms "
                      f"({r[f'{method}_matvec_x_gradient']:.2f}x gradient), matmat "
                      f"{1e3 * r[f'{method}_matmat_per_vector_s']:.1f} ms per vector "
                      f"({r[f'{method}_matmat_x_gradient']:.2f}x gradient)")
    if args.json:
        from pruning_limits.report import write_json

        write_json(args.json, {"settings": settings, "rows": rows})


if __name__ == "__main__":
    main()
