"""Whether a prediction can be trusted: the regime criterion and the evidence it quotes.

The kinematic prediction (shared/THEORY.md §4) is a pruning limit only for networks in the LOMP
regime (THEORY §9): trained with an l1 penalty strong enough that ``R(s)`` has a sharp knee.
docs/validation.md measured what happens outside it: λ = 0 networks were predicted 11 to 31
points above their one-shot limit, and l1-trained networks whose knee was flat at ``s*`` were
predicted too high as well. The criterion (:func:`trust_level`) is therefore:

- **in regime** when the knee sharpness ``d ln R/ds`` at ``s*`` (``Prediction.knee_steepness``,
  ``limits.knee_steepness``) is at least ``limits.FLAT_KNEE`` = 25 *and* the network is not known
  to be trained without l1 (a bundle records its λ; other checkpoints say nothing and are
  judged by the knee alone);
- **outside the regime** otherwise: recorded λ ≤ 0, a flat knee, an undefined steepness, or an
  ``s*`` below :data:`KNEE_MIN_SPARSITY`, where the knee test cannot tell a knee (see there).

A recorded λ that is not a finite number counts as not recorded. Where the knee fails only at
the user's ε and is sharp at ε = batch-std (``trust_level``'s ``batch_std``), the verdict stays
outside at that ε but says so, and :attr:`Trust.retrain` is ``False``: the network needs no
l1 fine-tune, the prediction holds at the larger ε.

The numbers quoted with a verdict (ranges of past gaps, run counts) are read at run time from
``pruning_limits/evidence.json``; nothing is typed here. Its ``suite`` section is written by
``examples/validation/run_validation.py --evidence-from``. Its ``flat_knee`` section is not
written by any script of this checkout: it carries the constants of earlier runs
(``seed_spread.py``, ``preregistered.py``, ``preregistered_flat_knee.py``, whose records are not
in the repository) unchanged, as its ``written_by`` says; the suite's later l1 rows with a flat
knee are quoted beside it from ``suite.outside_l1``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._checks import PruningLimitsError
from .limits import FLAT_KNEE

#: The evidence file installed with the package (setup.cfg ``package_data``).
EVIDENCE_FILE = Path(__file__).with_name("evidence.json")

IN_REGIME = "in regime"
OUTSIDE = "outside the regime"

#: ``s*`` below which the knee test (``d ln R/ds`` ≥ ``FLAT_KNEE`` at ``s*``) cannot tell a knee.
#: Near ``s = 0`` the pruned weights are the smallest ones; for any weight density that is
#: finite and non-zero at 0 (Gaussian-like weights, no knee at all) ``|w| < t`` with ``t ∝ s``, so
#: ``R² = Σ pruned w² ∝ ∫_0^t w² dw ∝ s³`` and ``d ln R/ds = 1.5/s``. That is at least
#: ``FLAT_KNEE`` = 25 for every ``s ≤ 1.5/25 = 0.06``: below 6 % a network without a knee
#: passes the test (a λ = 0 network at ε = 1e-8 read "in regime"), so there the verdict is
#: outside. docs/theory.md §10.
KNEE_MIN_SPARSITY = 1.5 / FLAT_KNEE


def read_evidence(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The evidence sections (``{}`` when the file is absent); a damaged file is a one-line error."""
    target = Path(path) if path is not None else EVIDENCE_FILE
    if not target.exists():
        return {}
    try:
        content = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PruningLimitsError(f"cannot read the evidence file {str(target)!r}: {exc}") from None
    if not isinstance(content, dict):
        raise PruningLimitsError(f"evidence file {str(target)!r} must hold a JSON object, got {type(content).__name__}")
    return content


def write_evidence_section(name: str, section: dict[str, Any], path: str | os.PathLike[str] | None = None) -> Path:
    """Replace one section of the evidence file (atomically), keeping the others."""
    from .checkpoint import atomic_write

    target = Path(path) if path is not None else EVIDENCE_FILE
    content = read_evidence(target)
    content[name] = section
    return atomic_write(target, json.dumps(content, indent=2, ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class Trust:
    """The verdict on one prediction.

    Attributes:
        level: :data:`IN_REGIME` or :data:`OUTSIDE`.
        reasons: why, in words (each a clause).
        evidence: what past runs in that situation showed, in words ("" when the file has none;
            the commands also set "" on the network's verdict on a structure's answer, the
            evidence being of unstructured answers).
        knee_steepness: ``d ln R/ds`` at ``s*``.
        flat_knee: the level it was compared with.
        l1: the recorded λ, or ``None`` when the checkpoint does not say (or records no finite number).
        retrain: whether an l1 fine-tune (the commands' ``next``) is the advice: outside the
            regime, unless the knee is sharp at ε = batch-std (then ``False``, as inside).
    """

    level: str
    reasons: tuple[str, ...]
    evidence: str
    knee_steepness: float
    flat_knee: float
    l1: float | None
    retrain: bool = False

    @property
    def in_regime(self) -> bool:
        return self.level == IN_REGIME

    def reason(self) -> str:
        """The reasons joined into one clause."""
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy."""
        return {
            "level": self.level,
            "in_regime": self.in_regime,
            "reason": self.reason(),
            "evidence": self.evidence,
            "knee_steepness": None if not math.isfinite(self.knee_steepness) else self.knee_steepness,
            "flat_knee": self.flat_knee,
            "l1": self.l1,
            "retrain": self.retrain,
        }


def _range(low: float, high: float) -> str:
    return f"{low:+.1f} to {high:+.1f}" if low != high else f"{low:+.1f}"


def trust_level(
    knee_steepness: float,
    l1: float | None,
    *,
    evidence: dict[str, Any] | None = None,
    knee_at: str = "s*",
    sparsity: float | None = None,
    epsilon: float | None = None,
    batch_std: tuple[float, float, float] | None = None,
) -> Trust:
    """The documented criterion (module docstring) applied to one prediction.

    Args:
        knee_steepness: ``d ln R/ds`` at the predicted ``s*`` (NaN when undefined).
        l1: the λ the network was trained with, or ``None`` when unknown (NaN or ±inf: unknown;
            λ ≤ 0: trained without l1).
        evidence: the evidence sections (default: :func:`read_evidence`).
        knee_at: where the reasons say the knee was taken (``"the unstructured s*"`` for the
            network's verdict on a structure's answer).
        sparsity: that ``s*``; below :data:`KNEE_MIN_SPARSITY` the knee test cannot tell a knee
            (``None``: not checked).
        epsilon: the ε of that ``s*``, named where ``batch_std`` changes the verdict's reason.
        batch_std: ``(ε, d ln R/ds, s*)`` at ε = batch-std from the same spectrum, when the
            prediction was made at another ε: a knee sharp there means the network is in the
            regime at batch-std, so no l1 fine-tune is advised (:attr:`Trust.retrain`).

    Returns:
        The :class:`Trust`.
    """

    evidence = read_evidence() if evidence is None else evidence
    steep = float(knee_steepness)
    known_l1 = None if l1 is None else float(l1)
    if known_l1 is not None and not math.isfinite(known_l1):
        known_l1 = None  # a damaged record says nothing about the training
    reasons: list[str] = []
    without_l1 = known_l1 is not None and known_l1 <= 0.0
    if without_l1:
        reasons.append("trained without l1 (λ = 0)" if known_l1 == 0.0 else f"trained without l1 (recorded λ = {known_l1:g} ≤ 0)")
    knee = _knee_problem(steep, sparsity, knee_at, FLAT_KNEE)
    if knee is not None:
        reasons.append(knee)
    level = OUTSIDE if (without_l1 or knee is not None) else IN_REGIME
    retrain = level == OUTSIDE
    if level == IN_REGIME:
        trained = f"l1-trained (λ = {known_l1:g})" if known_l1 is not None else "λ not recorded (judged by the knee alone)"
        reasons = [trained, f"sharp knee: d ln R/ds = {steep:.0f} at {knee_at}, at least {FLAT_KNEE:g}"]
    elif not without_l1 and batch_std is not None and knee is not None:
        b_eps, b_steep, b_sparsity = (float(v) for v in batch_std)
        if _knee_problem(b_steep, b_sparsity, knee_at, FLAT_KNEE) is None and b_eps != epsilon:
            at = f" at ε = {epsilon:.3g}" if epsilon is not None else ""
            head, colon, rest = knee.partition(":")
            reasons = [
                f"{head}{at}{colon}{rest}",
                f"at ε = batch-std ({b_eps:.3g}) the knee is sharp (d ln R/ds = {b_steep:.0f}): the prediction holds at the larger ε",
            ]
            retrain = False
    if level == OUTSIDE and known_l1 is None:
        reasons.append("λ not recorded")
    return Trust(level, tuple(reasons), _evidence_text(level, without_l1, evidence), steep, FLAT_KNEE, known_l1, retrain)


def _knee_problem(steep: float, sparsity: float | None, knee_at: str, flat_knee: float) -> str | None:
    """Why the knee test fails at ``s*`` (a clause), or ``None`` where the knee is sharp."""
    if not math.isfinite(steep):
        return f"knee of R(s) undefined at {knee_at}"
    if sparsity is not None and math.isfinite(float(sparsity)) and float(sparsity) < KNEE_MIN_SPARSITY:
        return (
            f"no knee test: {knee_at} = {100 * float(sparsity):.1f} % is below {100 * KNEE_MIN_SPARSITY:g} %, "
            f"where d ln R/ds ≥ 1.5/s for any network, knee or not"
        )
    if steep < flat_knee:
        shown = f"{steep:.0f}" if round(steep) < flat_knee else f"{math.floor(steep * 10) / 10:.1f}"  # 24.9, not 25
        return f"flat knee: d ln R/ds = {shown} at {knee_at}, below {flat_knee:g}"
    return None


def _evidence_text(level: str, without_l1: bool, evidence: dict[str, Any]) -> str:
    suite = evidence.get("suite", {})
    if level == IN_REGIME:
        part = suite.get("in_regime")
        if part and part.get("runs"):
            return f"on {part['runs']} such networks (docs/validation.md) predicted − measured was {_range(*part['gaps'])} points"
        return ""
    if without_l1:
        part = suite.get("controls")
        if part and part.get("runs"):
            return f"on {part['runs']} λ = 0 networks (docs/validation.md) predicted − measured was {_range(*part['gaps'])} points"
    texts = []
    part = evidence.get("flat_knee")
    if part and part.get("runs"):
        texts.append(
            f"on {part['runs']} l1 runs with a flat knee ({part.get('blind_runs', 0)} blind) "
            f"predicted − measured was {_range(*part['gaps'])} points"
        )
    part = suite.get("outside_l1")  # the suite's own l1 rows with a flat knee, written with the suite
    if part and part.get("runs"):
        runs = part["runs"]
        texts.append(f"on the suite's {runs} l1 network{'s' if runs > 1 else ''} with a flat knee {_range(*part['gaps'])} points")
    return "; ".join(texts)


def gap_range(gaps: list[float]) -> dict[str, Any]:
    """``{"runs": n, "gaps": [min, max]}`` in points of sparsity (for the evidence file)."""
    points = [100.0 * g for g in gaps]
    return {"runs": len(points), "gaps": [round(min(points), 1), round(max(points), 1)] if points else []}
