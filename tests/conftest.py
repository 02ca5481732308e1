"""Shared fixtures."""

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
