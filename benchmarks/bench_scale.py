"""The engine at scale: time to a prediction, products, peak memory and accuracy, D = 10⁴ … 10⁷.

One command (from the repository root)::

    python benchmarks/bench_scale.py                      # every case, 2 threads, 3 repeats
    python benchmarks/bench_scale.py --cases digits-mlp1000 --repeats 1 --threads 2
    python benchmarks/bench_scale.py --quick              # tiny settings, to check the script
    python benchmarks/bench_scale.py --cases cifar-resnet20-sub --operator double-backward,auto
    python benchmarks/bench_scale.py --cases cifar-resnet20-sub,cifar-resnet20 --operator double-backward --dtype float32
    python benchmarks/bench_scale.py --cases cifar-resnet20-l1 --repeats 1 --dtype float32 --memory-budget 2 --no-reference

Each case trains (once, cached in ``--cache``) an l1-regularised network, then, in a fresh
subprocess per run (so that the peak resident memory, ``VmHWM``, is the run's own):

* **adaptive**: ``predict_limit`` with the command line's defaults (adaptive SLQ at
  ``adaptive.DEFAULT_TOLERANCE``, ``spectrum.default_probes(D)``, the block rule, without
  re-orthogonalisation above the 1 GiB budget; the gradient term on; ε = batch-std), on the
  case's Hessian subset where it has one (``predict_limit``'s ``hessian_samples``, e.g. ``cifar-resnet20-sub``);
* **reference**: a fixed run costing 4× the adaptive run's products (twice the probes, twice
  the steps; fully re-orthogonalised where it fits) on the same data, for ``s*``;
* **PyHessian** (``--pyhessian``, the MLPs): PyHessian 0.1's ``density(iter=100, n_v=1)`` (its
  defaults) on a float64 copy of the model, ``s*`` from its nodes and weights. PyHessian 0.1
  calls ``torch.eig``, which torch 2 removed; the child process supplies it (``_legacy_eig``:
  ``torch.linalg.eigh`` of PyHessian's symmetric tridiagonal matrix) and records that it did.

``--operator METHODS`` instead times building :class:`~pruning_limits.hessian.HessianOperator`
with each method on the case's Hessian samples (in ``--dtype``) and two 2-vector products after it,
counts one product's floating-point operations (``torch.utils.flop_counter``) and prints the
rate beside that of a 4096² matrix product, the machine's dense rate (``cifar-resnet20``: all
10 000 samples).

``--dtype`` is the dtype of the analysed copy in the adaptive runs (and ``--operator``): ``auto``
(the default) picks it as the command line's ``--dtype auto`` does
(``pruning_limits.devices.analysis_dtype``: float64 up to 100 000 parameters, float32 above);
the Lanczos recurrence stays float64, its stored basis follows the products (float32 for
float32 products since 2026-12-05, ``pruning_limits.lanczos.block_lanczos``). ``--reference-dtype`` sets the
reference run's dtype (default float64).

Reported: median wall time over ``--repeats`` (the first run's products and memory), threads,
``OMP_WAIT_POLICY=PASSIVE``, and the load average, because the machine may be shared. The ResNets are
CIFAR-style ResNet-20 (He et al. 2016, §4.2: 3 stages of 3 basic blocks, 16/32/64 channels,
0.27 M weights) and ResNet-18 (the ImageNet stages with a 3×3 stem, 11.2 M weights) on
32×32×3 images generated here (class-dependent means plus noise; no download is possible).
They come from ``pruning_limits.models`` when it has them (``resnet20``, ``resnet18``), else
from the definitions below, which the benchmark records as ``"model source"``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the import of torch

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from bench_memory import peak_rss_bytes  # noqa: E402  (this folder, the script's own, is on sys.path)


@dataclass(frozen=True)
class Case:
    """A benchmark network: model spec, data, training epochs, Hessian samples."""

    name: str
    model: str
    data: str
    epochs: int
    hessian_samples: int | None = None
    pyhessian: bool = False
    train_samples: int | None = None  # for the generated images
    l1: float = 1e-4  # λ of the cached training (fixed before the run, not tuned on its result)


CASES = {
    "digits-mlp32": Case("digits-mlp32", "mlp:32", "digits", 200),
    "digits-mlp100": Case("digits-mlp100", "mlp:100,100", "digits", 200, pyhessian=True),
    "mnist1d-mlp256": Case("mnist1d-mlp256", "mlp:256,256", "mnist1d", 60, pyhessian=True),
    "digits-mlp1000": Case("digits-mlp1000", "mlp:1000,1000", "digits", 40, pyhessian=True),
    "cifar-resnet20": Case("cifar-resnet20", "resnet20", "images", 1, hessian_samples=None, train_samples=10_000),
    "cifar-resnet20-sub": Case("cifar-resnet20-sub", "resnet20", "images", 1, hessian_samples=256, train_samples=10_000),
    # the same data and Hessian subset after 20 epochs at λ = 1e-3 (the suite's fixed λ before λ auto,
    # and that of its patterns-resnet20 row): a network a user brought towards the regime
    "cifar-resnet20-l1": Case("cifar-resnet20-l1", "resnet20", "images", 20, hessian_samples=256, train_samples=10_000, l1=1e-3),
    "cifar-resnet18": Case("cifar-resnet18", "resnet18", "images", 1, hessian_samples=128, train_samples=1_000),
}
DEFAULT_CASES = ("digits-mlp100", "mnist1d-mlp256", "digits-mlp1000", "cifar-resnet20-sub")
QUICK = Case("quick", "mlp:32", "digits", 20, pyhessian=True)


# --------------------------------------------------------------------------- ResNets (fallback)


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class _ResNet(nn.Module):
    def __init__(self, widths: tuple[int, ...], blocks: int, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, cin = [], widths[0]
        for i, width in enumerate(widths):
            for j in range(blocks):
                layers.append(_Basic(cin, width, 2 if (i > 0 and j == 0) else 1))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


def resnet(name: str) -> tuple[nn.Module, str]:
    """``(model, source)``: the zoo's ResNet when ``pruning_limits.models`` has it, else the fallback here."""
    from pruning_limits._checks import PruningLimitsError
    from pruning_limits.data import DataBundle
    from pruning_limits.models import build_model

    try:
        probe = DataBundle(torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long), None, None, "classification", 10, (3, 32, 32))
        return build_model(name, probe, seed=0), "pruning_limits.models"
    except (PruningLimitsError, TypeError, ValueError):
        torch.manual_seed(0)
        if name == "resnet20":
            return _ResNet((16, 32, 64), 3), "benchmarks/bench_scale.py (fallback)"
        return _ResNet((64, 128, 256, 512), 2), "benchmarks/bench_scale.py (fallback)"


def images(samples: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-shaped data: 10 classes, each a fixed random 32×32×3 pattern plus noise (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(10, 3, 32, 32, generator=generator)
    y = torch.randint(0, 10, (samples,), generator=generator)
    x = 0.5 * means[y] + torch.randn(samples, 3, 32, 32, generator=generator)
    return x, y


# --------------------------------------------------------------------------- one run (child process)


def load_case(case: Case, cache: Path) -> tuple[nn.Module, Any, str]:
    """The trained model of ``case`` (trained and cached on first use), its training data and model source."""
    from pruning_limits.data import load_data
    from pruning_limits.lomp import train
    from pruning_limits.models import build_model

    source = "pruning_limits.models"
    if case.data == "images":
        x, y = images(case.train_samples or 1000)
        data: Any = (x, y)
        model, source = resnet(case.model)
    else:
        bundle = load_data(case.data, seed=0)
        data = bundle.train
        model = build_model(case.model, bundle, seed=0)
    path = cache / f"{case.name}.pt"
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        train(model, data, epochs=case.epochs, l1=case.l1, seed=0)
        cache.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model.eval(), data, source


def resolved_dtype(choice: str, model: nn.Module) -> str:
    """``"float64"``/``"float32"`` as given; ``"auto"`` as the command line's ``--dtype auto`` on the CPU."""
    if choice != "auto":
        return choice
    from pruning_limits.devices import analysis_dtype

    parameters = sum(p.numel() for p in model.parameters())
    return str(analysis_dtype(torch.device("cpu"), torch.float32, "auto", parameters)).removeprefix("torch.")


def _legacy_eig(matrix: torch.Tensor, eigenvectors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.eig`` as torch 1.x had it, for the symmetric tridiagonal ``T`` PyHessian 0.1 passes.

    torch 1.x returned the eigenvalues as ``(n, 2)`` (real, imaginary) and the eigenvectors as
    columns; PyHessian reads ``values[:, 0]`` and ``vectors[0, :] ** 2`` (the Gauss weights).
    ``T`` is real symmetric, so ``torch.linalg.eigh`` gives the same pairs, in ascending order.
    """
    values, vectors = torch.linalg.eigh(matrix)
    return torch.stack([values, torch.zeros_like(values)], dim=1), vectors


def run_once(
    case: Case, mode: str, cache: Path, threads: int, budget: dict[str, int] | None, dtype: str = "auto",
    memory_gib: float | None = None,
) -> dict[str, Any]:
    """One measured run in this process: ``mode`` is adaptive, reference or pyhessian; ``dtype`` of the analysed copy."""
    torch.set_num_threads(threads)
    from pruning_limits import predict_limit
    from pruning_limits.adaptive import DEFAULT_TOLERANCE
    from pruning_limits.limits import sparsity_estimator
    from pruning_limits.objective import batch_std_epsilon, flat_weights, loss_gradient

    model, data, source = load_case(case, cache)
    base = peak_rss_bytes()
    start = time.perf_counter()
    dtype = resolved_dtype(dtype, model)
    record: dict[str, Any] = {"case": case.name, "mode": mode, "model source": source, "dtype": dtype}
    if mode == "pyhessian":
        from pyhessian import hessian as pyhessian_hessian

        from pruning_limits.spectrum import Spectrum

        float64 = model.double()
        x, y = data
        x = x.double() if x.is_floating_point() else x
        engine = pyhessian_hessian(float64, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        try:  # removed from torch 2 (a stub that raises); PyHessian 0.1's density calls it on its T
            torch.eig(torch.eye(1), eigenvectors=True)
        except (AttributeError, RuntimeError):
            torch.eig = _legacy_eig  # this child process only
            record["torch.eig"] = "supplied by bench_scale.py (torch.linalg.eigh of the symmetric T)"
        try:
            eigen, weight = engine.density(iter=100, n_v=1)
        except Exception as exc:  # noqa: BLE001 - report whatever stops the competitor, not crash
            record.update(error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}", seconds=time.perf_counter() - start)
            return record
        # PyHessian works on every parameter; keep the nodes, which are the same operator's
        # spectrum only when all parameters are prunable: quoted as such in docs/benchmarks.md
        spectrum = Spectrum.from_ragged([(np.asarray(e), np.asarray(w) / np.sum(w)) for e, w in zip(eigen, weight)], len(flat_weights(float64)))
        eps = batch_std_epsilon(float64, data)
        gradient = loss_gradient(float64, data)
        record.update(sparsity=sparsity_estimator(flat_weights(float64), [eps], gradient=gradient)(spectrum)[0], num_hvps=100)
    else:
        kwargs: dict[str, Any] = {"hessian_samples": case.hessian_samples, "dtype": getattr(torch, dtype)}
        if memory_gib is not None:
            kwargs["memory_budget"] = int(memory_gib * 2**30)
            record["memory_budget_gib"] = memory_gib
        if mode == "adaptive":
            kwargs.update(tolerance=DEFAULT_TOLERANCE, probes=None)
        else:
            kwargs.update(budget or {})
        prediction = predict_limit(model, data, **kwargs)
        stop = prediction.spectrum.get("stopping", {})
        record.update(
            sparsity=prediction.sparsity,
            num_hvps=prediction.num_hvps,
            dim=prediction.dim,
            probes=prediction.spectrum["probes"],
            steps=prediction.spectrum["iterations"],
            rule=prediction.spectrum["rule"],
            reorthogonalization=prediction.spectrum["reorthogonalization"],
            converged=stop.get("converged"),
            probe_spread=prediction.probe_spread,
            knee_steepness=prediction.knee_steepness,
            rank_hazard=stop.get("hessian_subset", {}).get("rank_hazard"),
            checks=stop.get("checks"),
        )
    record["seconds"] = time.perf_counter() - start
    record["peak_rss_bytes"] = peak_rss_bytes()
    record["rss_before_bytes"] = base
    return record


# --------------------------------------------------------------------------- the driver


def child(case: Case, mode: str, args: argparse.Namespace, budget: dict[str, int] | None = None) -> dict[str, Any]:
    dtype = args.reference_dtype if mode == "reference" else args.dtype
    command = [sys.executable, __file__, "--child", case.name, "--mode", mode, "--threads", str(args.threads),
               "--cache", str(args.cache), "--dtype", dtype]
    if args.memory_budget is not None:
        command += ["--memory-budget", str(args.memory_budget)]
    if budget:
        command += ["--budget", json.dumps(budget)]
    if args.quick:
        command.append("--quick")
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{case.name} {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    runs = [child(case, "adaptive", args) for _ in range(args.repeats)]
    first = runs[0]
    result = {**first, "seconds": statistics.median(r["seconds"] for r in runs), "repeats": len(runs),
              "seconds_all": [r["seconds"] for r in runs]}
    if not args.no_reference:
        steps = min(2 * int(first["steps"]), first["dim"])
        reference = child(case, "reference", args, {"iterations": steps, "probes": 2 * int(first["probes"])})
        result["reference"] = reference
        result["difference_points"] = 100 * (first["sparsity"] - reference["sparsity"])
    if case.pyhessian and args.pyhessian:
        result["pyhessian"] = child(case, "pyhessian", args)
    return result


def subset_sweep(case: Case, sizes: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    """``s*`` (adaptive, default tolerance) against the Hessian's sample count, with the rank hazard.

    The paper's model (no gradient term) is solved on the spectrum of the same run: ``predict_limit``'s
    adaptive SLQ is wrapped for the call to keep its result (the stop watches the answer alone since
    2026-12-05, so its ``final_estimate`` no longer holds the paper's model).
    """
    import warnings

    torch.set_num_threads(args.threads)
    import pruning_limits.adaptive as adaptive  # the module whose adaptive_slq predict_limit calls
    from pruning_limits import predict_limit
    from pruning_limits.adaptive import DEFAULT_TOLERANCE
    from pruning_limits.limits import predict_from_spectrum
    from pruning_limits.objective import flat_weights

    model, data, _ = load_case(case, args.cache)
    weights = flat_weights(model)  # float64, as predict_limit's float64 copy has them
    run_slq, spectra = adaptive.adaptive_slq, []

    def keeping_slq(*args: Any, **kwargs: Any) -> Any:
        spectra.append(run_slq(*args, **kwargs))
        return spectra[-1]

    rows = []
    for size in sizes:
        spectra.clear()
        adaptive.adaptive_slq = keeping_slq
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                start = time.perf_counter()
                prediction = predict_limit(model, data, tolerance=DEFAULT_TOLERANCE, probes=None, hessian_samples=size)
                seconds = time.perf_counter() - start
        finally:
            adaptive.adaptive_slq = run_slq
        if len(spectra) != 1:
            raise SystemExit(f"predict_limit ran adaptive_slq {len(spectra)} times, expected once: the paper's model needs its spectrum")
        subset = prediction.spectrum["stopping"]["hessian_subset"]
        paper = predict_from_spectrum(weights, spectra[0], prediction.epsilon, eta=prediction.eta)
        row = {"case": case.name, "samples": subset["samples"], "total": subset["total"], "dim": prediction.dim,
               "rank_hazard": subset["rank_hazard"], "sparsity": prediction.sparsity, "num_hvps": prediction.num_hvps,
               # the same spectrum without the gradient term: the paper's model, which the atom moves most
               "sparsity_paper": paper.sparsity,
               "atom_at_zero": prediction.spectrum["atom_at_zero"], "seconds": seconds,
               "warned": any("spurious zero" in str(w.message) for w in caught)}
        rows.append(row)
        print(f"{case.name}: N = {row['samples']} of {row['total']} (D = {row['dim']}): s* {row['sparsity']:.4f} "
              f"(paper's model {row['sparsity_paper']:.4f}), "
              f"atom at zero {row['atom_at_zero']:.3f}, rank hazard {row['rank_hazard']:.3f}"
              f"{' (warned)' if row['warned'] else ''}, {row['num_hvps']} products, {row['seconds']:.0f} s", flush=True)
    return rows


def operator_build(case: Case, methods: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Seconds to build the operator with each method, and per product after it (two 2-vector products)."""
    torch.set_num_threads(args.threads)
    from pruning_limits.hessian import HessianOperator
    from pruning_limits.subsets import subset_indices

    model, (x, y), _ = load_case(case, args.cache)
    if case.hessian_samples is not None:
        keep = subset_indices(len(x), case.hessian_samples, 0)
        x, y = x[keep], y[keep]
    dtype_name = resolved_dtype(args.dtype, model)  # this case's (auto: by its size), not the next case's
    dtype = getattr(torch, dtype_name)
    model, x = model.to(dtype), x.to(dtype) if x.is_floating_point() else x
    rows = []
    for method in methods:
        start = time.perf_counter()
        operator = HessianOperator(model, (x, y), method=method)
        build = time.perf_counter() - start
        vectors = np.random.default_rng(0).standard_normal((operator.dim, 2))
        products = []
        for _ in range(2):
            start = time.perf_counter()
            operator.matmat(vectors)
            products.append((time.perf_counter() - start) / 2)
        with FlopCounterMode(display=False) as counter:  # the same product once more, its operations counted
            operator.matvec(vectors[:, 0])
        row = {"case": case.name, "method": method, "dtype": dtype_name, "chosen": operator.methods, "dim": operator.dim,
               "samples": len(x), "build_seconds": build, "product_seconds": products,
               "product_flop": counter.get_total_flops(), "peak_rss_bytes": peak_rss_bytes()}
        rows.append(row)
        rate = row["product_flop"] / min(products) / 1e9
        print(f"{case.name} ({len(x)} Hessian samples, D = {operator.dim}, {dtype_name}): {method} builds in {build:.1f} s, "
              f"then {products[0]:.1f} s and {products[1]:.1f} s per product ({operator.methods['matmat']}; "
              f"{row['product_flop'] / 1e9:.0f} GFLOP counted, {rate:.0f} GFLOP/s), "
              f"peak RSS {row['peak_rss_bytes'] / 2**30:.2f} GiB", flush=True)
    return rows


def matmul_rate(dtype: torch.dtype, size: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of a ``size``² matrix product in ``dtype`` (best of ``repeats``): the machine's dense rate."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _pyhessian_text(record: dict[str, Any]) -> str:
    if "error" in record:
        return f"does not run ({record['error']})"
    return f"{record['seconds']:.1f} s, s* {record['sparsity']:.4f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("benchmarks/cache-scale"), help="trained models")
    parser.add_argument("--json", type=Path, default=None, help="write the records here")
    parser.add_argument("--no-reference", action="store_true", help="skip the 4x-cost reference runs")
    parser.add_argument("--pyhessian", action="store_true", help="also time PyHessian's density on the MLPs")
    parser.add_argument("--quick", action="store_true", help="one tiny MLP, to check the script")
    parser.add_argument("--subsets", default=None,
                        help="instead: s* against the Hessian's sample count (predict_limit's hessian_samples), e.g. 50,100,400,all")
    parser.add_argument("--operator", default=None, help="instead: time building the operator, e.g. double-backward,auto")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float64", "float32"),
                        help="dtype of the analysed copy in the adaptive runs; auto: as the command line's "
                             "(float64 up to 100 000 parameters, float32 above)")
    parser.add_argument("--reference-dtype", default="float64", choices=("float64", "float32"),
                        help="dtype of the 4x-cost reference run")
    parser.add_argument("--memory-budget", type=float, default=None, metavar="GIB",
                        help="predict_limit's memory budget in GiB for every run (default: its 1 GiB)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="adaptive", help=argparse.SUPPRESS)
    parser.add_argument("--budget", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case = QUICK if args.quick else CASES[args.child]
        print(json.dumps(run_once(case, args.mode, args.cache, args.threads, json.loads(args.budget) if args.budget else None,
                                  args.dtype, args.memory_budget)))  # the driver passes each run's own dtype
        return
    cases = [QUICK] if args.quick else [CASES[name] for name in args.cases.split(",")]
    if args.operator:
        print(f"threads {args.threads}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, torch {torch.__version__}, "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        rows = [row for case in cases for row in operator_build(case, args.operator.split(","), args)]
        for dtype in sorted({row["dtype"] for row in rows}):  # the machine's dense rate, to compare the products with
            print(f"a 4096² {dtype} matrix product on this machine: {matmul_rate(getattr(torch, dtype)):.0f} GFLOP/s", flush=True)
        if args.json:
            _write_records(args, {"operator": rows})
        return
    if args.subsets:
        print(f"threads {args.threads}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, torch {torch.__version__}, "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        sizes = [None if n == "all" else int(n) for n in args.subsets.split(",")]
        rows = [row for case in cases for row in subset_sweep(case, sizes, args)]
        if args.json:
            _write_records(args, {"subsets": rows})
        return
    print(f"threads {args.threads}, OMP_WAIT_POLICY=PASSIVE, repeats {args.repeats}, dtype {args.dtype} "
          f"(reference {args.reference_dtype}), torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    records = []
    for case in cases:
        record = measure(case, args)
        records.append(record)
        ref = record.get("reference", {})
        print(
            f"{case.name}: D = {record['dim']}, {record['seconds']:.1f} s (median of {record['repeats']}), "
            f"{record['num_hvps']} products ({record['probes']} probes x {record['steps']} steps, {record['rule']} "
            f"{record['reorthogonalization']}, {record['dtype']} products), converged {record['converged']}, peak RSS "
            f"{record['peak_rss_bytes'] / 2**30:.2f} GiB, s* {record['sparsity']:.4f}"
            + (f" vs reference {ref['sparsity']:.4f} ({record['difference_points']:+.2f} points, "
               f"{ref['num_hvps']} products, {ref['seconds']:.0f} s)" if ref else "")
            + (f"; PyHessian density: {_pyhessian_text(record['pyhessian'])}" if "pyhessian" in record else ""),
            flush=True,
        )
    if args.json:
        _write_records(args, {"records": records})


def _write_records(args: argparse.Namespace, rows: dict[str, Any]) -> None:
    """``--json``: the rows with the settings they were measured under, written atomically."""
    import datetime
    import subprocess

    from pruning_limits.report import write_json

    try:
        here = Path(__file__).resolve().parent  # this repository, wherever the script is run from
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=here).stdout.strip()
        if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=here).stdout.strip():
            commit += "-dirty"  # measured with uncommitted changes
    except (OSError, subprocess.CalledProcessError):
        commit = None
    settings = {
        "command": " ".join(sys.argv), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit, "threads": args.threads, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "repeats": args.repeats, "dtype": args.dtype, "reference_dtype": args.reference_dtype, "torch": torch.__version__,
        "load_average_at_end": os.getloadavg()[0], "cpus": os.cpu_count(),
    }
    write_json(args.json, {"settings": settings, "threads": args.threads, **rows})


if __name__ == "__main__":
    main()
