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
  ``s*`` less than :data:`KNEE_MIN_SPARSITY` above the fraction ``s₀`` of weights already
  exactly zero (``Prediction.zero_fraction``; 0 for most networks), where the knee test cannot
  tell a knee (see there).

A recorded λ that is not a finite number counts as not recorded. The knee is read at the asked
ε, and another ``--epsilon`` (larger or smaller than batch-std: the knee usually flattens as ε
grows) can fail it where ε = batch-std passes. Where the knee fails only at the user's ε and is
sharp at ε = batch-std (``trust_level``'s ``batch_std``), the verdict stays outside at that ε
but says so ("the prediction holds there", at ε = batch-std), and :attr:`Trust.retrain` is
``False``: the network needs no l1 fine-tune.

The reasons and the evidence are short clauses (the terminal prints them wrapped, the JSON as
one string each). The evidence fits the reason: λ = 0 networks for a network trained without
l1, l1 runs with a flat knee for a flat knee, nothing for a knee the test cannot read (the
``s₀`` guard, an undefined steepness), for which no run was measured.

The numbers quoted with a verdict (ranges of past gaps, run counts) are read at run time from
``pruning_limits/evidence.json``; nothing is typed here. Its ``suite`` section is written by
``examples/validation/run_validation.py --evidence-from``. Its ``flat_knee`` section is written by
``examples/validation/pooled_preregistered.py --evidence`` from the cached records of
``seed_spread.py --fixed-l1 --seeds 0 1 2``, ``preregistered.py`` and
``preregistered_flat_knee.py`` (the cache is not in the repository; the section's
``written_by`` and ``date`` say which run it holds); the suite's later l1 rows with a flat knee
are quoted beside it from ``suite.outside_l1``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from ._checks import PruningLimitsError, check_fraction, describe
from .limits import FLAT_KNEE, KNEE_STEP

#: The evidence file installed with the package (setup.cfg ``package_data``).
EVIDENCE_FILE = Path(__file__).with_name("evidence.json")

IN_REGIME = "in regime"
OUTSIDE = "outside the regime"

#: The fraction of all weights already exactly zero up to which :data:`KNEE_MIN_SPARSITY` covers
#: kneeless Laplace weights beside them (half).
KNEE_GUARD_ZEROS = 0.5


def _uniform_secant(u: float, step: float = KNEE_STEP) -> float:
    """The ±``step`` secant of ``ln R`` at ``u = s − s₀`` where the non-zero magnitudes are uniform
    near 0 (``R² ∝ u³``): ``1.5·ln((u + step)/(u − step))/(2·step)``, for ``u > step``."""
    return 1.5 * math.log((u + step) / (u - step)) / (2 * step)


def _laplace_secant(u: float, zeros: float = KNEE_GUARD_ZEROS, step: float = KNEE_STEP) -> float:
    """The ±``step`` secant of ``ln R`` at ``u = s − s₀`` (``step < u < 1 − zeros − step``) for Laplace
    weights (exponential magnitudes, quantile ``−ln(1 − x)``) beside a fraction ``zeros`` of exact
    zeros, in the continuum: ``R² ∝ F(x) = ∫_0^x ln²(1 − y) dy = 2 − (1 − x)(ln²(1 − x) − 2 ln(1 − x) + 2)``
    with ``x = u/(1 − zeros)`` (the cancellation costs about ``10⁻¹²`` of ``F`` at ``x`` = 0.1)."""

    def integral(x: float) -> float:
        log = math.log1p(-x)
        return 2.0 - (1.0 - x) * (log * log - 2.0 * log + 2.0)

    low, high = ((u + d) / (1.0 - zeros) for d in (-step, step))
    return 0.5 * (math.log(integral(high)) - math.log(integral(low))) / (2 * step)


def _secant_crossing(secant: Callable[[float], float], level: float) -> float:
    """The ``u`` where a kneeless ``secant(u)``, falling in ``u`` there, falls to ``level``: bisection
    between ``1.5/level`` (where it is above: the point bound ``1.5/u``, and the secant is steeper)
    and ``3/level`` (about half of it).

    The bracket must lie inside the secant's domain (``step < u < 1 − zeros − step`` for
    :func:`_laplace_secant`), which holds only for some constants (``FLAT_KNEE`` > 6 with half
    zeros, ``FLAT_KNEE`` < 1.5/``KNEE_STEP``): both ends are evaluated first, and an end outside it
    (``math`` raised a bare ``ValueError: math domain error``, at import) or a secant that does not
    fall through ``level`` between them is a :class:`PruningLimitsError` naming the bracket."""
    if not (isinstance(level, (int, float)) and math.isfinite(level) and level > 0):
        raise PruningLimitsError(f"the knee level must be a finite number > 0, got {level!r}")
    low, high = 1.5 / level, 3.0 / level

    def at(u: float) -> float:
        try:
            value = float(secant(u))
        except (ValueError, ZeroDivisionError, OverflowError) as error:
            raise PruningLimitsError(
                f"the knee level {level:g} brackets u in [{low:g}, {high:g}], outside the secant's domain "
                f"at u = {u:g} ({error}): FLAT_KNEE, KNEE_STEP and KNEE_GUARD_ZEROS give no guard"
            ) from None
        return value

    if not (at(low) > level > at(high)):
        raise PruningLimitsError(f"no crossing of the knee level {level:g} between u = {low:g} and {high:g}")
    for _ in range(100):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if secant(middle) > level else (low, middle)
    return high


#: How far above the fraction ``s₀`` of weights already exactly zero ``s*`` must lie for the knee
#: test (``d ln R/ds`` ≥ ``FLAT_KNEE`` at ``s*``) to tell a knee: 0.0626 (6.26 points), derived here.
#:
#: Pruning the ``s₀·D`` zeros moves nothing (``R = 0`` up to ``s₀``); beyond them the pruned
#: weights are the smallest non-zero ones. Let ``t(u)`` be the magnitude of the ``u``-th smallest
#: non-zero weight, ``u`` in fractions of ``D``, so ``u = s − s₀``, ``R² = D ∫_0^u t(v)² dv`` and
#: ``d ln R/ds = t(u)²/(2∫_0^u t²)``. Where the non-zero ``|w|`` have a non-increasing density
#: and ``t(0) = 0`` (Gaussian, Laplace, uniform weights beside any zeros: no knee at all), ``t`` is
#: convex, so ``t(v) ≤ (v/u)·t(u)``, ``∫_0^u t² ≤ u·t(u)²/3`` and ``d ln R/ds ≥ 1.5/(s − s₀)``,
#: equal for the uniform density: at least ``FLAT_KNEE`` = 25 for ``s − s₀ ≤ 0.06``. There a
#: network without a knee passes the test (a λ = 0 network at ε = 1e-8 read "in regime" at
#: ``s*`` = 0.4 %; 20 000 Gaussian weights, half of them set to 0, read 736 at ``s*`` = 50.1 %).
#: The bound is not for every network: weights of one magnitude, or the survivors of magnitude
#: pruning (all above its threshold: ``t(0) > 0``, ``R² ≈ D·t(0)²·u``), read about ``1/(2u)``
#: (16.7 at ``u`` = 0.03 against ``1.5/u`` = 50); that is ``≥ 25`` only for ``u ≤ 0.02``, inside
#: the guard, which is merely conservative there.
#:
#: The test reads the ±``KNEE_STEP`` (``h``) secant of :func:`pruning_limits.limits.knee_steepness`,
#: not the derivative. ``ln R`` is concave in ``u``, so the secant is steeper: for the uniform
#: density ``1.5·ln((u + h)/(u − h))/(2h)`` (:func:`_uniform_secant`), 25 at ``u`` = 0.06055, not
#: 0.06. A strictly decreasing density lies above ``1.5/u`` as well, most of these the Laplace
#: density, whose magnitudes fall at 0 with a non-zero slope (a cusp; a smooth symmetric density
#: such as the Gaussian is flat at 0, its excess second order in ``u``). The guard is where the
#: secant of Laplace weights beside ``KNEE_GUARD_ZEROS`` = half of all weights exactly zero falls
#: to ``FLAT_KNEE`` (:func:`_laplace_secant`), computed here from ``FLAT_KNEE`` and ``KNEE_STEP``:
#: its margin over the uniform 0.06055 is that excess. On exact quantiles (``D`` = 2·10⁶) the
#: secant falls below 25 at ``u`` = 0.06055 for uniform magnitudes beside any ``s₀``, 0.0606 to
#: 0.0607 for Gaussian beside ``s₀`` = 0 to 0.5 (0.0618 at 0.8), 0.0615 for Laplace without zeros
#: and 0.0626 beside half zeros: all inside the guard (tests/test_regime.py). Not covered: Laplace
#: weights beside more zeros (0.064 at ``s₀`` = 0.7, 0.067 at 0.8; from 0.85 the secant is above
#: 25 up to the largest weights) and densities that rise without bound at 0 (``t ∝ v^{1/a}``,
#: ``a < 1``, read ``(2/a + 1)/(2u)``); there the verdict rests on the knee test alone. The price:
#: an l1-trained network holding exact zeros (a mask kept through training) whose limit lies less
#: than 6.26 points above them is called outside too, its knee untested. docs/theory.md §10.
KNEE_MIN_SPARSITY = _secant_crossing(_laplace_secant, FLAT_KNEE)


#: The sections the verdicts quote, each ``{"runs": n, "gaps": [low, high], ...}`` (:func:`gap_range`).
_GAP_SECTIONS = ("flat_knee", "suite.in_regime", "suite.outside_l1", "suite.controls")


def read_evidence(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The evidence sections (``{}`` when the file is absent).

    Raises:
        PruningLimitsError: the file cannot be read, is not a JSON object, or a section the
            verdicts quote has the wrong shape (one line naming the file and the field, see
            :func:`check_evidence`).
    """
    target = Path(path) if path is not None else EVIDENCE_FILE
    return check_evidence(_load_evidence(target), f"evidence file {str(target)!r}")


def _load_evidence(target: Path) -> dict[str, Any]:
    """The JSON object in ``target`` (``{}`` when it is absent), its sections unchecked."""
    if not target.exists():
        return {}
    try:
        content = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PruningLimitsError(f"cannot read the evidence file {str(target)!r}: {exc}") from None
    if not isinstance(content, dict):
        raise PruningLimitsError(f"evidence file {str(target)!r} must hold a JSON object, got {type(content).__name__}")
    return content


def check_evidence(content: Any, source: str = "evidence") -> dict[str, Any]:
    """``content`` after checking the shape of the sections :func:`trust_level` quotes.

    ``suite`` must be an object; ``flat_knee``, ``suite.in_regime``, ``suite.outside_l1`` and
    ``suite.controls``, where present, objects whose ``runs`` (and ``blind_runs``) are integers
    ``≥ 0`` and whose ``gaps`` are ``[low, high]``, two finite numbers ``low ≤ high`` (required
    where ``runs > 0``; ``[]`` allowed with no runs, as :func:`gap_range` writes it). Other keys
    are not read and not checked.

    Args:
        content: the evidence sections (what :func:`read_evidence` returns).
        source: what the error messages name (the file).

    Returns:
        ``content`` itself.

    Raises:
        PruningLimitsError: one line naming ``source``, the field, what was expected and what came.
    """
    if not isinstance(content, dict):
        raise PruningLimitsError(f"{source} must be a JSON object of sections, got {describe(content)}")
    suite = content.get("suite", {})
    if not isinstance(suite, dict):
        raise PruningLimitsError(f"{source}: suite must be a JSON object, got {describe(suite)}")
    for field in _GAP_SECTIONS:
        holder, _, key = field.rpartition(".")
        parent = suite if holder else content
        if key not in parent:
            continue
        part = parent[key]
        if not isinstance(part, dict):
            raise PruningLimitsError(f"{source}: {field} must be a JSON object with runs and gaps, got {describe(part)}")
        for count in ("runs", "blind_runs"):
            value = part.get(count, 0)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
                raise PruningLimitsError(f"{source}: {field}.{count} must be an integer >= 0, got {describe(value)}")
        gaps = part.get("gaps")
        if part.get("runs", 0) == 0 and (gaps is None or (isinstance(gaps, (list, tuple)) and not gaps)):
            continue
        if not (
            isinstance(gaps, (list, tuple)) and len(gaps) == 2
            and all(not isinstance(g, bool) and isinstance(g, Real) and math.isfinite(g) for g in gaps)
            and gaps[0] <= gaps[1]
        ):
            raise PruningLimitsError(
                f"{source}: {field}.gaps must be [low, high], two finite numbers with low <= high, got {describe(gaps)}"
            )
    return content


def write_evidence_section(name: str, section: dict[str, Any], path: str | os.PathLike[str] | None = None) -> Path:
    """Replace one section of the evidence file (atomically), keeping the others.

    The file's old ``name`` section may be damaged (it is replaced); the result is checked as
    :func:`read_evidence` reads it, before anything is written.
    """
    from .checkpoint import atomic_write

    target = Path(path) if path is not None else EVIDENCE_FILE
    content = _load_evidence(target)
    content[name] = section
    check_evidence(content, f"evidence file {str(target)!r} with the new {name!r} section")
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


def criterion_text(flat_knee: float = FLAT_KNEE, knee_at: str = "s*") -> str:
    """The criterion of :func:`trust_level` as one clause for reports, its guards included (a
    verdict given for a guard contradicted the two conditions stated alone, a review).

    Args:
        flat_knee: the knee threshold the verdict used (a record's ``trust.flat_knee``).
        knee_at: where the knee is taken (``"the unstructured s*"`` for structures).
    """
    least = f"{100 * KNEE_MIN_SPARSITY:.3g}"  # as the reasons of _knee_problem write it
    return (
        f"in regime when d ln R/ds at {knee_at} is at least {flat_knee:g} and the network is not known to be "
        f"trained without l1; outside, with no knee test, where that s* is below {least} % or less than {least} "
        "points above the fraction s₀ of weights already exactly zero (there weights without a knee can pass the "
        "threshold too)"
    )


def trust_level(
    knee_steepness: float,
    l1: float | None,
    *,
    evidence: dict[str, Any] | None = None,
    knee_at: str = "s*",
    sparsity: float | None = None,
    epsilon: float | None = None,
    batch_std: tuple[float, float, float] | None = None,
    zero_fraction: float = 0.0,
) -> Trust:
    """The documented criterion (module docstring) applied to one prediction.

    Args:
        knee_steepness: ``d ln R/ds`` at the predicted ``s*`` (NaN when undefined).
        l1: the λ the network was trained with, or ``None`` when unknown (NaN or ±inf: unknown;
            λ ≤ 0: trained without l1).
        evidence: the evidence sections (default: :func:`read_evidence`).
        knee_at: where the reasons say the knee was taken (``"the unstructured s*"`` for the
            network's verdict on a structure's answer).
        sparsity: that ``s*``; less than :data:`KNEE_MIN_SPARSITY` above ``zero_fraction`` the
            knee test cannot tell a knee (``None`` or NaN: not checked).
        epsilon: the ε of that ``s*``, named where ``batch_std`` changes the verdict's reason.
        batch_std: ``(ε, d ln R/ds, s*)`` at ε = batch-std from the same spectrum, when the
            prediction was made at another ε: a knee sharp there means the network is in the
            regime at batch-std, so no l1 fine-tune is advised (:attr:`Trust.retrain`).
        zero_fraction: ``s₀``, the fraction of weights already exactly zero
            (``Prediction.zero_fraction``), from which the guard counts, at ``s*`` and at
            batch-std alike (one network); default 0.

    Returns:
        The :class:`Trust`.

    Raises:
        PruningLimitsError: an argument of the wrong kind (one line saying what was expected),
            or ``evidence`` of the wrong shape (:func:`check_evidence`).
    """
    evidence = read_evidence() if evidence is None else check_evidence(evidence)
    steep = _number("knee_steepness", knee_steepness, "(NaN where undefined)")
    known_l1 = None if l1 is None else _number("l1", l1, "or None (not recorded)")
    sparsity = None if sparsity is None else _number("sparsity", sparsity, "in [0, 1], NaN or None (not checked)")
    if sparsity is not None and math.isfinite(sparsity):
        check_fraction("sparsity", sparsity)
    epsilon = None if epsilon is None else _number("epsilon", epsilon, "or None")
    zero_fraction = check_fraction("zero_fraction", zero_fraction)
    if batch_std is not None:
        if isinstance(batch_std, (str, bytes)) or not hasattr(batch_std, "__len__") or len(batch_std) != 3:
            raise PruningLimitsError(f"batch_std must be None or (ε, d ln R/ds, s*), three numbers, got {describe(batch_std)}")
        batch_std = tuple(_number(f"batch_std[{i}]", v, "(batch_std is (ε, d ln R/ds, s*))") for i, v in enumerate(batch_std))
    if known_l1 is not None and not math.isfinite(known_l1):
        known_l1 = None  # a damaged record says nothing about the training
    reasons: list[str] = []
    without_l1 = known_l1 is not None and known_l1 <= 0.0
    if without_l1:
        reasons.append("λ = 0, no l1" if known_l1 == 0.0 else f"recorded λ = {known_l1:g} ≤ 0, no l1")
    problem = _knee_problem(steep, sparsity, knee_at, FLAT_KNEE, zero_fraction)
    kind, knee = problem if problem is not None else (None, None)
    if knee is not None:
        reasons.append(knee)
    level = OUTSIDE if (without_l1 or knee is not None) else IN_REGIME
    retrain = level == OUTSIDE
    if level == IN_REGIME:
        trained = f"l1-trained, λ = {known_l1:g}" if known_l1 is not None else "λ not recorded (judged by the knee alone)"
        reasons = [trained, f"sharp knee: d ln R/ds = {steep:.0f} at {knee_at}, ≥ {FLAT_KNEE:g}"]
    elif not without_l1 and batch_std is not None and knee is not None:
        b_eps, b_steep, b_sparsity = (float(v) for v in batch_std)
        if _knee_problem(b_steep, b_sparsity, knee_at, FLAT_KNEE, zero_fraction) is None and b_eps != epsilon:
            at = f" at ε = {epsilon:.3g}" if epsilon is not None else ""
            head, colon, rest = knee.partition(":")
            # "there": at ε = batch-std, whichever of the two ε is the larger (it said "at the larger ε",
            # backwards for the common case, an --epsilon above batch-std where the knee flattens)
            reasons = [
                f"{head}{at}{colon}{rest}",
                f"at ε = batch-std ({b_eps:.3g}) the knee is sharp (d ln R/ds = {b_steep:.0f}): the prediction holds there",
            ]
            retrain = False
    if level == OUTSIDE and known_l1 is None:
        reasons.append("λ not recorded")
    return Trust(level, tuple(reasons), _evidence_text(level, without_l1, kind, evidence), steep, FLAT_KNEE, known_l1, retrain)


def _number(name: str, value: Any, expected: str) -> float:
    """``value`` as a float after checking it is a real number (NaN and ±inf allowed), not a bool or a string."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise PruningLimitsError(f"{name} must be a number {expected}, got {describe(value)}")
    return float(value)


def _percent(fraction: float) -> str:
    """``fraction`` in percent to one decimal (two significant digits below 0.1 %, so a few zeros do not read 0.0 %)."""
    return f"{100 * fraction:.1f}" if fraction == 0 or 100 * fraction >= 0.1 else f"{100 * fraction:.2g}"


#: The kinds of knee problem (:func:`_knee_problem`): a flat knee (the kind the evidence of
#: ``flat_knee`` runs was measured on), no knee test (the ``s₀`` guard) and an undefined steepness.
FLAT, NO_TEST, UNDEFINED = "flat", "no test", "undefined"


def _knee_problem(
    steep: float, sparsity: float | None, knee_at: str, flat_knee: float, zero_fraction: float = 0.0
) -> tuple[str, str] | None:
    """Why the knee test fails at ``s*``, as ``(kind, clause)`` (:data:`FLAT`, :data:`NO_TEST`,
    :data:`UNDEFINED`), or ``None`` where the knee is sharp."""
    if not math.isfinite(steep):
        return UNDEFINED, f"knee of R(s) undefined at {knee_at}"
    if sparsity is not None and math.isfinite(sparsity) and sparsity - zero_fraction < KNEE_MIN_SPARSITY:
        # not "any network": weights of one magnitude or a magnitude-pruned checkpoint read less (KNEE_MIN_SPARSITY)
        kneeless = "where weights without a knee pass it too"
        if zero_fraction == 0:
            return NO_TEST, f"no knee test: {knee_at} = {100 * sparsity:.1f} % is below {100 * KNEE_MIN_SPARSITY:.3g} %, {kneeless}"
        return NO_TEST, (
            f"no knee test: {knee_at} = {_percent(sparsity)} % is less than {100 * KNEE_MIN_SPARSITY:.3g} points above the "
            f"{_percent(zero_fraction)} % of weights already zero (s₀), {kneeless}"
        )
    if steep < flat_knee:
        shown = f"{steep:.0f}" if round(steep) < flat_knee else f"{math.floor(steep * 10) / 10:.1f}"  # 24.9, not 25
        return FLAT, f"flat knee: d ln R/ds = {shown} at {knee_at}, < {flat_knee:g}"
    return None


def _evidence_text(level: str, without_l1: bool, kind: str | None, evidence: dict[str, Any]) -> str:
    """What past runs showed in the verdict's situation (``kind``: the knee problem, :func:`_knee_problem`),
    ``predicted − measured`` first; "" where none was measured (no knee test, an undefined knee:
    the flat-knee runs were quoted there, for a knee the test found sharp, a review)."""
    suite = evidence.get("suite", {})
    if level == IN_REGIME:
        part = suite.get("in_regime")
        if part and part.get("runs"):
            return f"predicted − measured {_range(*part['gaps'])} points on {part['runs']} such networks"
        return ""
    if without_l1:
        part = suite.get("controls")
        if part and part.get("runs"):
            return f"predicted − measured {_range(*part['gaps'])} points on {part['runs']} λ = 0 networks"
        return ""
    if kind != FLAT:
        return ""
    texts = []
    part = evidence.get("flat_knee")
    if part and part.get("runs"):
        texts.append(f"{_range(*part['gaps'])} points on {part['runs']} flat-knee l1 runs ({part.get('blind_runs', 0)} blind)")
    part = suite.get("outside_l1")  # the suite's own l1 rows with a flat knee, written with the suite
    if part and part.get("runs"):
        runs = part["runs"]
        texts.append(f"{_range(*part['gaps'])} points on the suite's {runs} flat-knee l1 network{'s' if runs > 1 else ''}")
    return f"predicted − measured {'; '.join(texts)}" if texts else ""


def gap_range(gaps: list[float]) -> dict[str, Any]:
    """``{"runs": n, "gaps": [min, max]}`` in points of sparsity (for the evidence file)."""
    points = [100.0 * g for g in gaps]
    return {"runs": len(points), "gaps": [round(min(points), 1), round(max(points), 1)] if points else []}
