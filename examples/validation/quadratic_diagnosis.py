"""Where does the prediction of a small l1-trained network go wrong? A dense-Hessian diagnosis.

Along the global magnitude pruning path ``d_k = w^k − w*`` of a network small enough for a dense
Hessian, print the true loss increase next to its Taylor terms (the gradient term ``gᵀd``, the
curvature term ``½ dᵀHd`` and its convex version ``½ dᵀ|H|d``), and the cost of the best point of
the same support in the quadratic model (the kept weights re-fitted: a Schur complement). Then
the predicted limit of the paper's model and with the gradient term, and the measured one.

    python examples/validation/quadratic_diagnosis.py --model mlp:32 --data digits --l1 1e-3
"""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mlp:32")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--l1", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numpy as np
    import torch

    from pruning_limits import (
        HessianOperator,
        Spectrum,
        batch_std_epsilon,
        build_model,
        dense_hessian,
        evaluate_loss,
        flat_weights,
        load_data,
        loss_gradient,
        predict_from_spectrum,
        prunable_parameters,
        sweep,
        train,
    )

    torch.set_num_threads(args.threads)
    data = load_data(args.data, seed=args.seed)
    model = build_model(args.model, data, seed=args.seed)
    train(model, data, l1=args.l1, epochs=args.epochs, seed=args.seed)
    model = model.to(torch.float64).eval()
    train_pair = data.train

    eps = batch_std_epsilon(model, train_pair)
    base_loss = evaluate_loss(model, train_pair)
    w = flat_weights(model)
    g = loss_gradient(model, train_pair)
    hessian = dense_hessian(HessianOperator(model, train_pair))
    eigenvalues, vectors = np.linalg.eigh(hessian)
    abs_hessian = (vectors * np.abs(eigenvalues)) @ vectors.T
    dim = w.size
    order = np.argsort(np.abs(w), kind="stable")

    params = [p for _, p in prunable_parameters(model)]

    def loss_with(weights: np.ndarray) -> float:
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.from_numpy(weights), params)
            try:
                return evaluate_loss(model, train_pair)
            finally:
                torch.nn.utils.vector_to_parameters(torch.from_numpy(w), params)

    def refit_cost(pruned: np.ndarray, kept: np.ndarray) -> float:
        """min over the kept weights of ½ (d+u)ᵀ|H|(d+u): Schur complement of |H| on the pruned set."""
        d = -w[pruned]
        coupling = abs_hessian[np.ix_(kept, pruned)]
        solved = np.linalg.lstsq(abs_hessian[np.ix_(kept, kept)], coupling @ d, rcond=1e-10)[0]
        return 0.5 * (d @ abs_hessian[np.ix_(pruned, pruned)] @ d - (coupling @ d) @ solved)

    exact = Spectrum.from_eigenvalues(eigenvalues)
    paper = predict_from_spectrum(w, exact, eps)
    corrected = predict_from_spectrum(w, exact, eps, gradient=g)
    measured = sweep(model, train_pair, test_data=data.test, epsilon=eps)
    print(f"threads: torch.set_num_threads({args.threads}), OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    print(
        f"{args.model} on {args.data}, λ = {args.l1:g}: D = {dim}, L* = {base_loss:.4f}, ε = {eps:.4g}, "
        f"exact zeros {np.mean(w == 0):.3f}, negative eigenvalues {np.mean(eigenvalues < 0):.3f}"
    )
    print(
        f"predicted (paper's model) {paper.sparsity:.4f}, with the gradient term {corrected.sparsity:.4f}, "
        f"measured by loss {measured.limit_by_loss:.4f}"
    )
    print()
    print("sparsity  ΔL true   gᵀd      ½dᵀHd    ½dᵀ|H|d  gᵀd+½dᵀHd  re-fitted ½|H|  R")
    first = max(0.0, np.floor(20 * (measured.limit_by_loss - 0.05)) / 20)
    for s in np.arange(first, min(1.0, paper.sparsity + 0.06), 0.01):
        pruned_count = int(round(s * dim))
        pruned, kept = order[:pruned_count], order[pruned_count:]
        d = np.zeros(dim)
        d[pruned] = -w[pruned]
        true = loss_with(w + d) - base_loss
        quad, quad_abs, lin = 0.5 * d @ hessian @ d, 0.5 * d @ abs_hessian @ d, g @ d
        refit = refit_cost(pruned, kept) if pruned_count else 0.0
        flag = "  > ε" if true > eps else ""
        print(
            f"{s:7.3f}  {true:8.5f} {lin:8.5f} {quad:8.5f} {quad_abs:8.5f} {lin + quad:10.5f}  {refit:13.5f}  "
            f"{np.linalg.norm(d):.3f}{flag}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
