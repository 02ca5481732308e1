"""Reports: JSON conversion, tables, Markdown, and the figures' content."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from pruning_limits import report
from pruning_limits._checks import PruningLimitsError
from pruning_limits.spectrum import Spectrum

PREDICTION = {
    "sparsity": 0.7,
    "density": 0.3,
    "interval": [0.6, 0.8],
    "epsilon": 0.01,
    "eta": 0.05,
    "dim": 250,
    "probe_spread": 0.02,
    "trace_bound": 0.55,
}


def _curve() -> dict:
    s = np.linspace(0.0, 1.0, 101)
    ratio = 1.0 - 0.9 * np.sqrt(s)
    return {"sparsity": s, "delta_over_dim": ratio, "lower": ratio - 0.1, "upper": ratio + 0.1}


def _sweep() -> dict:
    s = np.linspace(0.0, 1.0, 41)
    return {
        "sparsity": s,
        "loss": 0.1 + s**4,
        "accuracy": 1 - s**6,
        "dense_loss": 0.1,
        "dense_accuracy": 0.98,
        "limit_by_loss": 0.65,
        "limit_by_accuracy": 0.72,
    }


def _vertical_lines(axes) -> list[float]:
    """x positions of the vertical lines (axvline) of an axes."""
    xs = []
    for line in axes.get_lines():
        xdata = np.asarray(line.get_xdata(), dtype=float)
        if xdata.size == 2 and xdata[0] == xdata[1]:
            xs.append(float(xdata[0]))
    return xs


# ----------------------------------------------------------------------------- JSON


def test_to_jsonable_converts_numpy_tuples_and_non_finite():
    record = {
        "a": np.float32(1.5),
        "b": float("nan"),
        "c": np.arange(3),
        "d": (1, np.int64(2)),
        "e": np.bool_(True),
        "f": float("inf"),
        "g": {"h": [np.float64(0.25)]},
    }
    converted = report.to_jsonable(record)
    assert converted == {"a": 1.5, "b": None, "c": [0, 1, 2], "d": [1, 2], "e": True, "f": None, "g": {"h": [0.25]}}
    assert json.loads(report.dumps_json(record)) == converted


def test_to_jsonable_uses_to_dict_and_refuses_unknown_objects():
    class Record:
        def to_dict(self):
            return {"x": np.float64(2.0)}

    assert report.to_jsonable([Record()]) == [{"x": 2.0}]
    with pytest.raises(PruningLimitsError, match="cannot serialise"):
        report.to_jsonable({"x": object()})


def test_write_json_round_trip(tmp_path):
    path = report.write_json(tmp_path / "r.json", {"sparsity": np.float64(0.5), "interval": (0.4, 0.6)})
    assert json.loads(path.read_text()) == {"sparsity": 0.5, "interval": [0.4, 0.6]}
    assert os.listdir(tmp_path) == ["r.json"]


# ----------------------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (float("nan"), "-"), (0.0, "0"), (0.5, "0.5"), (1234, "1234"), (1.23456789e-5, "1.235e-05"), (0.12345678, "0.1235")],
)
def test_format_number(value, text):
    assert report.format_number(value) == text


def test_format_interval():
    assert report.format_interval([0.1, 0.25]) == "[0.100, 0.250]"
    assert report.format_interval(None) == "-"
    assert report.format_interval([None, 0.2]) == "-"


def test_markdown_table_shape_and_escaping():
    table = report.markdown_table(["a", "b"], [["x|y", 0.5], ["z", None]])
    lines = table.splitlines()
    assert lines[0] == "| a | b |" and lines[1] == "|---|---|"
    assert lines[2] == "| x\\|y | 0.5 |" and lines[3] == "| z | - |"
    with pytest.raises(PruningLimitsError, match="2 cells"):
        report.markdown_table(["a", "b"], [["only one"]])


def test_prediction_and_validation_rows_show_the_numbers():
    rows = dict(report.prediction_rows(PREDICTION))
    assert rows["predicted sparsity s*"] == "0.7000"
    assert rows["kinematic interval (eta=0.05)"] == "[0.600, 0.800]"
    assert rows["D (prunable weights)"] == "250"
    record = {"predicted": PREDICTION, "measured": {"limit_by_loss": 0.65, "limit_by_accuracy": None}, "seconds": 3.25}
    rows = dict(report.validation_rows(record))
    assert rows["predicted sparsity s*"] == "0.7000  [0.600, 0.800]"
    assert rows["measured limit (loss <= L* + eps)"] == "0.65"
    assert rows["measured limit (test accuracy)"] == "-"
    assert rows["time (s)"] == "3.2"
    assert "predicted s*, paper's model (no gradient term)" not in rows
    with_more = dict(record, predicted_paper=dict(PREDICTION, sparsity=0.6, interval=[0.55, 0.65]))
    assert dict(report.validation_rows(with_more))["predicted s*, paper's model (no gradient term)"] == "0.6000  [0.550, 0.650]"
    # the knee's sharpness at s*, when the record has it (None: NaN in the JSON record)
    knee = "knee sharpness d ln R/ds at s*"
    assert knee not in rows and knee not in dict(report.prediction_rows(PREDICTION))
    with_knee = dict(PREDICTION, knee_steepness=16.129)
    assert dict(report.prediction_rows(with_knee))[knee] == "16.1"
    assert dict(report.validation_rows(dict(record, predicted=with_knee)))[knee] == "16.1"
    assert knee not in dict(report.prediction_rows(dict(PREDICTION, knee_steepness=None)))
    text = report.text_table(list(rows.items()))
    width = max(len(name) for name in rows)
    for line, (name, value) in zip(text.splitlines(), rows.items()):
        assert line[:width].rstrip() == name and line[width : width + 2] == "  " and line[width + 2 :] == value


def test_validation_markdown_has_table_and_figures():
    record = {"predicted": PREDICTION, "measured": {"limit_by_loss": 0.65, "limit_by_accuracy": 0.72}, "model_spec": "mlp", "data_spec": "digits"}
    text = report.validation_markdown(record, {"The spectrum": "out/r-spectrum.png"})
    assert text.startswith("# ")
    assert "| predicted sparsity s* | 0.7000  [0.600, 0.800] |" in text
    assert "| measured limit (test accuracy) | 0.72 |" in text
    assert "![The spectrum](<out/r-spectrum.png>)" in text  # <...>: a name with spaces still renders
    assert "- model spec: `mlp`" in text
    assert "knee sharpness" not in text  # the record has none
    from pruning_limits.regime import trust_level

    trust = trust_level(12.0, 1e-3, evidence={"flat_knee": {"runs": 20, "blind_runs": 6, "gaps": [1.3, 28.4]}}).to_dict()
    flat = report.validation_markdown(dict(record, predicted=dict(PREDICTION, knee_steepness=12.0), trust=trust))
    assert "| knee sharpness d ln R/ds at s* | 12.0 |" in flat
    assert "**Trust: outside the regime** (flat knee: d ln R/ds = 12 at s*, < 25)." in flat
    assert "Evidence: predicted − measured +1.3 to +28.4 points on 20 flat-knee l1 runs (6 blind)." in flat
    # the answer first, saying it is no limit, with the next step (the report had neither)
    nxt = report.validation_markdown(dict(record, predicted=dict(PREDICTION, knee_steepness=12.0), trust=trust,
                                          next="pruning-limit train --init m.pt -o m-l1.pt", next_reason=None))
    body = nxt.split("\n\n")
    assert body[2] == "**Not a pruning limit: predicted 70.0 % [60.0, 80.0], measured 65.0 % (+5.0 points).**"
    assert body[3].startswith("**Trust: outside the regime**")
    assert body[3].endswith(f"Next: `pruning-limit train --init m.pt -o m-l1.pt` ({report.NEXT_REASON}).")
    # no second wall time beside the JSON's (this one was taken before the figures)
    assert "time (s)" not in report.validation_markdown(dict(record, seconds=3.25))
    steep = report.validation_markdown(dict(record, predicted=dict(PREDICTION, knee_steepness=80.0)))
    assert "The knee sharpness is d ln R/ds" in steep and "Trust" not in steep


# ----------------------------------------------------------------------------- figures


def test_spectrum_figure_marks_atom_and_extremes(tmp_path):
    eigs = np.concatenate([np.zeros(50), np.linspace(0.5, 6.0, 200), [-0.3]])
    spectrum = Spectrum.from_eigenvalues(eigs)
    figure = report.spectrum_figure(spectrum)
    axes = figure.axes[0]
    assert axes.get_yscale() == "log"
    lines = _vertical_lines(axes)
    assert 0.0 in lines and spectrum.lambda_max in lines and spectrum.lambda_min in lines
    labels = axes.get_legend_handles_labels()[1]
    assert any(f"{50 / 251:.3f}" in label for label in labels)  # the atom's mass in the legend
    # the extremes are named in the legend: a label drawn beside the λ_min line sat on the atom's
    # line and the density's peak when λ_min ≈ 0 (a review)
    assert any(label.endswith("= 6") for label in labels) and any(label.endswith("= -0.3") for label in labels)
    assert not axes.texts
    for suffix in ("png", "svg", "pdf"):
        path = report.save_figure(figure, tmp_path / f"s.{suffix}")
        assert path.stat().st_size > 1000
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_save_figure_refuses_unknown_suffix(tmp_path):
    figure = report.spectrum_figure(Spectrum.from_eigenvalues([0.0, 1.0, 2.0]))
    with pytest.raises(PruningLimitsError, match="plot file must end in"):
        report.save_figure(figure, tmp_path / "s.jpg")
    assert not (tmp_path / "s.jpg").exists()


def test_prediction_figure_without_sweep():
    figure = report.prediction_figure(PREDICTION, _curve())
    assert len(figure.axes) == 1
    axes = figure.axes[0]
    assert 0.7 in _vertical_lines(axes)
    diagonal = [line for line in axes.get_lines() if list(line.get_xdata()) == [0, 1] and list(line.get_ydata()) == [0, 1]]
    assert diagonal, "the diagonal s is drawn"
    assert any("0.700" in label for label in axes.get_legend_handles_labels()[1])


def test_prediction_figure_with_sweep_marks_measured_limits():
    figure = report.prediction_figure(PREDICTION, _curve(), _sweep())
    assert len(figure.axes) == 3  # fixed point, loss, accuracy (twin axis)
    right = figure.axes[1]
    lines = _vertical_lines(right)
    assert {0.65, 0.72, 0.7} <= set(lines)
    assert right.get_yscale() == "log"
    horizontal = [line for line in right.get_lines() if len(set(np.asarray(line.get_ydata(), float))) == 1]
    assert any(math.isclose(float(line.get_ydata()[0]), 0.11) for line in horizontal)  # L* + ε


def test_limit_curve_figure_sorted_by_epsilon():
    points = [dict(PREDICTION, epsilon=e, sparsity=s) for e, s in ((0.1, 0.8), (0.001, 0.5), (0.01, 0.7))]
    axes = report.limit_curve_figure(points).axes[0]
    assert axes.get_xscale() == "log"
    line = [ln for ln in axes.get_lines() if ln.get_label() == "predicted s*"][0]
    assert list(line.get_xdata()) == [0.001, 0.01, 0.1]
    assert list(line.get_ydata()) == [0.5, 0.7, 0.8]


def test_fixed_point_record_follows_the_gradient_term():
    from pruning_limits.limits import predict_from_spectrum

    rng = np.random.default_rng(3)
    weights = rng.normal(size=200)
    gradient = -1e-3 * np.sign(weights)
    spectrum = Spectrum.from_eigenvalues(rng.lognormal(size=200))
    prediction = predict_from_spectrum(weights, spectrum, 0.05, gradient=gradient)
    with pytest.raises(PruningLimitsError, match="pass the gradient"):
        report.fixed_point_record(weights, spectrum, prediction)
    curve = report.fixed_point_record(weights, spectrum, prediction, gradient)
    # the drawn curve crosses the diagonal where the prediction says: feasible at s*, not beyond
    sparsity, fraction = np.asarray(curve["sparsity"]), np.asarray(curve["delta_over_dim"])
    assert np.all(sparsity[sparsity <= prediction.sparsity] <= fraction[sparsity <= prediction.sparsity] + 1e-12)
    assert np.all(sparsity[sparsity > prediction.sparsity] > fraction[sparsity > prediction.sparsity])


def test_pattern_figure_marks_every_asked_epsilon_inside_its_axis():
    """`predict --structure 2:4` at several ε marks each on the one δ/D curve (which does not
    depend on ε), and the axis reaches an ε far from the needed one."""
    spectrum = Spectrum.from_eigenvalues(np.linspace(0.0, 2.0, 200))
    pattern = {"structure": "2:4", "sparsity": 0.5, "epsilon": 0.01, "eta": 0.05, "first_order_cost": 0.0,
               "needed_epsilon": 0.02, "distance": 1.0, "margin": 0.05}
    axes = report.pattern_figure(spectrum, pattern, marked=[0.01, 1e3]).axes[0]
    marks = sorted(float(line.get_xdata()[0]) for line in axes.lines if line.get_linestyle() == ":")
    assert marks == [0.01, 1e3]
    curve = axes.lines[0].get_xdata()  # δ/D is drawn out to every asked ε
    assert curve.min() < 0.01 and curve.max() > 1e3
    assert len([line for line in report.pattern_figure(spectrum, pattern).axes[0].lines if line.get_linestyle() == ":"]) == 1


def test_pattern_figure_draws_no_kinematic_band_where_the_first_order_cost_uses_up_epsilon():
    """At ε ≤ c the pattern is infeasible at both ends of the kinematic interval ("no to no"), yet
    the band was drawn from 0 to the margin there (a review, predict --structure 2:4 --plot)."""
    spectrum = Spectrum.from_eigenvalues(np.linspace(0.0, 2.0, 200))
    cost = 0.02
    pattern = {"structure": "2:4", "sparsity": 0.5, "epsilon": 0.01, "eta": 0.05, "first_order_cost": cost,
               "needed_epsilon": 0.03, "distance": 1.0, "margin": 0.2}
    axes = report.pattern_figure(spectrum, pattern, marked=[0.01, 0.05]).axes[0]
    (band,) = axes.collections
    x = np.concatenate([path.vertices[:, 0] for path in band.get_paths()])
    assert axes.get_xlim()[0] < cost and x.size  # the axis shows ε ≤ c, the band only beyond
    assert x.min() > cost


def test_a_matplotlib_that_cannot_start_is_one_line_before_any_work(monkeypatch):
    """`MPLBACKEND=nosuch ... --plot x.svg` printed a traceback after the whole computation:
    ``import matplotlib`` refuses a backend it does not know (a review, 2026-12-06)."""
    import subprocess
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as an import that fails
    monkeypatch.setenv("MPLBACKEND", "nosuch")
    with pytest.raises(PruningLimitsError, match="matplotlib cannot start.*MPLBACKEND='nosuch'"):
        report.check_matplotlib()
    monkeypatch.undo()
    env = {**os.environ, "MPLBACKEND": "nosuch"}
    code = "from pruning_limits.report import check_matplotlib; check_matplotlib()"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith("pruning_limits._checks.PruningLimitsError: matplotlib cannot start, so no figure can be written: Key backend: 'nosuch'")


def test_a_report_says_when_slq_did_not_settle():
    """`validate --report` after an adaptive run that hit its step limit warned on stderr only;
    the report, the file that stays, said nothing (a review, 2026-12-06)."""
    unsettled = {"iterations": 300, "stopping": {"adaptive": True, "converged": False, "ended": "step limit",
                                                 "moved": 0.0031, "window": 3, "tolerance": 0.002}}
    note = report.unsettled_note(unsettled)
    assert note == ("**SLQ did not settle** within 300 steps (step limit): s* moved by 0.31 points over its last 3 "
                    "checks, above the tolerance of 0.2. The answer may still move; more `--iterations` give a surer one.")
    for settled in ({"adaptive": True, "converged": True}, {"adaptive": False, "converged": None}, None):
        assert report.unsettled_note({"iterations": 300, "stopping": settled}) is None
    record = {"predicted": PREDICTION, "measured": {"limit_by_loss": 0.65, "limit_by_accuracy": 0.72}, "spectrum": unsettled}
    assert note in report.validation_markdown(record)
    structures = {"epsilon": 0.01, "structures": [], "spectrum": unsettled}
    assert note in report.structures_markdown(structures)


def test_fixed_point_record_of_a_structure_crosses_at_its_prediction(cancelling_groups):
    """A structure's prediction takes the first-order cost at its allowed counts only; the record
    (and `predict --structure neuron --plot`, which draws it) took it at every count, so the curve
    crossed the diagonal at 1/3 where s* = 1 (a review; the case: conftest's cancelling_groups)."""
    from pruning_limits.limits import predict_from_spectrum

    case = cancelling_groups
    weights, gradient, order, allowed, r2, spectrum = (
        case[k] for k in ("weights", "gradient", "order", "allowed", "r2", "spectrum"))
    prediction = predict_from_spectrum(
        weights, spectrum, case["epsilon"], criterion=r2, gradient=gradient, order=order, allowed=allowed)
    assert prediction.sparsity == 1.0
    curve = report.fixed_point_record(weights, spectrum, prediction, gradient, criterion=r2, order=order, allowed=allowed)
    sparsity, fraction = np.asarray(curve["sparsity"]), np.asarray(curve["delta_over_dim"])
    assert sparsity.max() == 1.0 and (sparsity <= fraction).all()
    every_count = report.fixed_point_record(weights, spectrum, prediction, gradient, criterion=r2, order=order)
    sparsity, fraction = np.asarray(every_count["sparsity"]), np.asarray(every_count["delta_over_dim"])
    assert sparsity[sparsity <= fraction].max() == pytest.approx(1 / 3)  # the partial groups' cost counted


def test_predict_structure_plot_draws_the_allowed_count_curve(tmp_path, monkeypatch):
    """`predict --structure neuron --plot` at one ε draws the fixed point with the structure's
    allowed counts, so the drawn curve is the one whose crossing the prediction moved down to a
    whole group."""
    from click.testing import CliRunner

    from pruning_limits.cli import cli

    path = tmp_path / "model.pt"
    trained = CliRunner().invoke(
        cli, ["train", "--model", "mlp:8", "--data", "digits", "--epochs", "1", "--l1", "0", "-o", str(path), "-q"]
    )
    assert trained.exit_code == 0, trained.stderr
    calls = []
    record = report.fixed_point_record

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return record(*args, **kwargs)

    monkeypatch.setattr(report, "fixed_point_record", spy)
    result = CliRunner().invoke(
        cli, ["predict", str(path), "--structure", "neuron", "--json", "--plot", str(tmp_path / "n.png"),
              "--iterations", "12", "--probes", "2"]
    )
    assert result.exit_code == 0, result.stderr
    (kwargs,) = calls
    order, allowed = kwargs["order"], np.asarray(kwargs["allowed"])
    dim = order.size
    answer = json.loads(result.stdout)
    # the allowed counts are whole rows of the 64-8-10 MLP (64 and 8 weights per neuron), from 0 to D
    assert allowed[0] == 0 and dim == 64 * 8 + 8 * 10 and round(answer["sparsity"] * dim) in allowed.tolist()
    assert set(np.diff(allowed).tolist()) <= {64, 8}


def test_answer_lines_outside_say_not_a_limit_and_the_next_line_pastes_into_a_shell():
    import shlex

    outside = {"in_regime": False, "level": "outside the regime", "reason": "flat knee", "evidence": ""}
    prediction = {"sparsity": 0.552, "interval": [0.552, 0.584]}
    lines = report.answer_lines(prediction, outside, measured=0.517, next_command="pruning-limit train --init 'a b.pt' -o x.pt",
                                next_reason="l1 fine-tune (then predict again)")
    assert lines[0] == "not a pruning limit: predicted 55.2 % [55.2, 58.4], measured 51.7 % (+3.5 points)"  # the verdict first
    assert lines[-1] == "next: pruning-limit train --init 'a b.pt' -o x.pt  # l1 fine-tune (then predict again)"
    # the shell reads the reason as a comment: the words are the command's alone
    assert shlex.split(lines[-1].removeprefix("next: "), comments=True) == ["pruning-limit", "train", "--init", "a b.pt", "-o", "x.pt"]
    inside = report.answer_lines(prediction, {**outside, "in_regime": True, "level": "in regime"}, measured=0.517)
    assert inside[0].endswith("difference +3.5 points")
    assert report.next_text("cmd") == f"cmd  # {report.NEXT_REASON}"


# ----------------------------------------------------------------------------- review of the report (2026-12)

OUTSIDE = {"in_regime": False, "level": "outside the regime", "retrain": True, "flat_knee": 25.0,
           "reason": "λ = 0, no l1; flat knee: d ln R/ds = 3 at the unstructured s*, < 25", "evidence": ""}
INSIDE = {"in_regime": True, "level": "in regime", "retrain": False, "flat_knee": 25.0,
          "reason": "l1-trained, λ = 0.0032; sharp knee: d ln R/ds = 145 at the unstructured s*, ≥ 25", "evidence": ""}


def _structures_record(trust: dict, *, next_command: str | None = None) -> dict:
    """A ``StructuresValidation.to_dict()``-shaped record with the verdict the CLI adds."""
    s = np.linspace(0.0, 1.0, 21)

    def curve(name, predicted, interval, measured, dense=None):
        support = {"dense_layers": [{"name": "5.weight", "size": 320}] if dense else [], "dense_share": dense or 0.0}
        return {"structure": name, "pattern": False, "trust": trust, "support": support,
                "predicted": {"sparsity": predicted, "interval": interval, "dim": 6464},
                "measured": {"limit_by_loss": measured, "limit_by_accuracy": measured - 0.01},
                "difference": predicted - measured, "curve": {"sparsity": s.tolist(), "distance": (1 + s).tolist()}}

    pattern = {"structure": "2:4", "pattern": True, "trust": trust, "support": {"dense_layers": [], "dense_share": 0.0},
               "predicted": {"sparsity": 0.5, "feasible": True, "needed_epsilon": 0.005,
                             "needed_epsilon_interval": [0.004, 0.006], "distance": 1.5, "dim": 6464},
               "measured": {"loss_rise": 0.021, "feasible": False, "needed_epsilon": 0.021, "accuracy": 0.95,
                            "dense_accuracy": 0.952},
               "difference": None, "curve": {"sparsity": [0.5], "distance": [1.5]}}
    structures = [curve("unstructured", 0.9561, [0.926, 0.958], 0.9551), curve("layerwise", 0.840, [0.831, 0.844], 0.800),
                  curve("neuron", 0.713, [0.703, 0.713], 0.693, dense=0.05), pattern]
    return {"epsilon": 0.0129, "structures": structures, "trust": trust, "checkpoint": "model.pt",
            "next": next_command, "next_reason": None if next_command is None else report.NEXT_REASON}


def test_answer_lines_difference_is_that_of_the_numbers_printed():
    """95.6 − 95.6 read "+0.1", 95.6 − 95.5 read "+0.2" (a review): the difference beside the two
    rounded numbers is theirs; the exact one stays in the JSON."""
    inside = {"in_regime": True, "level": "in regime", "reason": "sharp knee", "evidence": ""}
    first = report.answer_lines({"sparsity": 0.95649, "interval": None}, inside, measured=0.95551)[0]
    assert first == "predicted 95.6 %, measured 95.6 % sparsity, difference +0.0 points"
    second = report.answer_lines({"sparsity": 0.9564, "interval": None}, inside, measured=0.9546)[0]
    assert second == "predicted 95.6 %, measured 95.5 % sparsity, difference +0.1 points"
    assert report.shown_difference(0.4, 0.40001) == 0.0 and str(report.shown_difference(0.4, 0.40001)) == "0.0"  # no "-0.0"
    # the structures table's column too
    record = _structures_record(INSIDE)
    record["structures"][0]["predicted"]["sparsity"], record["structures"][0]["measured"]["limit_by_loss"] = 0.95649, 0.95551
    row = next(line for line in report.structures_table(record).splitlines() if line.startswith("| unstructured"))
    assert "| 95.6 [92.6, 95.8] | 95.6 | 94.5 | +0.0 |" in row


def test_an_unsettled_answer_carries_its_mark_on_stdout():
    """An adaptive run that ended at its step limit said so only in a stderr warning, which -q hid
    (a review): the answer's own lines now carry a short mark; a settled or fixed run has none."""
    inside = {"in_regime": True, "level": "in regime", "reason": "sharp knee", "evidence": ""}
    stop = {"adaptive": True, "converged": False, "ended": "step limit", "moved": 0.0062, "tolerance": 0.002}
    lines = report.answer_lines({"sparsity": 0.62, "interval": None, "spectrum": {"stopping": stop}}, inside)
    assert lines[-2:] == ["not settled: SLQ step limit, s* moved 0.62 points, tolerance 0.2;",
                          "             the answer may still move"]  # 91 characters on one line
    assert all(len(line) <= report.LINE_WIDTH for line in lines)
    # the validate record passes its prediction, whose spectrum is the same
    lines = report.answer_lines({"sparsity": 0.62, "interval": None}, inside, measured=0.6,
                                spectrum={"stopping": {**stop, "moved": None}})
    assert lines[-1] == "not settled: SLQ step limit; the answer may still move"
    lines = report.answer_lines({"sparsity": 0.62, "interval": None}, inside,
                                spectrum={"stopping": {**stop, "ended": "dimension", "moved": None}})
    assert lines[-1] == "not settled: D allows no more steps; the answer may still move"
    for stopping in ({**stop, "converged": True}, {"adaptive": False}, {}):
        lines = report.answer_lines({"sparsity": 0.62, "interval": None, "spectrum": {"stopping": stopping}}, inside)
        assert not any(line.startswith("not settled") for line in lines)


def test_next_line_is_wrapped_past_the_line_width_and_still_pastes_into_a_shell():
    import shlex

    assert report.LINE_WIDTH == 88
    command = "pruning-limit train --init /a/rather/long/folder/of/checkpoints/nol1.pt -o /a/rather/long/folder/nol1-l1.pt"
    lines = report.answer_lines({"sparsity": 0.5, "interval": [0.4, 0.6]}, OUTSIDE, measured=0.4, next_command=command)
    shown = lines[lines.index(next(line for line in lines if line.startswith("next: "))):]
    # a command past the width is broken between its words, option and value together, with
    # " \\" continuations (it stayed one line of 106 characters, a review), then the reason as a comment
    assert shown == [
        "next: pruning-limit train --init /a/rather/long/folder/of/checkpoints/nol1.pt \\",
        "      -o /a/rather/long/folder/nol1-l1.pt",
        f"      # {report.NEXT_REASON}",
    ]
    assert all(len(line) <= report.LINE_WIDTH for line in lines)
    # pasted as printed: the shell joins the continuations and skips the comment line
    pasted = "\n".join(shown).removeprefix("next: ").replace("\\\n", "")  # as a shell joins a continuation
    assert shlex.split(pasted, comments=True) == shlex.split(command)
    assert report.next_lines("cmd") == [f"next: cmd  # {report.NEXT_REASON}"]  # short: one line as before
    long_reason = "past the λ path, which stopped at λ = 0.0064 (validation accuracy 91.0 %, best 94.4 %) before its knee turned sharp: expect a lower accuracy"
    wrapped = report.next_lines("pruning-limit train --init h.pt --l1 0.0128 -o h-l1.pt", long_reason)
    assert len(wrapped) == 3 and all(len(line) <= report.LINE_WIDTH for line in wrapped)
    assert " ".join(line.strip().removeprefix("# ") for line in wrapped[1:]) == long_reason
    # docs/usage.md showed this one inline, on one line, as the code no longer prints it (a review)
    usage = (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text(encoding="utf-8")
    hastie = report.next_lines("pruning-limit train --init hastie.pt --l1 0.0128 -o hastie-l1.pt", long_reason)
    assert "\n".join(f"    {line}" for line in hastie) in usage
    assert "# past the λ path" not in usage.replace("\n          # past the λ path", "")  # no other copy


def test_next_lines_edges():
    """The edges a review tried (nl.py): a quoted word with spaces stays one word; a path wider
    than the room is never cut (in the command or in the reason); no break at a hyphen; a width
    below the indent is refused; the line at the width exactly stays one line."""
    import shlex

    quoted = "pruning-limit train --init '/a folder/with spaces/" + "x" * 40 + ".pt' -o '/a folder/with spaces/out-l1.pt'"
    lines = report.next_lines(quoted)
    assert lines[0].endswith(" \\") and all(len(line) <= report.LINE_WIDTH for line in lines)
    assert shlex.split("\n".join(lines).removeprefix("next: ").replace("\\\n", ""), comments=True) == shlex.split(quoted)
    path = "/home/someone/experiments/2024-06-01/resnet20-cifar10-lambda0/checkpoints/final-l1-" + "z" * 30 + ".pt"
    long = report.next_lines(f"pruning-limit train --init m.pt -o {path}", f"see {path} for the fine-tuned one-shot-pruned net")
    assert any(line.strip() == path for line in long)  # whole, on its own continuation line
    assert any(line.strip() == f"# {path}" for line in long)  # whole in the comment too (it was split mid-word)
    assert any(line.endswith("one-shot-pruned net") for line in long)  # no break inside "one-shot-pruned"
    assert shlex.split("\n".join(long).removeprefix("next: ").replace("\\\n", ""), comments=True)[-1] == path
    with pytest.raises(PruningLimitsError, match="width must be an integer above the indent of 8 characters, got 5"):
        report.next_lines("cmd", "a b c", width=5)
    exact = "x" * (report.LINE_WIDTH - len("next: cmd  # "))
    assert report.next_lines("cmd", exact) == [f"next: cmd  # {exact}"]
    assert report.next_lines("cmd", exact + "y") == ["next: cmd", f"      # {exact}y"]
    assert report.next_lines("cmd", "") == report.next_lines("cmd", None) == [f"next: cmd  # {report.NEXT_REASON}"]


def test_hang_wraps_trust_and_evidence_lines_at_clauses_then_spaces():
    """The trust and evidence lines were one line each, up to 214 characters (a review): wrapped
    with a hanging indent, at "; " first, then at spaces, never inside a word; the JSON keeps one string."""
    from pruning_limits.regime import trust_level

    assert report.hang("trust: ", "in regime (short)") == ["trust: in regime (short)"]
    text = "outside the regime (λ = 0, no l1; flat knee: d ln R/ds = 3 at the unstructured s*, < 25)"
    assert report.hang("trust: ", text) == [
        "trust: outside the regime (λ = 0, no l1;",
        "       flat knee: d ln R/ds = 3 at the unstructured s*, < 25)",
    ]
    words = "aaaa bbbb-cccc " * 10 + "z" * 100
    wrapped = report.hang("evidence: ", words, width=40)
    assert all(line.startswith("          ") for line in wrapped[1:])
    assert " ".join(line.strip() for line in wrapped) == "evidence: " + words.strip()  # no word cut, none at its hyphen
    assert wrapped[-1].strip() == "z" * 100
    with pytest.raises(PruningLimitsError, match="above the indent of 10 characters"):
        report.hang("evidence: ", "x", width=10)
    # the verdicts the review measured (the s₀ guard, the batch-std case, λ = 0 at a structure) fit
    verdicts = [
        trust_level(128.7, None, evidence={}, sparsity=0.905, zero_fraction=0.9),
        trust_level(15.0, 0.0032, sparsity=0.9, epsilon=5.0, batch_std=(0.0106, 30.0, 0.826), knee_at="the unstructured s*"),
        trust_level(3.0, 0.0, knee_at="the unstructured s*"),
        trust_level(12.0, 1e-3),  # the flat-knee evidence, two clauses
    ]
    for verdict in verdicts:
        record = verdict.to_dict()
        lines = report.trust_lines(record)
        assert all(len(line) <= 88 for line in lines), lines
        assert lines[0].startswith("trust: outside the regime (")
        joined = " ".join(line.strip() for line in lines)
        assert joined.startswith(f"trust: {record['level']} ({record['reason']})")
        assert (" evidence: " + record["evidence"] in joined) == bool(record["evidence"])
        assert "\n" not in record["reason"] and "\n" not in record["evidence"]  # one string each in the JSON


def test_pattern_answer_leads_with_the_answer_and_the_rows_are_the_detail():
    """predict --structure 2:4 printed its whole table, then the trust line, with or without -v
    (a review): one answer line (feasible at ε or not, the ε it needs), the verdict, the rows behind -v."""
    from pruning_limits.regime import trust_level

    prediction = {"structure": "2:4", "sparsity": 0.5, "epsilon": 0.0106, "feasible": False, "feasible_interval": [False, False],
                  "needed_epsilon": 0.02908, "needed_epsilon_interval": [0.02901, 0.02943], "delta_fraction": 0.0,
                  "first_order_cost": 0.029, "distance": 1.8595, "gradient_term": True, "dim": 2368, "eta": 0.05,
                  "trust": trust_level(30.0, 0.0032, knee_at="the unstructured s*").to_dict()}
    lines = report.pattern_answer_lines(prediction, next_command="pruning-limit train --init m.pt -o m-l1.pt")
    assert lines[0] == "2:4 (50.0 %) at ε = 0.0106: infeasible, needs ε ≥ 0.0291 [0.0290, 0.0294]"  # zeros kept
    assert lines[1:3] == ["trust: in regime (l1-trained, λ = 0.0032;", "       sharp knee: d ln R/ds = 30 at the unstructured s*, ≥ 25)"]
    assert not any("next" in line for line in lines)
    mixed = dict(prediction, epsilon=0.0291, feasible=True, feasible_interval=[False, True])
    assert report.pattern_answer_lines(mixed)[0] == (
        "2:4 (50.0 %) at ε = 0.0291: feasible (kinematic interval: no to yes), needs ε ≥ 0.0291 [0.0290, 0.0294]")
    outside = dict(prediction, trust=trust_level(3.0, 0.0, knee_at="the unstructured s*").to_dict())
    assert report.pattern_answer_lines(outside, next_command="pruning-limit train --init m.pt -o m-l1.pt")[-2:] == [
        "next: pruning-limit train --init m.pt -o m-l1.pt", f"      # {report.NEXT_REASON}"]
    rows = dict(report.pattern_prediction_rows(prediction))
    assert rows["2:4 feasible at ε = 0.0106"] == "no  (kinematic interval: no to no)"
    assert rows["δ(R)/D at ε"] == "0 (ε ≤ c: the first-order cost alone exceeds ε)" and rows["sparsity of the pattern"] == "50.0 %"
    assert not any("eps" in name or "eps" in value or ">=" in value for name, value in rows.items())


def test_prediction_rows_name_the_s_star_of_their_knee():
    """predict --structure neuron -v printed "knee sharpness d ln R/ds at s* 10.7" (the neuron s*)
    under a verdict read at the unstructured s* (30): the row names its s*."""
    rows = dict(report.prediction_rows(dict(PREDICTION, knee_steepness=10.7), knee_at="the neuron s*"))
    assert rows["knee d ln R/ds at the neuron s*"] == "10.7" and max(len(name) for name in rows) <= 31
    assert "knee sharpness d ln R/ds at s*" in dict(report.prediction_rows(dict(PREDICTION, knee_steepness=10.7)))


def _path(metrics, chosen=1, knees=(10.0, 13.9, 20.0)):
    return {"l1": [1e-3, 2e-3, 4e-3][chosen], "chosen": chosen, "metric": "accuracy", "tolerance": 0.01,
            "validation_size": 280, "grid": [1e-3, 2e-3, 4e-3], "knee_reference_share": 0.01,
            "points": [{"l1": lam, "metric": m, "knee_steepness": k, "reference_sparsity": 0.8}
                       for lam, m, k in zip([1e-3, 2e-3, 4e-3], metrics, knees)]}


def test_path_figure_draws_the_tolerance_line_of_the_rule_past_a_nan_metric():
    """max/min over a NaN metric (the path appends the point that stops it) put the tolerance line
    at NaN, not drawn; the rule (regpath.acceptable) uses nanmax."""
    figure = report.path_figure(_path([0.90, 0.95, float("nan")]))
    axes = figure.axes[0]
    (tolerance,) = [line for line in axes.get_lines() if line.get_label() == "tolerance of the rule"]
    assert np.allclose(np.asarray(tolerance.get_ydata(), float), 94.0)  # best 95 % − 1 point
    assert 2e-3 in _vertical_lines(axes)  # the chosen λ
    regression = dict(_path([0.30, float("nan"), 0.25], chosen=2), metric="loss", tolerance=0.02)
    (line,) = [ln for ln in report.path_figure(regression).axes[0].get_lines() if ln.get_label() == "tolerance of the rule"]
    assert np.allclose(np.asarray(line.get_ydata(), float), 0.27)  # nanmin 0.25 + 0.02
    # every metric NaN: no line, no warning
    assert not [ln for ln in report.path_figure(_path([float("nan")] * 3)).axes[0].get_lines() if ln.get_label() == "tolerance of the rule"]


def test_path_figure_and_summary_define_s_ref_and_name_the_knee_at_s_star():
    """The figure's knee is at s_ref, never defined, and read about 14 where the trust line said
    145 at s*, against a threshold of 25 (a review): s_ref is defined, the threshold said to be at
    s*, and the chosen point carries the final network's knee at s*."""
    path = _path([0.93, 0.94, 0.92])
    figure = report.path_figure(path, knee_at_s_star=144.66, flat_knee=25.0)
    twin = figure.axes[1]
    assert "s_ref" in twin.get_ylabel()
    (note,) = twin.texts
    assert note.get_text() == "13.9 at s_ref\nfinal network: 145 at s*; regime from 25 at s*"
    assert tuple(note.xy) == (2e-3, 13.9)
    labels = [t.get_text() for t in figure.legends[0].get_texts()]  # below the axes, off the knee curve
    assert "d ln R/ds at s_ref (1 % of ‖w‖² pruned)" in labels and not figure.axes[0].get_legend()
    text = report.path_summary(path, knee_at_s_star=144.66, flat_knee=25.0)
    assert "d ln R/ds at s_ref, the sparsity where the pruned weights hold 1 % of ‖w‖²" in text
    assert "not the knee of the trust criterion, which is taken at s* (in regime from 25)" in text
    assert text.endswith("At the chosen λ: d ln R/ds = 13.9 at s_ref on the path; the final network's is 145 at s*.")
    # the validation report passes the prediction's knee and the verdict's threshold
    record = {"predicted": dict(PREDICTION, knee_steepness=144.66), "measured": {"limit_by_loss": 0.65},
              "trust": dict(INSIDE, reason="sharp knee"), "training": {"l1_path": path}}
    assert "the final network's is 145 at s*." in report.validation_markdown(record)


def _labels(axes) -> list[str]:
    return axes.get_legend_handles_labels()[1]


def test_figures_outside_the_regime_say_the_prediction_is_no_limit():
    """A figure drew an out-of-regime s* as a limit, in the red of an in-regime one (a review)."""
    note = "Outside the regime: the predicted sparsity is not a pruning limit for this network"
    inside = report.prediction_figure(PREDICTION, _curve(), _sweep(), trust=INSIDE)
    assert "predicted s* = 0.700" in _labels(inside.axes[0]) and inside._suptitle is None
    outside = report.prediction_figure(PREDICTION, _curve(), _sweep(), trust=OUTSIDE, title="mlp")
    for axes in outside.axes[:2]:
        (line,) = [ln for ln in axes.get_lines() if ln.get_label().startswith("predicted s*")]
        assert line.get_label() == "predicted s* = 0.700 (outside the regime: not a limit)"
        assert line.get_linestyle() == "--" and line.get_color() == "0.45"
    assert outside._suptitle.get_text() == f"mlp\n{note}"
    # the limit against ε: every point outside, the line grey; some, those points marked
    points = [dict(PREDICTION, epsilon=e, sparsity=s, interval=[s - 0.01, s + 0.005]) for e, s in ((0.001, 0.946), (0.01, 0.96), (0.1, 0.968))]
    every = report.limit_curve_figure(points, trusts=[OUTSIDE] * 3).axes[0]
    assert "predicted s* (outside the regime: not a limit)" in _labels(every)
    mixed = report.limit_curve_figure(points, trusts=[OUTSIDE, INSIDE, INSIDE]).axes[0]
    (marked,) = [ln for ln in mixed.get_lines() if ln.get_label() == "s* outside the regime: not a limit"]
    assert list(marked.get_xdata()) == [0.001] and "predicted s*" in _labels(mixed)
    # zoomed to the points: 94.6 to 96.8 % was a flat line at the top of [0, 1.02]
    low, high = mixed.get_ylim()
    assert 0.9 < low < 0.936 and 0.973 < high < 1.0
    # the structures' bars
    figure = report.structures_figure(_structures_record(OUTSIDE))
    right = figure.axes[1]
    assert "predicted (outside the regime: not a limit)" in _labels(right)
    assert all(bar.get_hatch() == "//" for bar in right.patches)
    assert figure._suptitle.get_text() == note
    assert "predicted" in _labels(report.structures_figure(_structures_record(INSIDE)).axes[1])


def test_prediction_figure_draws_a_zero_loss():
    """A training loss of exactly 0 (MSE on a perfect fit) vanished on the log axis (a review)."""
    sweep = dict(_sweep(), loss=np.where(np.linspace(0, 1, 41) < 0.3, 0.0, np.linspace(0, 1, 41) ** 2), dense_loss=0.0)
    right = report.prediction_figure(PREDICTION, _curve(), sweep).axes[1]
    assert right.get_yscale() == "symlog" and "symmetric log" in right.get_ylabel()
    assert report.prediction_figure(PREDICTION, _curve(), _sweep()).axes[1].get_yscale() == "log"


def _inside(inner, outer, slack: float = 0.5) -> bool:
    return (inner.x0 >= outer.x0 - slack and inner.x1 <= outer.x1 + slack
            and inner.y0 >= outer.y0 - slack and inner.y1 <= outer.y1 + slack)


@pytest.mark.parametrize("sweep", [False, True], ids=["one panel", "two panels"])
@pytest.mark.parametrize("title", [None, "a title naming the checkpoint /some/rather/long/folder/name/model-l1.pt"])
def test_the_verdict_title_lies_inside_the_figure(sweep, title):
    """The single-panel figure's "Outside the regime: ..." title ran from x = -25.7 to 585.7 px on a
    560 px canvas, so it read "side the regime: ... for this netw" (a review): it is wrapped to
    the figure's width, measured as drawn, and says the whole note."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = report.prediction_figure(PREDICTION, _curve(), _sweep() if sweep else None, trust=OUTSIDE, title=title)
    FigureCanvasAgg(figure).draw()  # as saved: the constrained layout done, the text measured
    extent = figure._suptitle.get_window_extent()
    assert _inside(extent, figure.bbox), (extent, figure.bbox)
    text = figure._suptitle.get_text()
    assert " ".join(text.split()).endswith("Outside the regime: the predicted sparsity is not a pruning limit for this network")
    if sweep and title is None:  # wide enough: one line
        assert text == report.OUTSIDE_NOTE
    if not sweep:  # too narrow for one line: broken after the colon
        assert "Outside the regime:\nthe predicted sparsity" in text
    # the legend below the panels, clear of every axes (inside, it covered the δ(R)/D band and
    # the accuracy curve drawn on the twin axes, which loc="best" did not see: a review)
    (legend,) = figure.legends
    assert not any(axes.get_legend() for axes in figure.axes)
    box = legend.get_window_extent()
    assert _inside(box, figure.bbox) and all(box.y1 <= axes.get_window_extent().y0 for axes in figure.axes)
    labels = [t.get_text() for t in legend.get_texts()]
    assert "predicted s* = 0.700 (outside the regime: not a limit)" in labels and "δ(R(s)) / D" in labels
    assert len(labels) == len(set(labels))  # the marks drawn on both panels named once
    if sweep:
        assert {"training loss", "test accuracy", "dense accuracy", "measured (loss) = 0.650"} <= set(labels)
    # the N:M-only structures figure (6.8 inches) and the two-panel one
    for record in (_structures_record(OUTSIDE), {**_structures_record(OUTSIDE), "structures": _structures_record(OUTSIDE)["structures"][3:]}):
        drawn = report.structures_figure(record, title=title)
        FigureCanvasAgg(drawn).draw()
        assert _inside(drawn._suptitle.get_window_extent(), drawn.bbox)


def test_structures_answer_lines_lead_with_the_answer_and_the_reason():
    """validate --structure opened with a Markdown table, gave the verdict last and its reason
    nowhere (a review): the answer, then trust with the reason, then each structure, then next."""
    command = "pruning-limit train --init nol1.pt -o nol1-l1.pt"
    lines = report.structures_answer_lines(_structures_record(OUTSIDE, next_command=command))
    assert lines == [  # the verdict first; the trust line wrapped at its "; " (it was 113 characters)
        "not pruning limits: unstructured 95.6 %, largest structured layerwise 84.0 %",
        "trust: outside the regime (λ = 0, no l1;",
        "       flat knee: d ln R/ds = 3 at the unstructured s*, < 25)",
        "  unstructured  95.6 % [92.6, 95.8], measured 95.5 % (+0.1 points)",
        "  layerwise     84.0 % [83.1, 84.4], measured 80.0 % (+4.0 points)",
        "  neuron        71.3 % [70.3, 71.3], measured 69.3 % (+2.0 points), 5.0 % left dense",
        "  2:4           50.0 %: feasible (needs ε ≥ 0.00500), measured infeasible (loss +0.021)",
        f"next: {command}",
        f"      # {report.NEXT_REASON}",
    ]
    inside = report.structures_answer_lines(_structures_record(INSIDE))
    assert inside[0] == "limits: unstructured 95.6 %, largest structured layerwise 84.0 % (measured 95.5, 80.0 %)"
    assert not any(line.startswith("next") for line in inside)
    assert all(len(line) <= report.LINE_WIDTH for line in inside)
    # one structure: the structure named, the verdict first, and the layers it leaves dense
    one = _structures_record(OUTSIDE, next_command=command)
    one["structures"] = [one["structures"][2]]
    lines = report.structures_answer_lines(one)
    assert lines[0] == "neuron: not a limit: predicted 71.3 % [70.3, 71.3], measured 69.3 % (+2.0 points)"
    assert lines[1].startswith("trust: outside the regime (λ = 0, no l1") and lines[3].startswith("left dense  5.weight (320)")
    inside_one = report.structures_answer_lines({**one, "trust": INSIDE, "next": None})
    assert inside_one[0] == "neuron: predicted 71.3 % [70.3, 71.3], measured 69.3 %, difference +2.0 points"
    pattern = _structures_record(INSIDE)
    pattern["structures"] = [pattern["structures"][3]]
    assert report.structures_head(pattern) == (
        "2:4 (50.0 %) at ε = 0.0129: feasible (needs ε ≥ 0.00500), measured infeasible (loss +0.021)")
    pattern["structures"][0]["measured"]["feasible"] = True  # the two agree: "measured too"
    assert report.structures_head(pattern) == "2:4 (50.0 %) at ε = 0.0129: feasible (needs ε ≥ 0.00500), measured too (loss +0.021)"
    # the detail: the table, and ε and D in short lines
    detail = report.structures_rows(_structures_record(INSIDE)).splitlines()
    assert detail[0].split() == ["structure", "predicted", "meas.", "loss", "meas.", "acc.", "pred", "−", "meas", "left", "dense"]
    assert detail[-2:] == ["epsilon = 0.0129, D = 6464 prunable weights; sparsities in percent;",
                           "measured by one-shot pruning at each structure's allowed points"]


def test_the_structures_detail_table_fits_the_line_width():
    """validate --structure all -v printed the report's Markdown table: 98 characters its header,
    168 its 2:4 row. On the terminal the curve structures stand in aligned columns (the verdict,
    one for every structure, is the trust line above them) and each N:M pattern in a line of its
    own below them, wrapped; the report keeps the Markdown table with every column."""
    record = _structures_record(OUTSIDE)
    record["structures"][2]["structure"] = "channel+outputs"  # the widest name, and the widest numbers
    record["structures"][2]["predicted"].update(sparsity=1.0, interval=[1.0, 1.0])
    lines = report.structures_rows(record).splitlines()
    assert all(len(line) <= report.LINE_WIDTH for line in lines), [line for line in lines if len(line) > report.LINE_WIDTH]
    header = lines[0]
    assert [line.split()[0] for line in lines[1:4]] == ["unstructured", "layerwise", "channel+outputs"]
    neuron = lines[3]
    assert neuron[header.index("predicted"):].startswith("100.0 [100.0, 100.0]")  # under its header
    assert neuron.endswith("5.0 %") and neuron[header.index("left dense"):] == "5.0 %"
    assert "outside the regime" not in "\n".join(lines)
    pattern = lines[4:lines.index("")]
    assert pattern[0].startswith("2:4 (s = 50.0): feasible: yes; needs ε ≥ 0.00500 [0.00400, 0.00600];")
    assert " ".join(line.strip() for line in pattern) == (
        "2:4 (s = 50.0): feasible: yes; needs ε ≥ 0.00500 [0.00400, 0.00600]; measured: loss rise 0.021: "
        "above ε, accuracy 95.0 (dense 95.2); needed ε: pred/meas 0.24x")
    assert all(line.startswith(" " * len("2:4 (s = 50.0): ")) for line in pattern[1:])  # under the text
    table = report.structures_table(record).splitlines()  # the report's keeps every column
    assert table[0] == "| structure | predicted | measured (loss) | measured (acc.) | pred − meas | dense layers | trust |"
    assert table[-1].endswith("| needed ε: pred/meas 0.24x | - | outside the regime |")


def test_a_text_table_row_past_the_line_width_wraps_under_its_value():
    """spectrum's method row of an adaptive run took 93 characters (SLQ: 8 probes x 95 steps,
    block rule, exact (invariant Krylov space)): a value that does not fit wraps under the value
    column (report.hang), after its "; " first; rows that fit stay as they were."""
    method = "SLQ: 8 probes x 95 steps, block rule; exact (invariant Krylov space)"
    assert report.text_table([("D (prunable weights)", "1184"), ("method", method)]).splitlines() == [
        "D (prunable weights)  1184",
        "method                SLQ: 8 probes x 95 steps, block rule;",
        "                      exact (invariant Krylov space)",
    ]
    longest = "SLQ: 8 probes x 300 steps, block rule without re-orthogonalisation; NOT settled (D allows no more steps)"
    lines = report.text_table([("D (prunable weights)", "1184"), ("method", longest)]).splitlines()
    assert all(len(line) <= report.LINE_WIDTH for line in lines) and len(lines) > 2
    assert " ".join(line[len("D (prunable weights)  "):] for line in lines[1:]) == longest
    assert report.text_table([("a", "1"), ("bb", "2")]) == "a   1\nbb  2"


def test_structures_markdown_opens_with_the_answer_and_the_verdict():
    """The structures report opened with the table, without the bold answer and trust lines of
    the validation report, and its reason appeared nowhere (a review)."""
    command = "pruning-limit train --init nol1.pt -o nol1-l1.pt"
    text = report.structures_markdown(_structures_record(OUTSIDE, next_command=command))
    body = text.split("\n\n")
    assert body[2] == "**Not pruning limits: unstructured 95.6 %, largest structured layerwise 84.0 %.**"
    assert body[3].startswith(f"**Trust: outside the regime** ({OUTSIDE['reason']}).")
    assert body[3].endswith(f"Next: `{command}` ({report.NEXT_REASON}).")
    assert body[4].startswith("| structure | predicted |")  # the table after the answer
    # the criterion in full: it left out the small-s* and s₀ guards, so a verdict given for one of
    # them contradicted it (a review); a network l1-trained with a sharp knee but s* just above s₀
    no_knee = dict(INSIDE, in_regime=False, level="outside the regime", reason=(
        "l1-trained, λ = 0.0032; no knee test: the unstructured s* = 50.1 % is less than 6.26 points above the "
        "50.0 % of weights already zero (s₀), where weights without a knee pass it too"))
    trust = report.structures_markdown(_structures_record(no_knee)).split("\n\n")[3]
    assert trust.startswith(f"**Trust: outside the regime** ({no_knee['reason']}).") and "docs/theory.md §10" in trust
    from pruning_limits.regime import KNEE_MIN_SPARSITY

    least = f"{100 * KNEE_MIN_SPARSITY:.3g}"  # the number the verdict's own reason gives
    assert ("in regime when d ln R/ds at the unstructured s* is at least 25 and the network is not known to be trained "
            f"without l1; outside, with no knee test, where that s* is below {least} % or less than {least} points above "
            "the fraction s₀ of weights already exactly zero") in " ".join(trust.split())
    one = _structures_record(INSIDE)
    one["structures"] = [one["structures"][2]]
    assert "\n**neuron: predicted 71.3 % [70.3, 71.3], measured 69.3 %, difference +2.0 points.**\n" in report.structures_markdown(one)
