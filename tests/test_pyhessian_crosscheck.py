"""Cross-checks against the reference implementations PyHessian 0.1 and curvlinops 3.0.1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pruning_limits.hessian import HessianOperator
from pruning_limits.spectrum import slq

pyhessian = pytest.importorskip("pyhessian")


@pytest.fixture(scope="module")
def case():
    """A small float64 CNN+MLP on random data with an uneven last batch (101 = 3·32 + 5)."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x = torch.randn(101, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (101,), generator=gen)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 12), nn.Tanh(), nn.Linear(12, 4)
    ).double()
    return model, x, y, DataLoader(TensorDataset(x, y), batch_size=32)


# PyHessian builds its gradients with backward(create_graph=True), which torch warns about
@pytest.mark.filterwarnings(r"ignore:Using backward\(\) with create_graph=True:UserWarning")
def test_hessian_vector_products_agree_with_pyhessian(case) -> None:
    model, x, y, loader = case
    ours = HessianOperator(model, loader, params="all")
    theirs = pyhessian.hessian(model, nn.CrossEntropyLoss(), dataloader=loader, cuda=False)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = torch.randn(ours.dim, generator=gen, dtype=torch.float64)
        pieces = [t.view_as(p) for t, p in zip(torch.split(v, [p.numel() for p in theirs.params]), theirs.params)]
        _, hv = theirs.dataloader_hv_product(pieces)
        theirs_flat = torch.cat([t.reshape(-1) for t in hv])
        ours_flat = ours.matvec(v)
        assert float((ours_flat - theirs_flat).norm() / theirs_flat.norm()) <= 1e-10
    for p in model.parameters():
        p.grad = None


def test_top_eigenvalue_agrees_with_pyhessian_power_iteration(case) -> None:
    model, x, y, loader = case
    # PyHessian works on every parameter with requires_grad; freeze the non-prunable ones
    frozen = [p for name, p in model.named_parameters() if not name.endswith("weight")]
    for p in frozen:
        p.requires_grad_(False)
    try:
        torch.manual_seed(0)
        top, _ = pyhessian.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False).eigenvalues(
            maxIter=300, tol=1e-8
        )
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
            p.grad = None  # PyHessian leaves a gradient with its graph on the parameters
    spectrum = slq(HessianOperator(model, (x, y)), iterations=60, probes=1, seed=0)
    assert abs(spectrum.lambda_max - top[0]) <= 1e-5 * abs(top[0])


def test_matmat_agrees_with_curvlinops(case) -> None:
    curvlinops = pytest.importorskip("curvlinops")
    model, x, y, loader = case
    params = [p for name, p in model.named_parameters() if name.endswith("weight")]
    theirs = curvlinops.HessianLinearOperator(model, nn.CrossEntropyLoss(), params, list(loader))
    ours = HessianOperator(model, loader)
    V = torch.randn(ours.dim, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = theirs @ V
    np.testing.assert_allclose(ours.matmat(V).numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
