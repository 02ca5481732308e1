"""Rounding sensitivity of the block Lanczos rule without re-orthogonalisation.

The plain block recurrence (``reorthogonalization="none"``) loses orthogonality, so its Gauss
rule depends on rounding: the same probes on another CPU, thread count or BLAS path give another
rule. This script measures how far that moves the prediction ``s*``, on the 64-24-16-10 MLP of
tests/test_adaptive.py (D = 2 080, 8 Rademacher probes, exact s* from ``numpy.linalg.eigvalsh``).

For each probe seed and step count it runs the fully re-orthogonalised rule once and the plain
rule ``--perturbations`` times, each time with every Hessian-vector product multiplied by
``1 + u·z`` (``u = 2⁻⁵²``, ``z`` standard normal, seeded): a rounding-sized change of the
products. It prints the error of s* in points from the exact value: the full rule, and the
plain rule's median, minimum and maximum over the perturbations.

``--adaptive`` runs instead what tests/test_adaptive.py runs with a 1 MiB budget: the adaptive
stop (default tolerance) of the bounded block rule, without and with the gradient term, under the
same perturbations, and prints the error of its final s* and the steps it took.

    python benchmarks/block_rounding.py [--seeds 8] [--perturbations 8] [--steps 80 150 300]
    python benchmarks/block_rounding.py --adaptive [--seeds 3] [--perturbations 8]
"""

from __future__ import annotations

import argparse
import os
import runpy
import time
from pathlib import Path


class RoundingPerturbed:
    """``op`` with every product multiplied by ``1 + 2⁻⁵²·z`` (``z`` standard normal, seeded by
    ``k``): a rounding-sized change, standing in for another CPU, thread count or BLAS path.
    tests/test_adaptive.py uses it too."""

    def __init__(self, op, k: int) -> None:
        import numpy as np

        self.op, self.dim, self.rng = op, op.dim, np.random.default_rng(1000 + k)

    def matmat(self, v):
        import numpy as np

        return np.asarray(self.op.matmat(v)) * (1 + 2.0**-52 * self.rng.standard_normal(np.shape(v)))

    def matvec(self, v):
        import numpy as np

        return self.matmat(np.asarray(v)[:, None])[:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--perturbations", type=int, default=8)
    parser.add_argument("--steps", type=int, nargs="+", default=[80, 150, 300])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--adaptive", action="store_true", help="the bounded adaptive stop instead")
    args = parser.parse_args()

    # in main, not at import: tests/test_adaptive.py loads this module for RoundingPerturbed
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the import of torch
    import numpy as np
    import torch

    from pruning_limits import batch_std_epsilon, flat_weights, loss_gradient
    from pruning_limits.adaptive import adaptive_slq
    from pruning_limits.hessian import HessianOperator
    from pruning_limits.lanczos import block_gauss_quadrature, block_lanczos, rademacher_probes
    from pruning_limits.limits import sparsity_estimator
    from pruning_limits.spectrum import Spectrum, dense_hessian

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    path = Path(__file__).resolve().parent / "slq_accuracy.py"
    model, x, y = runpy.run_path(str(path))["digits_mlp"]()  # the oracle MLP of benchmarks/slq_accuracy.py
    op = HessianOperator(model, (x, y))
    epsilon = batch_std_epsilon(model, (x, y))
    estimate = sparsity_estimator(flat_weights(model), [epsilon])
    eigenvalues = np.linalg.eigvalsh(dense_hessian(op))
    exact = estimate(Spectrum.from_eigenvalues(eigenvalues))[0]
    print(f"D = {op.dim}, exact s* = {exact:.4f}; errors in points of sparsity")

    if args.adaptive:
        start = time.perf_counter()
        print(f"{'term':>8} {'seed':>4} {'error median':>12} {'min':>7} {'max':>7} {'steps':>9}")
        for gradient in (None, loss_gradient(model, (x, y))):
            watch = sparsity_estimator(flat_weights(model), [epsilon], gradient=gradient)
            truth = watch(Spectrum.from_eigenvalues(eigenvalues))[0]
            for seed in range(args.seeds):
                errors, steps = [], []
                for k in range(args.perturbations):
                    # the bounded rule (chosen by a 1 MiB budget until the budget counted its projected matrix)
                    spectrum = adaptive_slq(RoundingPerturbed(op, k), watch, seed=seed, reorthogonalization="none")
                    errors.append(100 * (spectrum.stopping["final_estimate"][0] - truth))
                    steps.append(spectrum.steps)
                print(f"{'paper' if gradient is None else 'gradient':>8} {seed:>4} {np.median(errors):>+12.2f} "
                      f"{min(errors):>+7.2f} {max(errors):>+7.2f} {min(steps):>4}-{max(steps)}")
        print(f"{time.perf_counter() - start:.0f} s")
        return

    def rule(matmat, steps, starts, mode):
        result = block_lanczos(matmat, op.dim, steps, starts, reorthogonalization=mode)
        nodes, weights = block_gauss_quadrature(result)
        spectrum = Spectrum.from_ragged([(nodes, row) for row in weights], op.dim, rule="block")
        return 100 * (estimate(spectrum)[0] - exact)

    print(f"{'steps':>5} {'seed':>4} {'full':>7} {'none median':>11} {'min':>7} {'max':>7}")
    everything = {steps: [] for steps in args.steps}
    start = time.perf_counter()
    for steps in args.steps:
        for seed in range(args.seeds):
            starts = rademacher_probes(op.dim, 8, seed=seed)
            full = rule(op.matmat, steps, starts, "full")
            plain = []
            for k in range(args.perturbations):
                plain.append(rule(RoundingPerturbed(op, k).matmat, steps, starts, "none"))
            everything[steps] += plain
            print(f"{steps:>5} {seed:>4} {full:>+7.2f} {np.median(plain):>+11.2f} {min(plain):>+7.2f} {max(plain):>+7.2f}")
    for steps, errors in everything.items():
        errors = np.abs(errors)
        print(f"{steps} steps, plain rule over all seeds and perturbations: median |error| "
              f"{np.median(errors):.2f}, 90th percentile {np.quantile(errors, 0.9):.2f}, max {errors.max():.2f} points")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
