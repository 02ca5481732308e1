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


def one_line(info: pytest.ExceptionInfo) -> str:
    """The message of the error caught by ``with pytest.raises(...) as info``, asserted to be one
    non-empty line (the error standard: what was expected and what came, on one line). Tests
    import it (``from conftest import one_line``) and match the message's substance with
    ``pytest.raises(match=...)``, not a single keyword."""
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


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
    with torch.random.fork_rng(devices=[]):  # it seeds the global generator: leave the session's as it was
        return runpy.run_path(str(path))["digits_mlp"]()


@pytest.fixture(scope="module")
def digits_oracle_mlp(_digits_mlp_trained):
    """``(model, x, y)``: the 64-24-16-10 tanh MLP (D = 2 080) of benchmarks/slq_accuracy.py, built
    by its ``digits_mlp`` (so the benchmark's numbers quoted in tests are of this very model),
    trained once per session; each test module gets its own copy of the model."""
    model, x, y = _digits_mlp_trained
    return copy.deepcopy(model), x, y


@pytest.fixture
def cancelling_groups():
    """A structure's curve whose first-order cost cancels inside each group, for the fixed-point
    figure tests (tests/test_limits.py, tests/test_report.py).

    Three groups of two weights (allowed counts 0, 2, 4, 6); ``−g·w`` = +0.05, −0.05 | +0.1,
    −0.1 | 0, 0, so every whole group costs 0; a zero Hessian (``δ/D = 1`` where ``ε − c > 0``),
    ε = 0.08: ``s* = 1`` (closed form), while counting partial groups' cost crosses at 1/3.
    Returns a dict of ``weights``, ``gradient``, ``order``, ``allowed``, ``r2`` (``R_k²``),
    ``spectrum`` and ``epsilon``.
    """
    import numpy as np

    from pruning_limits.spectrum import Spectrum

    weights = np.array([0.1, 0.1, 0.2, 0.2, 1.0, 1.0])
    return {
        "weights": weights,
        "gradient": np.array([-0.5, 0.5, -0.5, 0.5, 0.0, 0.0]),
        "order": np.arange(6),
        "allowed": np.array([0, 2, 4, 6]),
        "r2": np.concatenate([[0.0], np.cumsum(weights**2)])[::-1].copy(),
        "spectrum": Spectrum.from_eigenvalues(np.zeros(6)),
        "epsilon": 0.08,
    }


@pytest.fixture
def symmetry_margin(monkeypatch):
    """The worst asymmetry the block Lanczos symmetry check saw, as a fraction of its tolerance.

    Wraps ``lanczos._Symmetry.check`` and reads, after each call (a refusing one too), the
    ``margin`` the check itself recorded (asymmetry over tolerance), so that a test measures what
    the check compares, not a copy of its formula. Returns a one-item list (reset it to ``0.0``
    between runs).
    """
    import pruning_limits.lanczos as lanczos_module

    worst = [0.0]
    check = lanczos_module._Symmetry.check

    def measured(self, *args, **kwargs):
        try:
            return check(self, *args, **kwargs)
        finally:
            worst[0] = max(worst[0], self.margin)

    monkeypatch.setattr(lanczos_module._Symmetry, "check", measured)
    return worst
