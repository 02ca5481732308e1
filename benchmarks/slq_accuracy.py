"""Accuracy of stochastic Lanczos quadrature against the exact spectrum of a small trained MLP.

Reproduces the tables of the "Accuracy of stochastic Lanczos quadrature" section of
docs/benchmarks.md. The model (``digits_mlp``, which tests/test_slq.py builds too): a
64-24-16-10 tanh MLP (D = 2 080) after 300 full-batch Adam steps on 1 400 digits samples, in
float64. The oracle is
``numpy.linalg.eigh`` of its dense Hessian. Every SLQ run uses 10 Rademacher probes, seed 0,
with both quadrature rules of ``slq``: one Gauss rule per probe (``rule="gauss"``) and the block
Gauss rule of one block Lanczos run from all probes (``rule="block"``, the default when it fits).

It prints the Wasserstein-1 distance between the SLQ measure and the exact spectrum; the relative
error of ∫φ for transitions c = 2ε/R² from above the spectrum down to the atom at zero, also for
Lanczos on the dense |H| (same φ values, but 0 at the end of the spectrum instead of inside); the
prediction s* from SLQ against the one from the exact spectrum; and a check of the Gauss–Radau
rule with a node fixed at 0 (Golub & Meurant), which would bound the Gauss rule's error from
the other side if the Hessian were positive semi-definite.

``--wide`` adds the prediction of a 64→100→30→10 MLP (D = 9 700, 8 probes, the library's
default; about 3 minutes more, most of it the dense Hessian and its eigenvalues).

    python benchmarks/slq_accuracy.py [--wide]
"""

from __future__ import annotations

import argparse
import os
import time


def digits_mlp(first: int = 24, second: int = 16):
    """A 64-``first``-``second``-10 tanh MLP after 300 full-batch Adam steps (lr 1e-2, seed 0) on
    the first 1 400 digits samples, in float64; returns ``(model, x, y)``.

    The default widths are the model of this benchmark and of tests/test_slq.py (D = 2 080), which
    builds it with this function; ``--wide`` uses 100 and 30 (D = 9 700).
    """
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    x_all, y_all = load_digits(return_X_y=True)
    x = torch.tensor(x_all[:1400] / 16.0, dtype=torch.float64)
    y = torch.tensor(y_all[:1400])
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, first), nn.Tanh(), nn.Linear(first, second), nn.Tanh(), nn.Linear(second, 10)
    ).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--wide", action="store_true", help="also the D = 9 700 MLP (about 3 minutes)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numpy as np
    import scipy.stats
    import torch

    from pruning_limits import HessianOperator, Spectrum, batch_std_epsilon, flat_weights, predict_from_spectrum
    from pruning_limits.lanczos import gauss_quadrature, lanczos, rademacher_probes
    from pruning_limits.spectrum import dense_hessian, slq

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")

    model, x, y = digits_mlp(24, 16)
    hessian = dense_hessian(HessianOperator(model, (x, y)))
    eigenvalues, vectors = np.linalg.eigh(hessian)
    dim = eigenvalues.size
    span = eigenvalues[-1] - eigenvalues[0]
    magnitudes = np.abs(eigenvalues)
    print(f"\nD = {dim}, λmax = {eigenvalues[-1]:.4g}, λmin = {eigenvalues[0]:.3g}, negative: "
          f"{np.mean(eigenvalues < 0):.1%}; |λ| median {np.median(magnitudes):.2g}, 90 % "
          f"{np.quantile(magnitudes, 0.9):.2g}, 99 % {np.quantile(magnitudes, 0.99):.2g}; below 1e-6·λmax: "
          f"{np.mean(magnitudes < 1e-6 * eigenvalues[-1]):.1%}")

    epsilon = batch_std_epsilon(model, (x, y))
    weights = flat_weights(model)
    exact_prediction = predict_from_spectrum(weights, Spectrum.from_eigenvalues(eigenvalues), epsilon)
    transition = 2 * epsilon / exact_prediction.distance**2

    probes = rademacher_probes(dim, 10, seed=0)
    rules = ("gauss", "block")
    spectra = {(rule, m): slq(hessian, iterations=m, probes=10, seed=0, rule=rule)
               for rule in rules for m in (10, 20, 40, 80, 160, 300)}
    uniform = np.full(dim, 1.0 / dim)

    def w1(spectrum: Spectrum) -> float:
        return scipy.stats.wasserstein_distance(spectrum.nodes.ravel(), eigenvalues, spectrum.weights.ravel(), uniform)

    print("\nWasserstein-1 distance to the exact spectral measure, in units of the span:")
    for rule in rules:
        print(f"  {rule}: " + ", ".join(f"m = {m}: {w1(spectra[rule, m]) / span:.2g}" for m in (10, 20, 40, 80)))

    # The same probes with exact quadrature: zᵀφ(H)z from the eigendecomposition.
    same_probes = Spectrum.from_ragged([(eigenvalues, (vectors.T @ z) ** 2 / (z @ z)) for z in probes], dim)

    def phi(c: float):
        return lambda lam: c / (c + np.abs(lam))

    # Where zero lies: inside H's spectrum (negative eigenvalues), at the end of |H|'s. The dense
    # |H| = U|Λ|Uᵀ has the same φ values; it only shows what Lanczos would do if 0 were an end.
    absolute = (vectors * magnitudes) @ vectors.T
    on_absolute = slq(absolute, iterations=80, probes=10, seed=0, rule="gauss")

    steps = (40, 80, 160, 300)
    print(f"\nRelative error of ∫φ, φ(λ) = c/(c + |λ|) (c = 2ε/R²), against the exact value; c* = {transition:.2g} "
          "is the model's own transition (ε = batch-std at the exact spectrum's s*):")
    columns = [f"{rule} m = {m}" for rule in rules for m in steps]
    print("| c | exact | " + " | ".join(columns) + " | same probes, exact quadrature | Gauss on \\|H\\|, m = 80 |")
    print("|---" * (len(columns) + 4) + "|")
    grid = [1e-7, 1e-6, 1e-5, transition / 2, transition, 2 * transition, 1e-4, 1e-3, 1e-2, 1e-1]
    for c in grid:
        exact = phi(c)(eigenvalues).mean()
        estimates = [spectra[rule, m].integrate(phi(c)).value for rule in rules for m in steps]
        estimates += [same_probes.integrate(phi(c)).value, on_absolute.integrate(phi(c)).value]
        errors = [estimate / exact - 1 for estimate in estimates]
        label = {transition / 2: " (c*/2)", transition: " (c*)", 2 * transition: " (2c*)"}.get(c, "")
        print(f"| {c:.2g}{label} | {exact:.4f} | " + " | ".join(f"{100 * e:+.2f} %" for e in errors) + " |")

    print("\nBlock rule at 80 steps, quadrature error alone (against the same probes' exact zᵀφ(H)z) and "
          "total error (against ∫φ dμ), for three probe seeds:")
    print("| seed | c*/2: quadrature | total | c*: quadrature | total | 2c*: quadrature | total |")
    print("|---|---|---|---|---|---|---|")
    for seed in (0, 1, 2):
        spectrum = slq(hessian, iterations=80, probes=10, seed=seed, rule="block")
        mass = (rademacher_probes(dim, 10, seed=seed) @ vectors) ** 2
        cells = []
        for c in (transition / 2, transition, 2 * transition):
            value, exact = spectrum.integrate(phi(c)).value, phi(c)(eigenvalues).mean()
            same = np.mean((mass * phi(c)(eigenvalues)).sum(axis=1))
            cells += [f"{100 * (value / same - 1):+.2f} %", f"{100 * (value / exact - 1):+.2f} %"]
        print(f"| {seed} | " + " | ".join(cells) + " |")

    print("\nConjugate-gradient bound 4((√κ−1)/(√κ+1))^(2m), κ = span/c, at m = 80: "
          + ", ".join(f"c = {c:.0e}: {4 * ((np.sqrt(span / c) - 1) / (np.sqrt(span / c) + 1)) ** 160:.2g}"
                      for c in (1e-4, 1e-5, 1e-6)))
    squared = slq(hessian @ hessian, iterations=40, probes=10, seed=0, rule="gauss")  # 80 products of H
    errors = []
    for c in (1e-4, 1e-5):
        estimate = squared.integrate(lambda s, c=c: c / (c + np.sqrt(np.maximum(s, 0.0)))).value
        errors.append(f"c = {c:.0e}: {100 * (estimate / phi(c)(eigenvalues).mean() - 1):+.1f} %")
    print("SLQ on H² (0 at the end), 40 steps = 80 products of H, ∫c/(c + √s): " + ", ".join(errors))

    same_prediction = predict_from_spectrum(weights, same_probes, epsilon)
    print(f"\nPrediction (paper's model, ε = batch-std = {epsilon:.3g}): exact spectrum s* = "
          f"{exact_prediction.sparsity:.4f} at c* = {transition:.2g}; same probes, exact quadrature "
          f"{same_prediction.sparsity:.4f}")
    print("| Lanczos steps | rule | SLQ s* | SLQ − exact (points) | probe spread (points) |")
    print("|---|---|---|---|---|")
    for m in steps:
        for rule in rules:
            p = predict_from_spectrum(weights, spectra[rule, m], epsilon)
            print(f"| {m} | {rule} | {p.sparsity:.4f} | {100 * (p.sparsity - exact_prediction.sparsity):+.2f} | "
                  f"{100 * p.probe_spread:.2f} |")

    # Gauss–Radau with a node fixed at 0: extend T_m by β_m and the diagonal entry that makes 0
    # an eigenvalue. For H ⪰ 0 and a completely monotone φ it bounds zᵀφ(H)z from above.
    print("\nGauss–Radau (node at 0) against Gauss, same probes: prediction s*")
    print("| Lanczos steps | Gauss | Gauss–Radau | same probes, exact quadrature | bracketed |")
    print("|---|---|---|---|---|")
    for m in (40, 80, 160, 300):
        gauss_rows, radau_rows = [], []
        for z in probes:
            run = lanczos(lambda v: hessian @ v, dim, m + 1, start=z)  # T_{m+1} holds β_m
            alpha, beta = run.alpha[:m], run.beta[:m]
            gauss_rows.append(gauss_quadrature(alpha, beta[:-1]))
            tridiagonal = np.diag(alpha) + np.diag(beta[:-1], 1) + np.diag(beta[:-1], -1)
            last = np.linalg.solve(tridiagonal, beta[-1] ** 2 * np.eye(m)[-1])[-1]
            radau_rows.append(gauss_quadrature(np.append(alpha, last), beta))
        gauss = predict_from_spectrum(weights, Spectrum.from_ragged(gauss_rows, dim), epsilon).sparsity
        radau = predict_from_spectrum(weights, Spectrum.from_ragged(radau_rows, dim), epsilon).sparsity
        inside = gauss <= same_prediction.sparsity <= radau
        print(f"| {m} | {gauss:.4f} | {radau:.4f} | {same_prediction.sparsity:.4f} | {'yes' if inside else 'no'} |")

    if args.wide:
        wide, _, _ = digits_mlp(100, 30)
        operator = HessianOperator(wide, (x, y))
        wide_eigenvalues = np.linalg.eigvalsh(dense_hessian(operator))
        wide_epsilon = batch_std_epsilon(wide, (x, y))
        wide_weights = flat_weights(wide)
        wide_exact = predict_from_spectrum(wide_weights, Spectrum.from_eigenvalues(wide_eigenvalues), wide_epsilon)
        print(f"\nWider MLP 64→100→30→10: D = {wide_eigenvalues.size}, negative: {np.mean(wide_eigenvalues < 0):.1%}, "
              f"λmin = {wide_eigenvalues[0]:.3g}, λmax = {wide_eigenvalues[-1]:.3g}; exact s* = {wide_exact.sparsity:.4f} "
              f"at c* = {2 * wide_epsilon / wide_exact.distance**2:.2g}. SLQ with 8 probes, seed 0, "
              "on the matrix-free operator:")
        print("| Lanczos steps | rule | SLQ s* | SLQ − exact (points) | probe spread (points) | seconds |")
        print("|---|---|---|---|---|---|")
        for m in (80, 150, 300):
            for rule in rules:
                start = time.perf_counter()
                spectrum = slq(operator, iterations=m, probes=8, seed=0, rule=rule)
                seconds = time.perf_counter() - start
                p = predict_from_spectrum(wide_weights, spectrum, wide_epsilon)
                print(f"| {m} | {rule} | {p.sparsity:.4f} | {100 * (p.sparsity - wide_exact.sparsity):+.2f} | "
                      f"{100 * p.probe_spread:.2f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
