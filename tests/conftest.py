"""Shared fixtures."""

import copy
import runpy
from pathlib import Path

import pytest
import torch
from torch import nn


class _CreatesFile:
    """Unpickling this object calls ``open(path, "w")``: it would create the file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class _Holder(nn.Module):
    """A digits-sized model carrying the malicious payload."""

    def __init__(self, payload: object) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)
        self.payload = payload

    def forward(self, x):
        return self.fc(x)


@pytest.fixture
def malicious_checkpoint(tmp_path):
    """``(path, victim)``: a pickled full model whose unpickling would create ``victim``."""
    victim = tmp_path / "created-by-unpickling.txt"
    path = tmp_path / "evil.pt"
    torch.save(_Holder(_CreatesFile(str(victim))), path)
    assert not victim.exists()
    return path, victim


@pytest.fixture(scope="session")
def _digits_mlp_trained():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "slq_accuracy.py"
    return runpy.run_path(str(path))["digits_mlp"]()


@pytest.fixture(scope="module")
def digits_oracle_mlp(_digits_mlp_trained):
    """``(model, x, y)``: the 64-24-16-10 tanh MLP (D = 2 080) of benchmarks/slq_accuracy.py, built
    by its ``digits_mlp`` (so the benchmark's numbers quoted in tests are of this very model),
    trained once per session; each test module gets its own copy of the model."""
    model, x, y = _digits_mlp_trained
    return copy.deepcopy(model), x, y
