"""Accuracy of stochastic Lanczos quadrature against the exact spectrum of a small trained MLP.

Reproduces the tables of the "Accuracy of stochastic Lanczos quadrature" section of
docs/benchmarks.md. The model and data are those of tests/test_slq.py: a 64-24-16-10 tanh MLP
(D = 2 080) after 300 full-batch Adam steps on 1 400 digits samples, in float64. The oracle is
``numpy.linalg.eigh`` of its dense Hessian. Every SLQ run uses 10 Rademacher probes, seed 0.

It prints the Wasserstein-1 distance between the SLQ measure and the exact spectrum; the relative
error of ∫φ for transitions c = 2ε/R² from above the spectrum down to the atom at zero, also for
Lanczos on the dense |H| (same φ values, but 0 at the end of the spectrum instead of inside); the
prediction s* from SLQ against the one from the exact spectrum; and a check of the Gauss–Radau
rule with a node fixed at 0 (Golub & Meurant), which would bound the Gauss rule's error from
the other side if the Hessian were positive semi-definite.

    python benchmarks/slq_accuracy.py
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numpy as np
    import scipy.stats
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    from pruning_limits import HessianOperator, Spectrum, batch_std_epsilon, flat_weights, predict_from_spectrum
    from pruning_limits.lanczos import gauss_quadrature, lanczos, rademacher_probes
    from pruning_limits.spectrum import dense_hessian, slq

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")

    x_all, y_all = load_digits(return_X_y=True)
    x = torch.tensor(x_all[:1400] / 16.0, dtype=torch.float64)
    y = torch.tensor(y_all[:1400])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 24), nn.Tanh(), nn.Linear(24, 16), nn.Tanh(), nn.Linear(16, 10)).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    hessian = dense_hessian(HessianOperator(model, (x, y)))
    eigenvalues, vectors = np.linalg.eigh(hessian)
    dim = eigenvalues.size
    span = eigenvalues[-1] - eigenvalues[0]
    magnitudes = np.abs(eigenvalues)
    print(f"\nD = {dim}, λmax = {eigenvalues[-1]:.4g}, λmin = {eigenvalues[0]:.3g}; |λ| median "
          f"{np.median(magnitudes):.2g}, 90 % {np.quantile(magnitudes, 0.9):.2g}, 99 % "
          f"{np.quantile(magnitudes, 0.99):.2g}; below 1e-6·λmax: {np.mean(magnitudes < 1e-6 * eigenvalues[-1]):.1%}")

    probes = rademacher_probes(dim, 10, seed=0)
    spectra = {m: slq(hessian, iterations=m, probes=10, seed=0) for m in (10, 20, 40, 80, 160, 300, 320)}
    uniform = np.full(dim, 1.0 / dim)

    def w1(spectrum: Spectrum) -> float:
        return scipy.stats.wasserstein_distance(spectrum.nodes.ravel(), eigenvalues, spectrum.weights.ravel(), uniform)

    print("\nWasserstein-1 distance to the exact spectral measure, in units of the span:")
    print("  " + ", ".join(f"m = {m}: {w1(spectra[m]) / span:.2g}" for m in (10, 20, 40, 80)))

    # The same probes with exact quadrature: zᵀφ(H)z from the eigendecomposition.
    same_probes = Spectrum.from_ragged([(eigenvalues, (vectors.T @ z) ** 2 / (z @ z)) for z in probes], dim)

    def phi(c: float):
        return lambda lam: c / (c + np.abs(lam))

    # Where zero lies: inside H's spectrum (negative eigenvalues), at the end of |H|'s. The dense
    # |H| = U|Λ|Uᵀ has the same φ values; it only shows what Lanczos would do if 0 were an end.
    absolute = (vectors * magnitudes) @ vectors.T
    spectra_abs = {m: slq(absolute, iterations=m, probes=10, seed=0) for m in (80, 160)}

    steps = (40, 80, 160, 320)
    print("\nRelative error of ∫φ, φ(λ) = c/(c + |λ|) (c = 2ε/R²), against the exact value:")
    print("| c | exact | " + " | ".join(f"m = {m}" for m in steps)
          + " | same probes, exact quadrature | Lanczos on \\|H\\|, m = 80 | on \\|H\\|, m = 160 |")
    print("|---" * (len(steps) + 5) + "|")
    for c in (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1):
        exact = phi(c)(eigenvalues).mean()
        estimates = [spectra[m].integrate(phi(c)).value for m in steps] + [same_probes.integrate(phi(c)).value]
        estimates += [spectra_abs[m].integrate(phi(c)).value for m in (80, 160)]
        errors = [estimate / exact - 1 for estimate in estimates]
        print(f"| {c:.0e} | {exact:.4f} | " + " | ".join(f"{100 * e:+.2f} %" for e in errors) + " |")

    print("\nConjugate-gradient bound 4((√κ−1)/(√κ+1))^(2m), κ = span/c, at m = 80: "
          + ", ".join(f"c = {c:.0e}: {4 * ((np.sqrt(span / c) - 1) / (np.sqrt(span / c) + 1)) ** 160:.2g}"
                      for c in (1e-4, 1e-5, 1e-6)))
    squared = slq(hessian @ hessian, iterations=40, probes=10, seed=0)  # 80 products of H
    errors = []
    for c in (1e-4, 1e-5):
        estimate = squared.integrate(lambda s, c=c: c / (c + np.sqrt(np.maximum(s, 0.0)))).value
        errors.append(f"c = {c:.0e}: {100 * (estimate / phi(c)(eigenvalues).mean() - 1):+.1f} %")
    print("SLQ on H² (0 at the end), 40 steps = 80 products of H, ∫c/(c + √s): " + ", ".join(errors))

    epsilon = batch_std_epsilon(model, (x, y))
    weights = flat_weights(model)
    exact_prediction = predict_from_spectrum(weights, Spectrum.from_eigenvalues(eigenvalues), epsilon)
    same_prediction = predict_from_spectrum(weights, same_probes, epsilon)
    print(f"\nPrediction (paper's model, ε = batch-std = {epsilon:.3g}): exact spectrum s* = "
          f"{exact_prediction.sparsity:.4f} at c = 2ε/R² = {2 * epsilon / exact_prediction.distance**2:.2g}; "
          f"same probes, exact quadrature {same_prediction.sparsity:.4f}")
    print("| Lanczos steps | SLQ s* | SLQ − exact (points) | probe spread (points) |")
    print("|---|---|---|---|")
    for m in (40, 80, 160, 300):
        p = predict_from_spectrum(weights, spectra[m], epsilon)
        print(f"| {m} | {p.sparsity:.4f} | {100 * (p.sparsity - exact_prediction.sparsity):+.2f} | "
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


if __name__ == "__main__":
    main()
