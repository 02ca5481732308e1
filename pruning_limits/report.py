"""Result records to JSON, text and Markdown tables, and matplotlib figures.

Plain functions from dicts (the ``to_dict()`` records of the library, or the small dicts
described in each docstring) to strings and :class:`matplotlib.figure.Figure` objects.
Figures are built with the object-oriented API on the Agg canvas (no ``pyplot``, no global
backend switch), and matplotlib is imported only when a figure is drawn. Files are written
atomically with :func:`pruning_limits.checkpoint.atomic_open`.

The figures follow Zhang et al., "How Sparse Can We Prune A Deep Network" (NeurIPS 2024):
the spectral density of the Hessian on a log scale (their Fig. 3 style, after PyHessian,
Yao et al. 2020) and loss/accuracy against sparsity with the predicted limit marked (their
main validation figure).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._checks import PruningLimitsError, describe, message_line
from ._jsonable import to_jsonable
from .checkpoint import atomic_open, atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .spectrum import Spectrum

#: File suffixes :func:`save_figure` accepts (the raster and vector formats of the Agg family).
FIGURE_FORMATS = ("png", "pdf", "svg")

#: What the ``next`` command does when nothing more specific is known: an l1 fine-tune.
NEXT_REASON = "l1 fine-tune into the regime, then predict again"


def next_text(command: str, reason: str | None = None) -> str:
    """``CMD  # reason``: the text after ``next: `` on a short ``next:`` line, which pastes into a
    shell as it stands (the reason a comment; the JSON keeps ``next`` and ``next_reason`` apart).
    ``None`` or ``""`` reads :data:`NEXT_REASON` (no caller gives an empty reason on purpose)."""
    return f"{command}  # {reason or NEXT_REASON}"


#: Terminal lines are kept to this many characters where they can be split (the project's rule:
#: short lines). 88, not 100: the width the output reviews measure against (black's default, too),
#: which leaves room in an 80- to 100-column terminal for the prompt and a hanging indent, and the
#: wrapped trust, evidence and next lines all fit it; errors stay one line and are shortened instead.
LINE_WIDTH = 88


def _check_width(width: Any, indent: int) -> int:
    if isinstance(width, bool) or not isinstance(width, int) or width <= indent:
        raise PruningLimitsError(f"width must be an integer above the indent of {indent} characters, got {describe(width)}")
    return width


def _wrap_words(text: str, width: int, first: str, indent: str) -> list[str]:
    """``text`` wrapped at spaces, ``first`` before the first line and ``indent`` before the others;
    never inside a word (a word wider than the room stays whole on its own line) nor at a hyphen."""
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


#: Where :func:`hang` breaks a text first, in this order: between clauses, then after a colon.
_BREAKS = ("; ", ": ")


def _pack(first: str, text: str, width: int, indent: str) -> list[str]:
    """``text`` after ``first``, in lines of at most ``width`` where its words allow, each further
    line after ``indent``: a piece that does not fit is split at the next of :data:`_BREAKS` (the
    separator kept at the end of a line) and its parts packed alike, each part whole on a line
    where it fits; only a part that fits no line is wrapped at spaces (never inside a word)."""
    lines: list[str] = []
    current, empty = first, True  # the line being filled; empty: it holds its lead alone

    def add(piece: str, level: int) -> None:
        nonlocal current, empty
        joined = current + ("" if empty else " ") + piece
        if len(joined) <= width:
            current, empty = joined, False
            return
        if not empty and len(indent) + len(piece) <= width:  # whole on a line of its own
            lines.append(current)
            current, empty = indent + piece, False
            return
        for at in range(level, len(_BREAKS)):
            separator = _BREAKS[at]
            if separator in piece:
                parts = piece.split(separator)
                for part in [p + separator.rstrip() for p in parts[:-1]] + parts[-1:]:
                    add(part, at + 1)
                return
        if not empty:
            lines.append(current)
            current = indent
        wrapped = _wrap_words(piece, width, current, indent)
        lines.extend(wrapped[:-1])
        current, empty = wrapped[-1], False

    add(text, 0)
    lines.append(current)
    return lines


def hang(prefix: str, text: str, width: int = LINE_WIDTH) -> list[str]:
    """``prefix + text`` as one line, or, past ``width`` characters, wrapped with a hanging indent
    under the text: broken after ``"; "`` first (each clause whole where it fits a line), then
    after ``": "``, then at spaces, never inside a word or at a hyphen (a word wider than the room
    stays whole).

    For the ``trust:`` and ``evidence:`` lines on a terminal; the JSON keeps each one string.

    Raises:
        PruningLimitsError: ``width`` not above the indent (``len(prefix)``).
    """
    _check_width(width, len(prefix))
    if len(prefix) + len(text) <= width:
        return [prefix + text]
    return _pack(prefix, text, width, " " * len(prefix))


def trust_lines(trust: Mapping[str, Any], width: int = LINE_WIDTH) -> list[str]:
    """``trust: level (reason)`` and, where there is one, ``evidence: ...``, each wrapped by
    :func:`hang` (``trust`` a ``regime.Trust.to_dict()`` record)."""
    lines = hang("trust: ", f"{trust['level']} ({trust['reason']})", width)
    if trust.get("evidence"):
        lines += hang("evidence: ", str(trust["evidence"]), width)
    return lines


def _shell_words(command: str) -> list[str]:
    """``command`` split at the spaces a shell splits it at, each word quoted by
    :func:`shlex.quote`, so that the words joined by spaces are the command again where it was
    written so (the command line builds its ``next`` so: ``_common.train_next_step``), and the same
    arguments in any case; text that is no shell syntax (an unbalanced quote) splits at spaces."""
    import shlex

    try:
        return [shlex.quote(word) for word in shlex.split(command)]
    except ValueError:
        return command.split()


#: The indent of a ``next:`` command's continuation lines and of its reason's comment lines.
_NEXT_INDENT = " " * len("next: ")


def next_lines(command: str, reason: str | None = None, *, width: int = LINE_WIDTH) -> list[str]:
    """``next: CMD  # reason`` as one line, or, past ``width`` characters, ``next: CMD`` and the
    reason as indented shell comments below it. A command itself past ``width`` is broken between
    its words with `` \\`` continuations (an option kept with its value where they fit a line; a
    word wider than the room, a long path, stays whole). In all, the text after ``next: `` (with
    the comment lines, which do nothing) pastes into a shell as it stands; the ``next:`` itself is
    no command. ``reason``: as :func:`next_text`.

    Raises:
        PruningLimitsError: ``width`` not above the comment lines' indent (8 characters).
    """
    comment = _NEXT_INDENT + "# "
    _check_width(width, len(comment))
    line = f"next: {next_text(command, reason)}"
    if len(line) <= width:
        return [line]
    lines = [f"next: {command}"]
    if len(lines[0]) > width:
        words = _shell_words(command)
        units: list[str] = []  # an option and its value together, where the two fit a line
        for word in words:
            pair = f"{units[-1]} {word}" if units else ""
            if (units and units[-1].startswith("-") and " " not in units[-1] and not word.startswith("-")
                    and len(f"{_NEXT_INDENT}{pair} \\") <= width):
                units[-1] = pair
            else:
                units.append(word)
        rows: list[list[str]] = [[]]  # each line's words; every line but the last ends in " \\"
        for unit in units:
            lead = "next:" if len(rows) == 1 else _NEXT_INDENT[:-1]  # joined by a space: under the command
            if rows[-1] and len(" ".join([lead, *rows[-1], unit, "\\"])) > width:
                rows.append([])
            rows[-1].append(unit)
        leads = ["next:"] + [_NEXT_INDENT[:-1]] * (len(rows) - 1)
        lines = [" ".join([lead, *row]) + (" \\" if i < len(rows) - 1 else "") for i, (lead, row) in enumerate(zip(leads, rows))]
    return [*lines, *_pack(comment, reason or NEXT_REASON, width, comment)]


# ----------------------------------------------------------------------------- JSON


def dumps_json(record: Any, *, indent: int | None = 2) -> str:
    """One JSON document (strict: no NaN) for ``record``."""
    return json.dumps(to_jsonable(record), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike[str], record: Any) -> Path:
    """Write ``record`` as JSON to ``path`` atomically."""
    return atomic_write(path, dumps_json(record) + "\n")


# ----------------------------------------------------------------------------- tables


def format_number(value: Any, digits: int = 4) -> str:
    """Compact text for a number (``-`` for missing or non-finite values)."""
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if not math.isfinite(number):
            return "-"
        if number == 0:
            return "0"
        if abs(number) < 1e-3 or abs(number) >= 1e5:
            return f"{number:.{digits}g}"
        return f"{number:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def format_interval(interval: Sequence[Any] | None, digits: int = 3) -> str:
    """``[low, high]`` with ``digits`` decimals, or ``-``."""
    if interval is None or len(interval) != 2 or any(v is None for v in interval):
        return "-"
    low, high = (float(v) for v in interval)
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def text_table(rows: Sequence[tuple[str, str]]) -> str:
    """Two aligned columns of text (name, value) for the terminal; a row past :data:`LINE_WIDTH`
    wraps its value under the value column (:func:`hang`; spectrum's method row took 93
    characters), unless the names leave it less than 20 characters."""
    if not rows:
        return ""
    width = max(len(name) for name, _ in rows)
    lines = []
    for name, value in rows:
        lead = f"{name.ljust(width)}  "
        lines += hang(lead, value) if len(lead) + 20 <= LINE_WIDTH else [lead + value]
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; cells are converted with :func:`format_number`."""
    if any(len(row) != len(header) for row in rows):
        raise PruningLimitsError(f"every row needs {len(header)} cells")

    def cell(value: Any) -> str:
        return format_number(value).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def prediction_rows(prediction: Mapping[str, Any], *, knee_at: str = "s*") -> list[tuple[str, str]]:
    """Name/value rows for a prediction record (keys of ``Prediction.to_dict()``); ``knee_at``
    names the ``s*`` of its knee row (a structure's own, beside a verdict read at the unstructured one)."""
    rows = [
        ("predicted sparsity s*", f"{float(prediction['sparsity']):.4f}"),
        (f"kinematic interval (eta={format_number(prediction.get('eta'))})", format_interval(prediction.get("interval"))),
        ("density 1 - s*", f"{float(prediction['density']):.4f}"),
        ("epsilon", format_number(prediction.get("epsilon"))),
        ("D (prunable weights)", format_number(prediction.get("dim"))),
    ]
    if prediction.get("probe_spread") is not None:
        rows.append(("s* spread over probes (std)", format_number(prediction.get("probe_spread"))))
    if prediction.get("trace_bound") is not None:
        rows.append(("sharpness-only bound", format_number(prediction.get("trace_bound"))))
    if prediction.get("gradient_term") and prediction.get("first_order_limit") is not None:
        rows.append(("first-order ceiling", format_number(prediction.get("first_order_limit"))))
    if prediction.get("knee_steepness") is not None:
        # "knee d ln R/ds" where another s* is named: the label stays short (the table aligns to it)
        name = "knee sharpness d ln R/ds" if knee_at == "s*" else "knee d ln R/ds"
        rows.append((f"{name} at {knee_at}", f"{float(prediction['knee_steepness']):.1f}"))
    return rows


def plural(count: int, noun: str) -> str:
    """``"1 epoch"``, ``"2 epochs"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _pct(value: Any) -> str:
    return f"{100 * float(value):.1f} %"


def shown_difference(predicted: Any, measured: Any) -> float:
    """``predicted − measured`` in points, from the two numbers as printed (one decimal), so that
    the difference beside them is their difference (95.6 − 95.6 read "+0.1", a review); the
    JSON keeps the exact one."""
    return float(f"{100 * float(predicted):.1f}") - float(f"{100 * float(measured):.1f}") + 0.0  # + 0.0: no "-0.0"


def _interval_pct(interval: Sequence[Any] | None) -> str:
    if interval is None or len(interval) != 2 or any(v is None for v in interval):
        return ""
    return f" [{100 * float(interval[0]):.1f}, {100 * float(interval[1]):.1f}]"


def answer_lines(
    prediction: Mapping[str, Any],
    trust: Mapping[str, Any],
    *,
    measured: float | None = None,
    next_command: str | None = None,
    next_reason: str | None = None,
    structure: str | None = None,
    spectrum: Mapping[str, Any] | None = None,
) -> list[str]:
    """The few lines a user acts on: the answer with its trust level, the reason, the evidence, a
    mark when SLQ did not settle (:func:`unsettled_mark`), the next step.

    Args:
        prediction: a prediction record (``sparsity``, ``interval``).
        trust: a ``regime.Trust.to_dict()`` record.
        measured: the measured one-shot limit (by loss), for ``validate``.
        next_command: the command that brings a network outside the regime into it.
        next_reason: what that command does or costs, in a clause (default: an l1 fine-tune).
        structure: the structure the answer is for (``"neuron"``; ``None``: unstructured).
        spectrum: the spectrum record whose ``stopping`` says whether SLQ settled (default: the
            prediction's own ``spectrum``, where it has one).
    """
    s_star = f"{_pct(prediction['sparsity'])}{_interval_pct(prediction.get('interval'))}"
    inside = bool(trust["in_regime"])
    kind = f"{structure} " if structure else ""
    if measured is None:
        head = (f"{kind}pruning limit: {s_star} sparsity" if inside
                else f"predicted {s_star} {kind}sparsity: not a pruning limit for this network")
    else:
        diff = shown_difference(prediction["sparsity"], measured)
        if not inside:  # the verdict first: the number is no limit here ("not a limit" for a structure, as short)
            verdict = f"{structure}: not a limit" if structure else "not a pruning limit"
            head = f"{verdict}: predicted {s_star}, measured {_pct(measured)} ({diff:+.1f} points)"
        elif structure:
            head = f"{structure}: predicted {s_star}, measured {_pct(measured)}, difference {diff:+.1f} points"
        else:
            head = f"predicted {s_star}, measured {_pct(measured)} sparsity, difference {diff:+.1f} points"
    lines = [head, *trust_lines(trust)]
    lines += unsettled_mark(prediction.get("spectrum") if spectrum is None else spectrum)
    if not inside and next_command:
        lines += next_lines(next_command, next_reason)
    return lines


def _unsettled_stop(spectrum: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The ``stopping`` record of an adaptive run that ended unsettled, else ``None``."""
    stop = (spectrum or {}).get("stopping") or {}
    return stop if stop.get("adaptive") and stop.get("converged") is False else None


def unsettled_mark(spectrum: Mapping[str, Any] | None, width: int = LINE_WIDTH) -> list[str]:
    """The mark beside the answer of an adaptive SLQ run that did not settle (wrapped by
    :func:`hang`), else no line.

    The command's warning, on stderr, says why and what to raise; ``-q`` hides it and a
    redirected stdout never had it, so the answer itself carries the mark (a review,
    2026-12-06). ``spectrum``: a spectrum record with its ``stopping``. Until 2026-12-06 it was
    one line of 92 characters at the default tolerance, and read "(SLQ dimension)" where ``D``
    allowed no more steps.
    """
    stop = _unsettled_stop(spectrum)
    if stop is None:
        return []
    why = "D allows no more steps" if stop.get("ended") == "dimension" else "SLQ step limit"
    moved, tolerance = stop.get("moved"), stop.get("tolerance")
    how = (f", s* moved {100 * moved:.2f} points, tolerance {100 * tolerance:g}"
           if moved is not None and tolerance else "")
    return hang("not settled: ", f"{why}{how}; the answer may still move", width)


def _reference_share(path: Mapping[str, Any]) -> float:
    share = path.get("knee_reference_share")
    return 0.01 if share is None else float(share)  # regpath.KNEE_REFERENCE_SHARE (records before it was kept)


def path_summary(path: Mapping[str, Any], *, knee_at_s_star: float | None = None, flat_knee: float | None = None) -> str:
    """Sentences on a regularisation path (``regpath.RegularisationPath.to_dict()``): the rule's
    choice, then what the knee sharpness recorded per λ is (``d ln R/ds`` at ``s_ref``), and that
    it is not the knee of the trust criterion, which is taken at ``s*``.

    ``knee_at_s_star``: the final network's ``d ln R/ds`` at its ``s*`` (the prediction's
    ``knee_steepness``), named beside the chosen λ's ``s_ref`` knee; ``flat_knee``: the
    criterion's threshold (``regime.FLAT_KNEE``).
    """
    points = path["points"]
    metric = path["metric"]
    tolerance = f"{100 * path['tolerance']:g} point" if metric == "accuracy" else f"{path['tolerance']:.3g} (1 point of R²)"
    values = ", ".join(
        f"{p['l1']:.1e}: {100 * p['metric']:.1f}" if metric == "accuracy" else f"{p['l1']:.1e}: {p['metric']:.3g}"
        for p in points
    )
    text = (
        f"λ = {path['l1']:g} was chosen on the regularisation path: the largest λ whose validation {metric} "
        f"({path['validation_size']} held-out training samples) is within {tolerance} of the best on the path "
        f"({values}){'; the path stopped early' if path.get('stopped_early') else ''}."
    )
    share = _reference_share(path)
    text += (
        f" The knee sharpness recorded for each λ is d ln R/ds at s_ref, the sparsity where the pruned "
        f"weights hold {100 * share:g} % of ‖w‖² (a point set by the weights alone; the rule does not use it). "
        "It is not the knee of the trust criterion, which is taken at s*"
        + (f" (in regime from {flat_knee:g})" if flat_knee is not None else "")
        + ", so that threshold does not apply to it."
    )
    chosen = points[path["chosen"]]
    if knee_at_s_star is not None and math.isfinite(float(knee_at_s_star)):
        text += (
            f" At the chosen λ: d ln R/ds = {float(chosen['knee_steepness']):.1f} at s_ref on the path; "
            f"the final network's is {float(knee_at_s_star):.0f} at s*."
        )
    return text


def path_figure(
    path: Mapping[str, Any], *, title: str | None = None, knee_at_s_star: float | None = None,
    flat_knee: float | None = None,
) -> Figure:
    """Validation metric and knee sharpness along the λ path, the chosen λ and the tolerance band marked.

    The knee drawn per λ is ``d ln R/ds`` at ``s_ref`` (the sparsity where the pruned weights
    hold 1 % of ``‖w‖²``), not at ``s*``, where the trust criterion takes it; with
    ``knee_at_s_star`` (the final network's knee at its ``s*``) the chosen point says both, and
    ``flat_knee`` (the criterion's threshold) is named there. The legend sits below the axes
    (it covered the knee curve). A λ of 0 has no place on the log axis and is left out.
    """
    points = path["points"]
    lam = np.array([p["l1"] for p in points], dtype=np.float64)
    metric = np.array([p["metric"] for p in points], dtype=np.float64)
    knee = np.array([p["knee_steepness"] for p in points], dtype=np.float64)
    accuracy = path["metric"] == "accuracy"
    scale = 100.0 if accuracy else 1.0
    share = _reference_share(path)
    figure = _figure(6.4, 4.4)
    axes = figure.add_subplot()
    axes.semilogx(lam, scale * metric, "o-", color="tab:blue", label=f"validation {path['metric']}")
    # nanmax/nanmin as the rule (regpath.acceptable): a point whose metric is not finite (the
    # path appends it before it stops) left the tolerance line at NaN, not drawn (a review)
    finite = metric[np.isfinite(metric)]
    if finite.size:
        best = float(np.max(finite)) if accuracy else float(np.min(finite))
        edge = best - path["tolerance"] if accuracy else best + path["tolerance"]
        axes.axhline(scale * edge, color="tab:blue", ls=":", lw=1.0, label="tolerance of the rule")
    chosen = lam[path["chosen"]]
    axes.axvline(chosen, color="tab:red", ls="--", lw=1.0, label=f"chosen λ = {chosen:g}")
    axes.set_xlabel("l1 strength λ")
    axes.set_ylabel(f"validation {path['metric']}" + (" (%)" if accuracy else ""))
    twin = axes.twinx()
    twin.semilogx(lam, knee, "s--", color="tab:gray", ms=4, label=f"d ln R/ds at s_ref ({100 * share:g} % of ‖w‖² pruned)")
    twin.set_ylabel("knee sharpness d ln R/ds at s_ref", color="tab:gray")
    chosen_knee = float(knee[path["chosen"]])
    if knee_at_s_star is not None and math.isfinite(float(knee_at_s_star)) and math.isfinite(chosen_knee):
        threshold = f"; regime from {flat_knee:g} at s*" if flat_knee is not None else ""
        positive = lam[lam > 0]
        right_half = positive.size > 1 and chosen > np.sqrt(positive.min() * positive.max())  # then the note goes left
        twin.annotate(
            f"{chosen_knee:.1f} at s_ref\nfinal network: {float(knee_at_s_star):.0f} at s*{threshold}",
            xy=(chosen, chosen_knee), xytext=(-6 if right_half else 6, 6), textcoords="offset points",
            ha="right" if right_half else "left", fontsize=7, color="0.25",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.7", "alpha": 0.85},
        )
    handles = axes.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    figure.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=8, loc="outside lower center", ncols=2)
    axes.set_title(title or "Regularisation path (validation split of the training data)", fontsize=10)
    return figure


def validation_rows(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Name/value rows for a validation record ``{"predicted": ..., "measured": ..., ...}``.

    ``predicted`` holds a prediction record; ``measured`` holds ``limit_by_loss``,
    ``limit_by_accuracy`` and optionally ``dense_loss``, ``dense_accuracy``. Optional
    top-level keys: ``predicted_paper`` and ``exact_predicted`` (prediction records,
    see :class:`pruning_limits.validation.Validation`), ``taylor_one_shot`` (a
    :class:`~pruning_limits.taylor.TaylorOneShot` record), ``spectral_one_shot`` (a
    :class:`~pruning_limits.taylor.SpectralOneShot` record), ``seconds``, ``model_spec``, ``data_spec``.
    """
    predicted, measured = record["predicted"], record["measured"]
    rows = [("predicted sparsity s*", f"{float(predicted['sparsity']):.4f}  {format_interval(predicted.get('interval'))}")]
    for key, name in (
        ("predicted_paper", "predicted s*, paper's model (no gradient term)"),
        ("exact_predicted", "paper's model from the exact spectrum"),
    ):
        if record.get(key):
            rows.append((name, f"{float(record[key]['sparsity']):.4f}  {format_interval(record[key].get('interval'))}"))
    if record.get("taylor_one_shot"):
        rows.append(("Taylor one-shot model (diagnostic)", format_number(record["taylor_one_shot"]["sparsity"])))
    if record.get("spectral_one_shot"):
        rows.append(("spectral one-shot model (candidate)", format_number(record["spectral_one_shot"]["sparsity"])))
    rows += [
        ("measured limit (loss <= L* + eps)", format_number(measured.get("limit_by_loss"))),
        ("measured limit (test accuracy)", format_number(measured.get("limit_by_accuracy"))),
    ]
    if record.get("retrained"):
        retrained = record["retrained"]
        rows.append((f"measured limit after re-training ({plural(retrained['epochs'], 'epoch')}, mask fixed)", format_number(retrained["limit"])))
    rows += [
        ("epsilon", format_number(predicted.get("epsilon"))),
        ("D (prunable weights)", format_number(predicted.get("dim"))),
    ]
    if predicted.get("knee_steepness") is not None:
        rows.append(("knee sharpness d ln R/ds at s*", f"{float(predicted['knee_steepness']):.1f}"))
    if measured.get("dense_loss") is not None:
        rows.append(("dense loss", format_number(measured.get("dense_loss"))))
    if measured.get("dense_accuracy") is not None:
        rows.append(("dense test accuracy", format_number(measured.get("dense_accuracy"))))
    if record.get("seconds") is not None:
        rows.append(("time (s)", f"{float(record['seconds']):.1f}"))
    return rows


def unsettled_note(spectrum: Mapping[str, Any] | None) -> str | None:
    """One Markdown line for a report whose adaptive SLQ ended at its step limit, else ``None``.

    The command warns on stderr; the report, the file that stays, said nothing (a review,
    2026-12-06). ``spectrum``: a spectrum record (``Spectrum.to_dict()``) with its ``stopping``.
    """
    stop = _unsettled_stop(spectrum)
    if stop is None:
        return None
    steps = f" within {spectrum['iterations']} steps" if spectrum.get("iterations") else ""  # type: ignore[union-attr]
    moved = stop.get("moved")
    how = (
        f"s* moved by {100 * moved:.2f} points over its last {stop.get('window')} checks, above the tolerance of "
        f"{100 * stop['tolerance']:g}" if moved is not None and stop.get("tolerance") else "too few steps to judge it"
    )
    if stop.get("ended") == "dimension":  # every step D allows without re-orthogonalisation: more do not help
        return f"**SLQ did not settle**{steps} (D allows no more steps): {how}. The answer may still move; a `--memory-budget` that holds the basis (re-orthogonalised, such a run is exact) gives a surer one."
    return f"**SLQ did not settle**{steps} (step limit): {how}. The answer may still move; more `--iterations` give a surer one."


def validation_markdown(record: Mapping[str, Any], figures: Mapping[str, str] | None = None, *, title: str | None = None) -> str:
    """A Markdown report: what was analysed, the prediction vs measurement table, the figures.

    Args:
        record: a validation record (see :func:`validation_rows`).
        figures: caption -> path relative to the report.
        title: report title.
    """
    lines = [f"# {title or 'Pruning limit: prediction and measurement'}", ""]
    facts = [(k, record.get(k)) for k in ("checkpoint", "model_spec", "data_spec") if record.get(k)]
    for key, value in facts:
        lines.append(f"- {key.replace('_', ' ')}: `{value}`")
    if facts:
        lines.append("")
    trust = record.get("trust")
    if trust:  # the answer first: a number outside the regime is no limit, and what to do instead
        measured = (record.get("measured") or {}).get("limit_by_loss")
        head = answer_lines(record["predicted"], trust, measured=measured)[0]  # outside: "not a pruning limit: ..."
        lines += [f"**{head[0].upper()}{head[1:]}.**", ""]
        lines.append(f"**Trust: {trust['level']}** ({trust['reason']})." + (f" Evidence: {trust['evidence']}." if trust.get("evidence") else ""))
        from .regime import criterion_text

        lines[-1] += f" The criterion (pruning_limits.regime.trust_level, docs/theory.md §10): {criterion_text(trust['flat_knee'])}."
        if record.get("next"):
            lines[-1] += f" Next: `{record['next']}` ({record.get('next_reason') or NEXT_REASON})."
        lines.append("")
    note = unsettled_note(record.get("spectrum"))
    if note:
        lines += [note, ""]
    # the time is the JSON's (the whole command, written after this report and its figures)
    lines.append(markdown_table(["quantity", "value"], [row for row in validation_rows(record) if row[0] != "time (s)"]))
    lines += [
        "",
        "Sparsity is the fraction of prunable weights set to zero. The predicted limit s* solves "
        "s = δ(R(s))/D (Zhang et al., NeurIPS 2024); the interval is the approximate kinematic "
        "formula's band at the stated η (Amelunxen et al. 2014). The measured limits prune the "
        "trained weights globally by magnitude, once, without fine-tuning"
        + ("; the re-trained limit also trains the kept weights at each tried sparsity (lomp.retrained_limit)." if record.get("retrained") else "."),
    ]
    if record.get("predicted_paper"):
        lines[-1] += (
            " The predicted s* keeps the first-order (gradient) term of the loss, which the "
            "paper's quadratic model neglects; the paper's model is shown beside it."
        )
    if record.get("taylor_one_shot"):
        lines[-1] += (
            " The Taylor one-shot model is a diagnostic: where the same local quadratic model, "
            "evaluated on the pruned weights themselves, first exceeds ε; close to the measured "
            "limit, it says the quadratic model holds and any gap of s* lies in its geometric step."
        )
    if record.get("spectral_one_shot"):
        lines[-1] += (
            " The spectral one-shot model is a candidate, not the default: the same one-shot model "
            "with its curvature term from the spectrum alone (a random direction in the non-flat "
            "eigenspace; docs/theory.md §6b)."
        )
    steepness = record["predicted"].get("knee_steepness")
    if steepness is not None:
        lines[-1] += (
            " The knee sharpness is d ln R/ds at s*: how fast the distance to the pruned weights grows "
            "there. The flatter the knee, the further the prediction lay above the measured limit in "
            "docs/validation.md."
        )
    l1_path = (record.get("training") or {}).get("l1_path")
    if l1_path:
        lines += ["", path_summary(l1_path, knee_at_s_star=steepness, flat_knee=(trust or {}).get("flat_knee"))]
    for caption, path in (figures or {}).items():
        lines += ["", _image(caption, path), "", f"*{caption}*"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- figures


def check_matplotlib() -> None:
    """Import matplotlib, or say in one line why it cannot start (before a command's work).

    The figures draw on :class:`matplotlib.figure.Figure` with no backend, but ``import
    matplotlib`` itself refuses an ``MPLBACKEND`` it does not know (a traceback after the whole
    computation, before this check: a review, 2026-12-06).
    """
    try:
        import matplotlib  # noqa: F401
    except (ImportError, ValueError) as err:
        reason = message_line(err).split(";")[0][:160]  # matplotlib's list of every backend after the ';'
        backend = os.environ.get("MPLBACKEND")
        hint = f" (MPLBACKEND={backend!r}: the figures need no backend, unset it)" if backend else ""
        raise PruningLimitsError(f"matplotlib cannot start, so no figure can be written: {reason}{hint}") from None


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(figure: Figure, path: str | os.PathLike[str], *, dpi: int = 130) -> Path:
    """Save ``figure`` atomically; the format comes from the suffix (png, pdf or svg)."""
    if not hasattr(figure, "savefig"):
        raise PruningLimitsError(f"figure must be a matplotlib Figure, got {describe(figure)}")
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FIGURE_FORMATS:
        raise PruningLimitsError(
            f"plot file must end in {', '.join('.' + f for f in FIGURE_FORMATS)}, got {str(path)!r}"
        )
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format=suffix, dpi=dpi)
    return Path(path)


def spectrum_figure(spectrum: Spectrum, *, sigma: float | None = None, points: int = 1500, title: str | None = None) -> Figure:
    """Smoothed spectral density on a log scale, atom at zero marked, λ_max and λ_min drawn and named in the legend.

    Args:
        spectrum: the Hessian's spectral measure.
        sigma: Gaussian bandwidth; default 1% of ``λ_max − λ_min`` (PyHessian's plots use a
            comparable relative bandwidth; smoothing is for display only).
        points: grid size.
        title: axes title.
    """
    from .spectrum import Spectrum as SpectrumType

    if not isinstance(spectrum, SpectrumType):
        raise PruningLimitsError(f"spectrum must be a pruning_limits.spectrum.Spectrum, got {describe(spectrum)}")
    lam_max, lam_min = spectrum.lambda_max, spectrum.lambda_min
    span = max(lam_max - lam_min, abs(lam_max), 1e-12)
    sigma = float(sigma) if sigma is not None else 0.01 * span
    grid = np.linspace(lam_min - 0.05 * span, lam_max + 0.05 * span, points)
    density = spectrum.density(grid, sigma)
    floor = max(float(density.max()) * 1e-8, 1e-300)
    atom = spectrum.atom_at_zero()

    figure = _figure(6.4, 4.0)
    axes = figure.add_subplot()
    axes.semilogy(grid, np.maximum(density, floor), color="tab:blue", lw=1.4, label="smoothed density")
    axes.set_ylim(bottom=floor)
    axes.axvline(0.0, color="tab:red", ls="--", lw=1.0, label=f"atom at 0: mass {atom:.3f}")
    # the extremes are named in the legend: a label drawn beside the line sat on the atom's line
    # and the density's peak when λ_min ≈ 0, the common case (a review)
    for value, name, style in ((lam_max, r"$\lambda_{\max}$", ":"), (lam_min, r"$\lambda_{\min}$", "-.")):
        axes.axvline(value, color="0.4", ls=style, lw=1.0, label=f"{name} = {value:.3g}")
    axes.set_xlabel("eigenvalue λ")
    axes.set_ylabel("density (log scale)")
    kind = "exact" if spectrum.exact else f"SLQ, {spectrum.probes} probes × {spectrum.iterations} steps, {spectrum.rule} rule"
    axes.set_title(title or f"Hessian spectrum (D = {spectrum.dim}, {kind})", fontsize=10)
    axes.legend(fontsize=8, loc="best")
    return figure


def prediction_figure(
    prediction: Mapping[str, Any],
    curve: Mapping[str, Any],
    sweep: Mapping[str, Any] | None = None,
    *,
    title: str | None = None,
    trust: Mapping[str, Any] | None = None,
) -> Figure:
    """The fixed point s = δ(R(s))/D and, with a sweep, the measured loss and accuracy.

    Args:
        prediction: a prediction record (``sparsity``, ``interval``, ``epsilon``, ``dim``).
        curve: ``{"sparsity": [...], "delta_over_dim": [...]}`` sampled over s in [0, 1];
            optional ``"lower"``/``"upper"``: δ/D ∓ a_η/√D.
        sweep: optional measured curves ``{"sparsity", "loss", "accuracy", "dense_loss",
            "dense_accuracy", "limit_by_loss", "limit_by_accuracy"}`` (``accuracy`` may be absent).
        title: figure title.
        trust: the verdict (``regime.Trust.to_dict()``); outside the regime the predicted s* is
            drawn grey and dashed, labelled "outside the regime: not a limit", and the figure
            says so above its panels (the terminal never presents such a number as a limit).
    """
    s_star = float(prediction["sparsity"])
    outside = _outside(trust)
    interval = prediction.get("interval")
    s = np.asarray(curve["sparsity"], dtype=np.float64)
    ratio = np.asarray(curve["delta_over_dim"], dtype=np.float64)

    figure = _figure(11.0 if sweep else 5.6, 5.0 if sweep else 5.2)  # taller: the legend is below the panels
    axes = figure.subplots(1, 2 if sweep else 1, squeeze=False)[0]
    left = axes[0]
    left.plot(s, ratio, color="tab:blue", lw=1.6, label="δ(R(s)) / D")
    if "lower" in curve and "upper" in curve:
        left.fill_between(s, np.clip(curve["lower"], 0, 1), np.clip(curve["upper"], 0, 1), color="tab:blue", alpha=0.12, label=r"$\pm a_\eta/\sqrt{D}$")
    left.plot([0, 1], [0, 1], color="0.3", ls="--", lw=1.0, label="s (diagonal)")
    _mark_prediction(left, s_star, interval, outside=outside)
    left.set_xlim(0, 1)
    left.set_ylim(0, 1.02)
    left.set_xlabel("sparsity s (fraction of weights pruned)")
    left.set_ylabel("δ(R(s)) / D")
    left.set_title(f"fixed point: ε = {format_number(prediction.get('epsilon'))}, D = {format_number(prediction.get('dim'))}", fontsize=10)
    # the legends go below the panels, one for both: inside, the left one covered the δ(R)/D band
    # and the right one, placed by "best" on the loss axes alone, the accuracy curve (a review)
    handles, labels = left.get_legend_handles_labels()

    if sweep:
        right = axes[1]
        xs = np.asarray(sweep["sparsity"], dtype=np.float64)
        loss = np.asarray(sweep["loss"], dtype=np.float64)
        right.plot(xs, loss, color="tab:orange", marker=".", ms=3, lw=1.3, label="training loss")
        if sweep.get("dense_loss") is not None and prediction.get("epsilon") is not None:
            right.axhline(float(sweep["dense_loss"]) + float(prediction["epsilon"]), color="tab:orange", ls=":", lw=1.0, label="L* + ε")
        positive = loss[np.isfinite(loss) & (loss > 0)]
        if (loss[np.isfinite(loss)] <= 0).any():  # a zero loss (MSE on a perfect fit) vanished on a log axis
            right.set_yscale("symlog", linthresh=float(positive.min()) if positive.size else 1e-8)
            scale_name = "symmetric log scale: linear near 0"
        else:
            right.set_yscale("log")
            scale_name = "log scale"
        right.set_xlabel("sparsity s")
        right.set_ylabel(f"loss ({scale_name})", color="tab:orange")
        handles_right, labels_right = right.get_legend_handles_labels()
        if sweep.get("accuracy") is not None:
            twin = right.twinx()
            twin.plot(xs, np.asarray(sweep["accuracy"], dtype=np.float64), color="tab:green", marker=".", ms=3, lw=1.3, label="test accuracy")
            if sweep.get("dense_accuracy") is not None:
                twin.axhline(float(sweep["dense_accuracy"]), color="tab:green", ls=":", lw=1.0, label="dense accuracy")
            twin.set_ylabel("test accuracy", color="tab:green")
            twin.set_ylim(0, 1.02)
            more_h, more_l = twin.get_legend_handles_labels()
            handles_right, labels_right = handles_right + more_h, labels_right + more_l
        _mark_prediction(right, s_star, interval, outside=outside)
        for key, style, name in (("limit_by_loss", "-.", "measured (loss)"), ("limit_by_accuracy", (0, (1, 1)), "measured (accuracy)")):
            if sweep.get(key) is not None:
                line = right.axvline(float(sweep[key]), color="black", ls=style, lw=1.2, label=f"{name} = {float(sweep[key]):.3f}")
                handles_right.append(line)
                labels_right.append(line.get_label())
        right.set_xlim(0, 1)
        h2, l2 = right.get_legend_handles_labels()  # the prediction's marks, drawn alike on both panels: once
        for h, l in [*zip(handles_right, labels_right), *zip(h2, l2)]:
            if l not in labels:
                handles.append(h)
                labels.append(l)
        right.set_title("one-shot global magnitude pruning", fontsize=10)
    figure.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=3 if sweep else 2)
    _verdict_title(figure, title, outside, fontsize=11)
    return figure


#: What a figure says of a prediction outside the regime (``regime``): the number is no limit.
OUTSIDE_LABEL = "outside the regime: not a limit"


def _outside(trust: Any) -> bool:
    """Whether a verdict (a ``Trust.to_dict()`` record, or ``None`` for none) is outside the regime."""
    return trust is not None and not bool(trust.get("in_regime", True))


#: What a figure says above its panels outside the regime.
OUTSIDE_NOTE = "Outside the regime: the predicted sparsity is not a pruning limit for this network"


def _fit_width(text: str, figure: Any, fontsize: float) -> str:
    """``text`` with each line wrapped so that it fits in 95 % of the figure's width at
    ``fontsize``, measured with the Agg renderer's font metrics (the note ran 25 px past each
    edge of the 5.6-inch single-panel figure, a review)."""
    import textwrap

    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer, prop = RendererAgg(1, 1, 72), FontProperties(size=fontsize)
    room = 0.95 * figure.get_figwidth() * 72  # points

    def fits(line: str) -> bool:
        return renderer.get_text_width_height_descent(line, prop, ismath=False)[0] <= room

    def wrap(part: str, width: int) -> list[str]:
        return textwrap.wrap(part, width) or [part]

    lines: list[str] = []
    for part in text.split("\n"):
        if len(part) <= 10 or fits(part):
            lines.append(part)
            continue
        # the widest wrap in characters whose lines all fit (10 at least, as before), by bisection:
        # lowering the width by one and measuring every line each time was quadratic in the text
        # (0.9 s for 400 characters, a review); this measures about log2(len) wraps
        low, high = 10, len(part) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if all(fits(line) for line in wrap(part, middle)):
                low = middle
            else:
                high = middle - 1
        lines += wrap(part, low)
    return "\n".join(lines)


def _verdict_title(figure: Any, title: str | None, outside: bool, fontsize: float = 11) -> None:
    """The figure's title, with the verdict above the panels outside the regime (each wrapped
    to the figure's width)."""
    if outside:
        note = _fit_width(OUTSIDE_NOTE, figure, fontsize)
        if "\n" in note:  # too long for one line: broken after "Outside the regime:", then wrapped
            note = _fit_width(OUTSIDE_NOTE.replace(": ", ":\n", 1), figure, fontsize)
        text = f"{_fit_width(title, figure, fontsize)}\n{note}" if title else note
        figure.suptitle(text, fontsize=fontsize, color="0.25")
    elif title:
        figure.suptitle(_fit_width(title, figure, fontsize), fontsize=fontsize)


def _mark_prediction(axes: Any, s_star: float, interval: Sequence[Any] | None, *, outside: bool = False) -> None:
    color = "0.45" if outside else "tab:red"
    if interval is not None and len(interval) == 2 and None not in interval:
        axes.axvspan(float(interval[0]), float(interval[1]), color=color, alpha=0.10, label="kinematic interval")
    label = f"predicted s* = {s_star:.3f}" + (f" ({OUTSIDE_LABEL})" if outside else "")
    axes.axvline(s_star, color=color, lw=1.4, ls="--" if outside else "-", label=label)


def limit_curve_figure(
    points: Sequence[Mapping[str, Any]], *, title: str | None = None, trusts: Sequence[Mapping[str, Any] | None] | None = None,
) -> Figure:
    """Predicted limit against ε (log scale) with the kinematic interval, for ``predict`` with several ε.

    Args:
        points: prediction records (``epsilon``, ``sparsity``, ``interval``).
        title: axes title.
        trusts: the verdict at each point (``regime.Trust.to_dict()``, in the order of
            ``points``); points outside the regime are drawn as grey open circles labelled
            "outside the regime: not a limit" (the whole line grey and dashed when every one is).

    The sparsity axis is zoomed to the points and their intervals with a margin (``[0, 1]``
    drew s* moving from 94.6 to 96.8 % as a flat line at the top, a review).
    """
    if trusts is not None and len(trusts) != len(points):
        raise PruningLimitsError(f"trusts must hold one verdict per point ({len(points)}), got {len(trusts)}")
    order = sorted(range(len(points)), key=lambda i: float(points[i]["epsilon"]))
    ordered = [points[i] for i in order]
    outside = np.array([_outside(trusts[i]) if trusts is not None else False for i in order], dtype=bool)
    eps = np.array([float(p["epsilon"]) for p in ordered])
    sparsity = np.array([float(p["sparsity"]) for p in ordered])
    figure = _figure(5.6, 4.0)
    axes = figure.add_subplot()
    shown = [sparsity]
    every = bool(outside.size) and bool(outside.all())
    color = "0.45" if every else "tab:red"
    if all(p.get("interval") is not None for p in ordered):
        low = np.array([float(p["interval"][0]) for p in ordered])
        high = np.array([float(p["interval"][1]) for p in ordered])
        axes.fill_between(eps, low, high, color=color, alpha=0.12, label="kinematic interval")
        shown += [low, high]
    axes.plot(eps, sparsity, color=color, ls="--" if every else "-", marker="o", ms=4, mfc="none" if every else color,
              label=f"predicted s* ({OUTSIDE_LABEL})" if every else "predicted s*")
    if outside.any() and not every:
        axes.plot(eps[outside], sparsity[outside], "o", color="0.45", mfc="white", ms=7, label=f"s* {OUTSIDE_LABEL}")
    axes.set_xscale("log")
    values = np.concatenate(shown)
    values = values[np.isfinite(values)]
    if values.size:
        low, high = float(values.min()), float(values.max())
        margin = max(0.1 * (high - low), 0.01)
        axes.set_ylim(max(0.0, low - margin), min(1.02, high + margin))
    else:
        axes.set_ylim(0, 1.02)
    axes.set_xlabel("loss tolerance ε")
    axes.set_ylabel("predicted sparsity limit s*")
    axes.set_title(title or "predicted pruning limit against ε", fontsize=10)
    axes.legend(fontsize=8)
    return figure


# ----------------------------------------------------------------------------- records for figures


def fixed_point_record(
    weights: Any,
    spectrum: Spectrum,
    prediction: Any,
    gradient: Any = None,
    *,
    criterion: Any = "magnitude",
    order: Any = None,
    allowed: Any = None,
) -> dict[str, Any]:
    """The ``δ(R(s))/D`` curve of a prediction with its kinematic band, as :func:`prediction_figure` takes it.

    ``gradient`` (the data-loss gradient at the weights) is required when the prediction used
    the gradient term, so that the curve is the one whose crossing is the prediction.
    ``criterion``, ``order`` and ``allowed``: a structure's ``R_k²`` curve, removal order and
    allowed counts (:attr:`pruning_limits.structures.StructuredOrder.allowed`, over which its
    prediction takes the first-order cost; :func:`pruning_limits.limits.fixed_point_curve`).
    """
    from .limits import fixed_point_curve

    if prediction.gradient_term and gradient is None:
        raise PruningLimitsError("the prediction used the gradient term: pass the gradient to draw its fixed point")
    curve = fixed_point_curve(
        weights, spectrum, prediction.epsilon, eta=prediction.eta, gradient=gradient if prediction.gradient_term else None,
        criterion=criterion, order=order, allowed=allowed,
    )
    fraction = np.asarray(curve.delta_fraction)
    return {
        "sparsity": np.asarray(curve.sparsity),
        "delta_over_dim": fraction,
        "lower": fraction - curve.margin,
        "upper": fraction + curve.margin,
    }


def sweep_record(result: Any) -> dict[str, Any]:
    """The measured curves and limits of a :class:`~pruning_limits.lomp.SweepResult`, as the figures take them."""
    record = result.to_dict()
    return {
        "sparsity": record["sparsities"],
        "loss": record["train_loss"],
        "accuracy": record.get("test_accuracy"),
        "dense_loss": record.get("dense_loss"),
        "dense_accuracy": record.get("dense_accuracy"),
        "limit_by_loss": record.get("limit_by_loss"),
        "limit_by_accuracy": record.get("limit_by_accuracy"),
    }


#: The figures a Markdown report is written with, each as ``<report stem>-<name>.png`` beside it.
REPORT_FIGURES = ("spectrum", "prediction", "l1-path", "structures")


def report_figure_path(report_path: str | os.PathLike[str], name: str) -> Path:
    """Where the report ``report_path`` keeps its figure ``name`` (one of :data:`REPORT_FIGURES`)."""
    if name not in REPORT_FIGURES:
        raise PruningLimitsError(f"report figure must be one of {', '.join(REPORT_FIGURES)}, got {name!r}")
    target = Path(report_path)
    return target.with_name(f"{target.stem}-{name}.png")


def write_validation_figures(
    report_path: str | os.PathLike[str],
    *,
    weights: Any,
    spectrum: Spectrum,
    prediction: Any,
    sweep: Any | None,
    gradient: Any = None,
    title: str | None = None,
    trust: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the report ``report_path``'s spectrum and prediction figures atomically
    (:func:`report_figure_path`); return caption -> path.

    ``gradient`` as in :func:`fixed_point_record`; ``trust``: the verdict the prediction figure
    shows (:func:`prediction_figure`).
    """
    paths = {
        "Hessian spectrum (smoothed for display)": report_figure_path(report_path, "spectrum"),
        "Predicted limit (left) and measured loss and accuracy (right)": report_figure_path(report_path, "prediction"),
    }
    spectrum_path, prediction_path = paths.values()
    save_figure(spectrum_figure(spectrum, title=title), spectrum_path)
    measured = sweep_record(sweep) if sweep is not None else None
    fixed_point = fixed_point_record(weights, spectrum, prediction, gradient)
    save_figure(prediction_figure(prediction.to_dict(), fixed_point, measured, trust=trust), prediction_path)
    return paths



# ----------------------------------------------------------------------------- structures


def _points(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}"


def _yes(value: Any) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _image(caption: str, path: str | os.PathLike[str]) -> str:
    """A Markdown image; the target in ``<...>`` (CommonMark), so that a name with spaces or
    parentheses still renders as the image."""
    return f"![{caption}](<{Path(path).as_posix()}>)"


#: Columns of :func:`structures_table` (the terminal's :func:`_structures_text_table` names them
#: shorter and leaves out the trust).
_STRUCTURES_HEADER = ("structure", "predicted", "measured (loss)", "measured (acc.)", "pred − meas", "dense layers", "trust")


def _structures_cells(record: Mapping[str, Any]) -> list[list[str]]:
    """The cells of :func:`structures_table`, a row per structure (:data:`_STRUCTURES_HEADER`)."""
    rows = []
    for entry in record["structures"]:
        p, m, support = entry["predicted"], entry["measured"], entry["support"]
        dense = "-" if not support["dense_layers"] else f"{100 * support['dense_share']:.1f} % of weights"
        if entry["pattern"]:
            low, high = p["needed_epsilon_interval"]
            rows.append([
                f"{entry['structure']} (s = {_points(p['sparsity'])})",
                f"feasible: {_yes(p['feasible'])}; needs ε ≥ {_epsilon_text(p['needed_epsilon'])} "
                f"[{_epsilon_text(low)}, {_epsilon_text(high)}]",
                f"loss rise {format_number(m['loss_rise'], 3)}: {'within' if m['feasible'] else 'above'} ε",
                "-" if m.get("accuracy") is None else f"{_points(m['accuracy'])} (dense {_points(m['dense_accuracy'])})",
                "needed ε: pred/meas "
                + ("-" if not m["needed_epsilon"] else f"{float(p['needed_epsilon']) / float(m['needed_epsilon']):.2g}x"),
                dense,
                "-" if entry.get("trust") is None else entry["trust"]["level"],
            ])
        else:
            low, high = p["interval"]
            rows.append([
                entry["structure"],
                f"{_points(p['sparsity'])} [{_points(low)}, {_points(high)}]",
                _points(m["limit_by_loss"]),
                _points(m["limit_by_accuracy"]),
                f"{100 * float(entry['difference']):+.1f}" if m["limit_by_loss"] is None
                else f"{shown_difference(p['sparsity'], m['limit_by_loss']):+.1f}",  # as the two numbers beside it
                dense,
                "-" if entry.get("trust") is None else entry["trust"]["level"],
            ])
    return rows


def structures_table(record: Mapping[str, Any]) -> str:
    """Markdown table of every structure of a ``StructuresValidation.to_dict()`` record.

    Sparsities in percent. Curve structures: predicted ``s*`` [kinematic interval], measured
    by loss and by accuracy, predicted − measured (points) and the trust level where the record
    has one: the network's verdict (its λ and the knee at its unstructured answer,
    ``regime.trust_level``), the same for every structure. ``N:M`` rows: the pattern's
    sparsity, whether the prediction says it is feasible at ε and the ε it needs [interval],
    the measured loss rise (the ε it needs) and whether it stays within ε, and the accuracy.
    """
    return markdown_table(_STRUCTURES_HEADER, _structures_cells(record))


def _structures_text_table(record: Mapping[str, Any]) -> list[str]:
    """:func:`structures_table` for the terminal, within :data:`LINE_WIDTH` (the Markdown table
    took 98 characters, its ``N:M`` row 168): the curve structures in aligned columns without
    the trust column (one verdict for every structure, the ``trust:`` line above it) and with
    the dense share alone; each ``N:M`` pattern below them in a line of its own, wrapped by
    :func:`hang`."""
    header = ["structure", "predicted", "meas. loss", "meas. acc.", "pred − meas", "left dense"]
    curves, patterns = [], []
    for entry, cells in zip(record["structures"], _structures_cells(record)):
        dense = cells[5].removesuffix(" of weights")
        if entry["pattern"]:
            text = f"{cells[1]}; measured: {cells[2]}, accuracy {cells[3]}; {cells[4]}"
            patterns += hang(f"{cells[0]}: ", text + ("" if dense == "-" else f"; left dense {dense}"))
        else:
            curves.append([*cells[:5], dense])
    lines = []
    if curves:
        widths = [max(len(row[i]) for row in [header, *curves]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *curves]]
    return lines + patterns


def structures_figure(record: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """``R(s)`` of every structure on one plot (left) and predicted against measured limits (right).

    Left: ``R`` against sparsity at each structure's allowed points (log scale), the predicted
    limit marked ``x`` and the measured-by-loss limit ``o`` on each curve (an ``N:M`` pattern is
    one point, filled when the measured loss rise stays within ε). Right: predicted (bars) and
    measured-by-loss (dots) limits per curve structure; left alone when the record holds only
    ``N:M`` patterns, which have no limit to draw there.

    Outside the regime (the record's ``trust``, the network's verdict) the bars are hatched
    grey and labelled "outside the regime: not a limit", and the figure says so above its panels.
    """
    outside = _outside(record.get("trust"))
    curves = any(not entry["pattern"] for entry in record["structures"])
    figure = _figure(11.0 if curves else 6.8, 4.2)
    left, right = figure.subplots(1, 2, width_ratios=[1.6, 1.0]) if curves else (figure.subplots(), None)
    colors = [f"C{i}" for i in range(10)]
    curve_entries = []
    for i, entry in enumerate(record["structures"]):
        color = colors[i % len(colors)]
        s = np.asarray(entry["curve"]["sparsity"], dtype=float)
        r = np.asarray(entry["curve"]["distance"], dtype=float)
        positive = r > 0
        p, m = entry["predicted"], entry["measured"]
        if entry["pattern"]:
            at = float(p["sparsity"])
            left.plot([at], [float(p["distance"])], "D", color=color, mfc=color if m["feasible"] else "none",
                      label=f"{entry['structure']} (feasible: predicted {_yes(p['feasible'])}, measured {_yes(m['feasible'])})")
            continue
        same = [e["structure"] for e, _ in curve_entries if e["curve"] == entry["curve"]]
        label = entry["structure"] + (f" (same curve as {same[0]})" if same else "")
        style = ("-", "--", "-.", ":")[len(curve_entries) % 4]
        curve_entries.append((entry, color))
        left.plot(s[positive], r[positive], color=color, lw=1.4, ls=style, label=label)
        for at, marker in ((p["sparsity"], "x"), (m["limit_by_loss"], "o")):
            y = np.interp(float(at), s, r)
            if y > 0:
                left.plot([float(at)], [y], marker, color=color, mfc="none", ms=8)
    left.set_yscale("log")
    left.set_xlim(0, 1)
    left.set_xlabel("sparsity s")
    left.set_ylabel("R(s) = distance to the pruned weights")
    left.set_title("R(s) by structure (x predicted, o measured by loss)")
    left.legend(fontsize=7, loc="lower right")
    if right is None:
        _verdict_title(figure, title, outside, fontsize=12)
        return figure
    names = [entry["structure"] for entry, _ in curve_entries]
    x = np.arange(len(names))
    heights = [float(e["predicted"]["sparsity"]) for e, _ in curve_entries]
    if outside:
        right.bar(x, heights, color="0.85", edgecolor=[c for _, c in curve_entries], hatch="//", lw=1.0,
                  label=f"predicted ({OUTSIDE_LABEL})")
    else:
        right.bar(x, heights, color=[c for _, c in curve_entries], alpha=0.45, label="predicted")
    right.plot(x, [float(e["measured"]["limit_by_loss"]) for e, _ in curve_entries], "ko", label="measured (loss)")
    acc = [e["measured"].get("limit_by_accuracy") for e, _ in curve_entries]
    if all(a is not None for a in acc):
        right.plot(x, [float(a) for a in acc], "k^", mfc="none", label="measured (accuracy)")
    right.set_xticks(x, names, rotation=20)
    right.set_ylim(0, 1)
    right.set_ylabel("limit (sparsity)")
    right.set_title("limits by structure")
    right.legend(fontsize=7, loc="best")
    _verdict_title(figure, title, outside, fontsize=12)
    return figure


def _epsilon_text(value: Any) -> str:
    """A tolerance to three significant digits, its zeros kept (``0.0290``, not ``0.029`` beside
    ``0.0291``); ``-`` where missing or not finite."""
    if value is None or not math.isfinite(float(value)):
        return "-"
    text = f"{float(value):#.3g}"
    return text[:-1] if text.endswith(".") else text


def pattern_answer_lines(
    prediction: Mapping[str, Any], *, next_command: str | None = None, next_reason: str | None = None,
) -> list[str]:
    """The lines ``predict --structure N:M`` prints for one ε (a ``PatternPrediction.to_dict()``
    record with its ``trust``): the answer in a line (feasible at ε or not, the ε it needs with
    its kinematic interval), the verdict (:func:`trust_lines`) and, where the verdict advises a
    fine-tune, the next step. The rows (:func:`pattern_prediction_rows`) are the detail behind -v."""
    low_ok, high_ok = prediction["feasible_interval"]
    low, high = prediction["needed_epsilon_interval"]
    need = prediction["needed_epsilon"]
    answer = _feasible(prediction["feasible"])
    if low_ok != high_ok:  # the kinematic interval straddles the answer
        answer += f" (kinematic interval: {_yes(low_ok)} to {_yes(high_ok)})"
    needs = (f"needs ε ≥ {_epsilon_text(need)} [{_epsilon_text(low)}, {_epsilon_text(high)}]" if math.isfinite(float(need))
             else "no ε makes it feasible")
    head = f"{prediction['structure']} ({_pct(prediction['sparsity'])}) at ε = {format_number(prediction['epsilon'])}: {answer}, {needs}"
    trust = prediction.get("trust")
    lines = [head, *(trust_lines(trust) if trust else [])]
    if trust and trust.get("retrain") and next_command:
        lines += next_lines(next_command, next_reason)
    return lines


def pattern_prediction_rows(prediction: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Name/value rows for an ``N:M`` prediction (keys of ``PatternPrediction.to_dict()``): the
    answer (feasible at ε?) first, then the ε it needs, then the reason."""
    low_ok, high_ok = prediction["feasible_interval"]
    low, high = prediction["needed_epsilon_interval"]
    rows = [
        (f"{prediction['structure']} feasible at ε = {format_number(prediction['epsilon'])}",
         f"{_yes(prediction['feasible'])}  (kinematic interval: {_yes(low_ok)} to {_yes(high_ok)})"),
        ("smallest ε for which it is", f"{_epsilon_text(prediction['needed_epsilon'])}  [{_epsilon_text(low)}, {_epsilon_text(high)}]"),
        ("sparsity of the pattern", _pct(prediction["sparsity"])),
        ("δ(R)/D at ε", format_number(prediction["delta_fraction"])
         if prediction["epsilon"] > prediction["first_order_cost"] else "0 (ε ≤ c: the first-order cost alone exceeds ε)"),
        ("distance R to the pattern", format_number(prediction["distance"])),
    ]
    if prediction.get("gradient_term"):
        rows.append(("first-order cost c (in the needed ε)", format_number(prediction["first_order_cost"])))
    rows += structure_support_rows(prediction)
    rows.append(("D (prunable weights)", format_number(prediction["dim"])))
    return rows


def structure_support_rows(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The layers a structure leaves dense (``dense_layers``, ``dense_share`` keys), if any."""
    dense = record.get("dense_layers") or []
    if not dense:
        return []
    names = ", ".join(f"{d['name']} ({d['size']})" for d in dense)
    return [("left dense", f"{names}: {100 * float(record['dense_share']):.1f} % of weights")]


def _feasible(value: Any) -> str:
    return "-" if value is None else ("feasible" if value else "infeasible")


def _structure_answer(entry: Mapping[str, Any], epsilon: Any = None) -> str:
    """One structure's answer in a clause: a curve's predicted limit (unlabelled: the list's head
    says "predicted", within :data:`LINE_WIDTH`) and measured limit with their difference in
    points (from the numbers as printed) and the share left dense; a pattern's
    feasibility, predicted (with the ε it needs) and measured (with its loss rise; "measured too"
    where the two agree, so that the line stays within :data:`LINE_WIDTH`)."""
    p, m = entry["predicted"], entry["measured"]
    if entry["pattern"]:  # ε given: the head of a pattern alone; in a list of structures ε is the record's
        where = f"({_pct(p['sparsity'])}) at ε = {format_number(epsilon)}" if epsilon is not None else _pct(p["sparsity"])
        rise = "" if m.get("loss_rise") is None else f" (loss +{format_number(m['loss_rise'], 3)})"
        measured = "too" if m.get("feasible") is not None and bool(m["feasible"]) == bool(p["feasible"]) else _feasible(m.get("feasible"))
        return (f"{where}: {_feasible(p['feasible'])} (needs ε ≥ {_epsilon_text(p['needed_epsilon'])}), "
                f"measured {measured}{rise}")
    measured = m.get("limit_by_loss")
    text = f"{_pct(p['sparsity'])}{_interval_pct(p.get('interval'))}"
    if measured is not None:
        text += f", measured {_pct(measured)} ({shown_difference(p['sparsity'], measured):+.1f} points)"
    support = entry.get("support") or {}
    if support.get("dense_layers"):
        text += f", {100 * float(support['dense_share']):.1f} % left dense"
    return text


def structures_head(record: Mapping[str, Any]) -> str:
    """The answer of a ``StructuresValidation.to_dict()`` record in one line, for the terminal
    and the report (the verdict is the record's ``trust``, one for every structure).

    One curve structure: as ``validate`` says it (predicted, measured, difference; outside the
    regime "not a pruning limit"). Several: the unstructured limit and the largest structured
    one, each with its measurement. An ``N:M`` pattern alone: its feasibility.
    """
    entries = list(record["structures"])
    trust = record.get("trust") or {"in_regime": True, "level": "", "reason": ""}
    inside = bool(trust["in_regime"])
    curves = [e for e in entries if not e["pattern"]]
    if not curves:
        entry = entries[0]
        return f"{entry['structure']} {_structure_answer(entry, record.get('epsilon'))}"
    plain = next((e for e in curves if e["structure"] == "unstructured"), None)
    others = [e for e in curves if e is not plain]
    if plain is None or not others:
        entry = plain or curves[0]
        kind = None if entry["structure"] == "unstructured" else entry["structure"]
        return answer_lines(entry["predicted"], trust, measured=entry["measured"].get("limit_by_loss"), structure=kind)[0]
    largest = max(others, key=lambda e: float(e["predicted"]["sparsity"]))
    u, v = plain["predicted"]["sparsity"], largest["predicted"]["sparsity"]
    if not inside:  # the verdict first, as validate says it
        return f"not pruning limits: unstructured {_pct(u)}, largest structured {largest['structure']} {_pct(v)}"
    mu, mv = plain["measured"].get("limit_by_loss"), largest["measured"].get("limit_by_loss")
    # as the line outside says it, the two measurements after it: within LINE_WIDTH (it was 99 characters)
    measured = "" if mu is None or mv is None else f" (measured {100 * float(mu):.1f}, {_pct(mv)})"
    return f"limits: unstructured {_pct(u)}, largest structured {largest['structure']} {_pct(v)}{measured}"


def structures_answer_lines(record: Mapping[str, Any]) -> list[str]:
    """The lines ``validate --structure S|all`` prints: the answer (:func:`structures_head`),
    ``trust: level (reason)``, each structure's answer in a line when there are several (the
    left-dense layers when there is one), and the ``next`` step outside the regime. The table
    (:func:`structures_rows`) is the detail behind ``-v``."""
    entries = list(record["structures"])
    lines = [structures_head(record)]
    trust = record.get("trust")
    if trust:
        lines += trust_lines(trust)
    if len(entries) > 1:
        width = max(len(e["structure"]) for e in entries)
        for entry in entries:
            lines.append(f"  {entry['structure'].ljust(width)}  {_structure_answer(entry)}")
    elif entries:
        rows = structure_support_rows(entries[0]["support"]) if entries[0].get("support") else []
        if rows:
            lines.append(text_table(rows))
    if record.get("next"):
        lines += next_lines(record["next"], record.get("next_reason"))
    return lines


def structures_rows(record: Mapping[str, Any]) -> str:
    """Terminal text of a ``StructuresValidation.to_dict()`` record: the table
    (:func:`_structures_text_table`), then ε and D."""
    first = record["structures"][0]["predicted"]
    return (
        "\n".join(_structures_text_table(record))
        + f"\n\nepsilon = {format_number(record['epsilon'])}, D = {first['dim']} prunable weights; sparsities in percent;"
        "\nmeasured by one-shot pruning at each structure's allowed points"
    )


def structures_markdown(record: Mapping[str, Any], figure: str | None = None, *, title: str | None = None) -> str:
    """A Markdown report of a structures record: facts, the answer and the verdict in bold (as
    :func:`validation_markdown` opens), the table, a note on reading it, the figure."""
    lines = [f"# {title or 'Pruning limits by structure: prediction and measurement'}", ""]
    facts = [(k, record.get(k)) for k in ("checkpoint", "model_spec", "data_spec") if record.get(k)]
    for key, value in facts:
        lines.append(f"- {key.replace('_', ' ')}: `{value}`")
    lines.append(f"- epsilon: {format_number(record['epsilon'])} (one Hessian spectrum for every structure)")
    lines.append("")
    trust = record.get("trust")
    if trust and record["structures"]:  # the answer first, and the verdict with its reason
        head = structures_head(record)
        named = any(head.startswith(e["structure"]) for e in record["structures"] if e["structure"] != "unstructured")
        lines += [f"**{head if named else head[0].upper() + head[1:]}.**", ""]  # "neuron", "2:4" as named
        from .regime import criterion_text

        lines.append(
            f"**Trust: {trust['level']}** ({trust['reason']})." + (f" Evidence: {trust['evidence']}." if trust.get("evidence") else "")
            + " The criterion (pruning_limits.regime.trust_level, docs/theory.md §10) is the network's, one verdict "
            f"for every structure: {criterion_text(trust['flat_knee'], 'the unstructured s*')}."
        )
        if record.get("next"):
            lines[-1] += f" Next: `{record['next']}` ({record.get('next_reason') or NEXT_REASON})."
        lines.append("")
    elif record.get("next"):
        reason = f" ({record['next_reason']})" if record.get("next_reason") else ""
        lines += [f"Outside the regime: not a pruning limit. Next: `{record['next']}`{reason}.", ""]
    lines += [structures_table(record), ""]
    note = unsettled_note(record.get("spectrum"))
    if note:
        lines += [note, ""]
    lines.append(
        "Sparsities in percent of the prunable weights. Each structure prunes only its allowed "
        "supports (unstructured: any weights; layerwise: the same fraction of every layer; neuron: "
        "whole rows of 2-D weights (nn.Linear, attention in-projections); channel: those rows and whole "
        "output channels of convolutions; both leave the last "
        "layer's rows, the outputs, dense and keep biases; N:M: at most N non-zeros "
        "in every M consecutive inputs). Predicted: the limit of s = δ(R(s))/D with the structure's "
        "R(s) (Zhang et al., NeurIPS 2024), moved down to the structure's allowed points; an N:M "
        "pattern has a fixed sparsity, so the prediction says whether it is feasible at ε and which ε "
        "it needs. Measured: one-shot pruning without fine-tuning; for N:M the measured loss rise "
        "is the ε the pattern needs."
    )
    if figure:
        caption = "R(s) of every structure (left) and the limits (right)"
        lines += ["", _image(caption, figure), "", f"*{caption}*"]
    return "\n".join(lines) + "\n"


def pattern_figure(
    spectrum: Spectrum, prediction: Mapping[str, Any], *, marked: Sequence[float] | None = None, title: str | None = None
) -> Figure:
    """``δ(R; ε − c)/D`` of an ``N:M`` pattern against ε, with its kinematic band, the pattern's
    sparsity and the needed ε marked (a ``PatternPrediction.to_dict()`` record). The band is
    drawn only where ``ε > c``: at ``ε ≤ c`` both ends of the kinematic interval say no.

    ``marked``: the tolerances to mark (default the prediction's own ε); the curve does not
    depend on ε, so one figure answers ``predict --structure N:M`` at several."""
    from .geometry import delta_fraction

    figure = _figure(6.4, 4.0)
    axes = figure.subplots()
    cost = float(prediction["first_order_cost"])
    need = float(prediction["needed_epsilon"])
    marks = [float(e) for e in (marked if marked else [prediction["epsilon"]])]
    at = marks[0]
    centre = need if math.isfinite(need) and need > 0 else at
    low, high = max(centre, cost * 1.001, 1e-12) / 1e3, centre * 1e3
    low = min([low, *(e / 3 for e in marks if e / 3 > cost)])  # every asked ε inside the axis
    high = max([high, *(e * 3 for e in marks)])
    eps = np.geomspace(low, high, 300)
    r2 = float(prediction["distance"]) ** 2
    frac = np.array([delta_fraction(spectrum.nodes, spectrum.weights, e - cost, r2) for e in eps])
    margin = float(prediction["margin"])
    axes.plot(eps, frac, color="C0", label="δ(R; ε − c)/D")
    band = eps > cost  # at ε ≤ c both ends of the kinematic interval say no: no band there
    axes.fill_between(eps, np.clip(frac - margin, 0, 1), np.clip(frac + margin, 0, 1), where=band, color="C0", alpha=0.2,
                      label=f"kinematic band (η={format_number(prediction['eta'])})")
    axes.axhline(float(prediction["sparsity"]), color="k", ls="--", label=f"{prediction['structure']} sparsity")
    if math.isfinite(need):
        axes.axvline(need, color="C3", label=f"needed ε = {format_number(need, 3)}")
    for e in marks:
        axes.axvline(e, color="C2", ls=":", label=f"ε = {format_number(e, 3)}")
    axes.set_xscale("log")
    axes.set_ylim(0, 1)
    axes.set_xlabel("loss tolerance ε")
    axes.set_ylabel("δ/D")
    axes.set_title(title or f"{prediction['structure']}: feasible where δ/D ≥ its sparsity")
    axes.legend(fontsize=7)
    return figure
