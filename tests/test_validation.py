"""Theory against measurement end to end: the reduced row of the validation suite (issue 6).

The full suite is ``python examples/validation/run_validation.py`` (docs/validation.md); CI runs
its ``--quick`` row, a digits MLP of 50 432 weights trained with λ auto (the suite's rule), with fewer Lanczos
steps, and checks the suite's target on it: |predicted − measured-by-loss| ≤ 2 points.
"""

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pruning_limits.data import load_data
from pruning_limits.lomp import train
from pruning_limits.models import build_model
from pruning_limits.validation import EXACT_AGREEMENT, validate

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "validation" / "run_validation.py"
TARGET = 0.02  # issue 6: every l1-trained row within 2 points of sparsity


def test_quick_validation_row_meets_the_target(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--cache", "", "--docs", str(tmp_path), "--no-figures", "--threads", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    record = json.loads((tmp_path / "validation-quick.json").read_text())
    (row,) = record["rows"]
    predicted, measured = row["predicted"], row["measured"]
    assert row["row"]["name"] == "digits-mlp256x128" and predicted["dim"] == 50_432
    low, high = predicted["interval"]
    assert 0 <= low <= predicted["sparsity"] <= high <= 1
    assert predicted["density"] == pytest.approx(1 - predicted["sparsity"])
    assert row["difference"] == pytest.approx(predicted["sparsity"] - measured["limit_by_loss"])
    assert abs(row["difference"]) <= TARGET, row["difference"]
    assert abs(row["difference_paper"]) <= TARGET, row["difference_paper"]
    one_shot_gap = row["spectral_one_shot"]["sparsity"] - measured["limit_by_loss"]
    assert abs(one_shot_gap) <= TARGET, one_shot_gap  # the candidate of docs/theory.md §6b too
    assert measured["dense_accuracy"] >= 0.95
    assert 0 <= row["taylor_one_shot"]["sparsity"] <= 1
    assert "digits-mlp256x128" in completed.stdout  # the table


@pytest.fixture(scope="module")
def small_digits_row():
    """The digits mlp:32 row of the suite (λ = 1e-3, the library's recipe), fewer Lanczos steps."""
    data = load_data("digits", seed=0)
    model = build_model("mlp:32", data, seed=0)
    train(model, data, l1=1e-3, seed=0)
    result = validate(model, data, iterations=100, probes=4, seed=0)
    if result.sweep.dense_accuracy < 0.95:  # not an AssertionError: a broken precondition fails the tests
        pytest.fail(f"the row's network misses its accuracy target: {result.sweep.dense_accuracy}")
    return result


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="known miss of issue 6: the digits mlp:32 row (λ = 1e-3) predicts +3.0 points above the measured "
    "limit here (100 steps x 4 probes), +2.6 to +2.9 with the suite's SLQ over seeds 0-2 (docs/validation.md); "
    "strict, so that a change meeting the target is noticed",
)
def test_small_digits_mlp_row_meets_the_target(small_digits_row):
    assert abs(small_digits_row.difference) <= TARGET, small_digits_row.difference


def test_the_spectral_one_shot_candidate_meets_the_target_on_the_small_digits_mlp_row(small_digits_row):
    # docs/validation.md: +1.2 points with the suite's SLQ; the default prediction misses by +2.9
    gap = small_digits_row.spectral_one_shot.sparsity - small_digits_row.sweep.limit_by_loss
    assert abs(gap) <= TARGET, gap


def test_validate_small_mlp_slq_agrees_with_exact_and_gradient_term_lowers_the_prediction():
    torch.manual_seed(0)
    data = load_data("digits", seed=0)
    model = build_model("mlp:32", data, seed=0)
    train(model, data, l1=1e-3, epochs=40, seed=0)
    result = validate(model, data, iterations=100, probes=4, exact=True)
    assert result.exact_agrees, (result.prediction.sparsity, result.exact_prediction.sparsity)
    assert abs(result.paper_prediction.sparsity - result.exact_prediction.sparsity) <= EXACT_AGREEMENT
    # the first-order cost of pruning is >= 0 at an l1 optimum, so the corrected limit is lower
    assert result.prediction.sparsity <= result.paper_prediction.sparsity
    assert result.prediction.gradient_term and not result.paper_prediction.gradient_term
    assert result.prediction.first_order_cost > 0
    # the Taylor diagnostic is the module's function on the same weights, gradient and ε
    from pruning_limits.hessian import HessianOperator
    from pruning_limits.taylor import taylor_one_shot_limit

    analysed = copy.deepcopy(model).to(torch.float64)
    direct = taylor_one_shot_limit(result.weights, result.gradient, HessianOperator(analysed, data.train), result.prediction.epsilon)
    assert result.taylor.sparsity == direct.sparsity and result.taylor.num_hvps == direct.num_hvps
    from pruning_limits.taylor import spectral_one_shot_limit

    one_shot = spectral_one_shot_limit(result.weights, result.gradient, result.spectrum, result.prediction.epsilon)
    assert result.spectral_one_shot.sparsity == one_shot.sparsity and 0 < one_shot.flat_fraction < 1
    record = result.to_dict()
    json.dumps(record)
    assert record["taylor_one_shot"]["sparsity"] == result.taylor.sparsity
    assert record["spectral_one_shot"]["sparsity"] == result.spectral_one_shot.sparsity
    assert np.isfinite(record["difference"]) and record["num_hvps"] == 400


def test_memory_budget_selects_the_quadrature_rule_in_validate_and_predict_limit():
    from pruning_limits.lanczos import block_lanczos_bytes
    from pruning_limits.pipeline import predict_limit

    data = load_data("digits", seed=0)
    model = build_model("mlp:8", data, seed=0)  # D = 592
    train(model, data.train, l1=1e-3, epochs=5, seed=0)
    # below the block basis of 2 probes × 12 steps: the block rule without re-orthogonalisation
    small = block_lanczos_bytes(592, 12, 2) - 1
    result = validate(model, data, iterations=12, probes=2, memory_budget=small)
    assert result.spectrum.rule == "block" and result.spectrum.reorthogonalization == "none"
    assert validate(model, data, iterations=12, probes=2).spectrum.reorthogonalization == "full"
    prediction = predict_limit(model, data.train, iterations=12, probes=2, memory_budget=small)
    assert prediction.spectrum["rule"] == "block" and prediction.spectrum["reorthogonalization"] == "none"
    assert predict_limit(model, data.train, iterations=12, probes=2).spectrum["reorthogonalization"] == "full"


def _validation_script(monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_validation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "run_validation", module)  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_a_cached_row_with_ablations_serves_a_run_without_them_but_not_the_reverse(tmp_path, monkeypatch):
    suite = _validation_script(monkeypatch)
    row = suite.Row("tiny", "mlp:4", "digits", 1e-3)
    key = suite.cache_key(row, 3)
    with_ablations = tmp_path / f"tiny-{key}-10x2-auto-ablations.json"
    with_ablations.write_text(json.dumps({"row": {"name": "tiny"}, "ablations": {}}))
    messages = []
    record = suite.run_row(row, iterations=10, probes=2, seed=3, cache=tmp_path, figures=None, log=messages.append)
    assert record == {"row": {"name": "tiny"}, "ablations": {}}
    assert messages == [f"[tiny] reusing {with_ablations}"]

    without = tmp_path / f"tiny-{key}-10x2-auto.json"
    without.write_text(json.dumps({"row": {"name": "tiny"}}))
    # the exact file wins when present
    assert suite.run_row(row, iterations=10, probes=2, seed=3, cache=tmp_path, figures=None, log=messages.append) == {
        "row": {"name": "tiny"}
    }
    with_ablations.unlink()
    # a record without ablations never serves a run that asks for them: that run starts from training
    # (stopped here by an unknown data set, before anything is written)
    other = suite.Row("tiny", "mlp:4", "no-such-data", 1e-3)
    (tmp_path / f"tiny-{suite.cache_key(other, 3)}-10x2-auto.json").write_text("{}")
    from pruning_limits import PruningLimitsError

    with pytest.raises(PruningLimitsError, match="unknown data spec 'no-such-data'"):
        suite.run_row(other, iterations=10, probes=2, seed=3, cache=tmp_path, figures=None, log=messages.append, with_ablations=True)


def test_a_cached_record_older_than_knee_steepness_gets_it_from_its_cached_network(tmp_path, monkeypatch):
    from pruning_limits.checkpoint import save_bundle
    from pruning_limits.limits import knee_steepness
    from pruning_limits.masks import distance_curve

    suite = _validation_script(monkeypatch)
    row = suite.Row("tiny", "mlp:4", "digits", 1e-3)
    data = load_data("digits", seed=3)
    model = build_model("mlp:4", data, seed=3)
    train(model, data, l1=1e-3, epochs=1, seed=3)
    save_bundle(suite.bundle_path(row, 3, tmp_path), model, model_spec="mlp:4", data_spec="digits", training={"l1": 1e-3})
    key = suite.cache_key(row, 3)
    (tmp_path / f"tiny-{key}-10x2-auto.json").write_text(json.dumps({"row": {"name": "tiny"}, "predicted": {"sparsity": 0.5}}))
    record = suite.run_row(row, iterations=10, probes=2, seed=3, cache=tmp_path, figures=None, log=lambda m: None)
    expected = knee_steepness(distance_curve(model), 0.5)
    assert record["predicted"]["knee_steepness"] == pytest.approx(expected, rel=1e-12) and expected > 0


def test_preregistered_sklearn_tables_load_as_user_npz_data(tmp_path):
    import importlib.util

    path = SCRIPT.with_name("preregistered.py")
    spec = importlib.util.spec_from_file_location("preregistered", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    npz = module.sklearn_npz("wine", tmp_path / "tables")
    data = load_data(npz, seed=0)
    x, y = data.train
    x_test, _ = data.test
    # scikit-learn's wine table: 178 samples, 13 features, 3 classes; 20 % held out by the npz loader
    assert (len(x), len(x_test), x.shape[1], data.num_classes) == (142, 36, 13, 3)
    assert data.test_source == "split" and y.dtype == torch.int64
    both = torch.cat([x, x_test]).double()
    assert torch.allclose(both.mean(0), torch.zeros(13, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(both.std(0, unbiased=False), torch.ones(13, dtype=torch.float64), atol=1e-5)
    # record names are plain file names, whatever the specs hold (":" and "," are not portable)
    for i in range(len(module.NETWORKS)):
        name = module.record_name(i)
        assert name.endswith(".json") and all(c.isalnum() or c in "._-" for c in name), name


def test_flat_knee_preregistration_rules(monkeypatch):
    """The two rules of ``preregistered_flat_knee.py`` on hand-made records, both sides and the edge cases."""
    import importlib

    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    module = importlib.import_module("preregistered_flat_knee")

    def record(gap_points, steepness, accuracy=0.9):
        return {"measured": 0.5, "kinematic": 0.5 + gap_points / 100, "knee_steepness_at_prediction": steepness,
                "test_accuracy": accuracy}

    flagged = [record(1.0, 10), record(3.0, 5), record(6.0, 20)]
    sharp = [record(-0.5, 30), record(0.9, 40), record(1.9, 100)]
    assert module.verdicts(flagged + sharp, 25.0) == {"rule 1": "passes", "rule 2": "passes"}
    # rule 1: one flagged network less than a point too high; rule 2: one gap over 2 points
    assert module.verdicts(flagged + [record(0.9, 24)] + sharp + [record(-2.1, 26)], 25.0) == {
        "rule 1": "fails", "rule 2": "fails"}
    # rule 2's median: three gaps of 1.5 points, each within 2
    assert module.verdicts(flagged + [record(1.5, 30)] * 3, 25.0)["rule 2"] == "fails"
    # a collapsed classifier counts on neither side; regression (no accuracy) counts
    collapsed = record(-9.0, 30, accuracy=0.3)
    assert module.verdicts(flagged + sharp[:2] + [collapsed], 25.0)["rule 2"] == "untested (2 networks not flagged)"
    assert module.verdicts(flagged + sharp[:2] + [record(0.0, 50, accuracy=None)], 25.0)["rule 2"] == "passes"
    assert module.verdicts(sharp, 25.0)["rule 1"] == "untested (0 flagged networks)"


def test_flat_knee_evidence_pools_the_flagged_runs_counting_the_repeated_network_once(monkeypatch, tmp_path):
    """``pooled_preregistered.flat_knee_section`` on hand-made records of the three sources, and the
    one-line refusal of ``--evidence`` where records are missing."""
    import importlib

    from pruning_limits.regime import check_evidence

    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    module = importlib.import_module("pooled_preregistered")

    def record(gap_points, steepness, accuracy=0.9):
        return {"measured": 0.5, "kinematic": 0.5 + gap_points / 100, "knee_steepness_at_prediction": steepness,
                "test_accuracy": accuracy}

    suite = [record(2.9, 17), record(-0.2, 150), record(2.4, 28)]
    first = [record(6.6, 3), record(0.6, 80)]
    # network 1 repeats a suite run (its gap made unlike any other, to see whether it is counted);
    # network 2 is a collapsed classifier, counted like the others; a knee of exactly 25 is not flat
    second = [record(28.4, 3), record(50.0, 1), record(1.9, 16, accuracy=0.479), record(0.2, 700),
              record(-0.3, 24.9), record(1.0, 25.0, accuracy=None)]
    section = module.flat_knee_section(suite, first, second, {1: "a suite row"}, 25.0)
    assert section == {
        "level": 25.0, "runs": 5, "gaps": [-0.3, 28.4], "blind_runs": 3, "others": {"runs": 5, "gaps": [-0.2, 2.4]},
        "pooled_runs": 10, "flagged_by_source": {
            "seed_spread.py --fixed-l1": 1, "preregistered.py": 1, "preregistered_flat_knee.py": 3},
    }
    check_evidence({"flat_knee": section})  # the shape the trust messages read
    counted_twice = module.flat_knee_section(suite, first, second, {}, 25.0)
    assert (counted_twice["runs"], counted_twice["gaps"], counted_twice["blind_runs"]) == (6, [-0.3, 50.0], 4)

    with pytest.raises(SystemExit) as refused:
        module.read_evidence_records(tmp_path)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"--evidence: expected every record in {tmp_path}; missing: ")
    assert "seed_spread.py --fixed-l1 digits-mlp32 seeds 0 1 2; " in message
    assert "preregistered.py networks 0 1 2 3 4 5 6 7" in message
    assert "preregistered_flat_knee.py networks 0 1 2 3 4 5 6 7 8 9" in message


def test_example_scripts_import_only_names_that_exist():
    """Every ``from X import Y`` in examples/ and benchmarks/ (also inside functions) resolves.

    The scripts import their siblings (``from run_validation import ...``) and the library lazily,
    inside ``main``, so importing a script is not enough to catch a renamed or moved name.
    """
    import ast
    import importlib

    root = SCRIPT.parents[2]
    scripts = sorted((root / "examples").rglob("*.py")) + sorted((root / "benchmarks").glob("*.py"))
    assert len(scripts) >= 8
    checked = 0
    for path in scripts:
        siblings = {p.stem: p for p in path.parent.glob("*.py")}
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level or node.module is None:
                continue
            names = [alias.name for alias in node.names]
            if node.module in siblings:
                tree = ast.parse(siblings[node.module].read_text())
                defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
                targets = [t for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                           for t in (n.targets if isinstance(n, ast.Assign) else [n.target])]
                defined |= {name.id for t in targets for name in ([t] if isinstance(t, ast.Name) else getattr(t, "elts", []))
                            if isinstance(name, ast.Name)}
                missing = [n for n in names if n not in defined]
            elif node.module.split(".")[0] == "pruning_limits":
                module = importlib.import_module(node.module)
                missing = [n for n in names if not hasattr(module, n)]
            else:
                continue
            assert not missing, f"{path.relative_to(root)}:{node.lineno} imports {missing} from {node.module}"
            checked += 1
    assert checked >= 20


def test_evidence_from_the_suites_json_records_needs_every_row_once(tmp_path, monkeypatch, capsys):
    """``run_validation.py --evidence-from``: the suite section from the committed records, split by verdict."""
    import pruning_limits.regime as regime

    suite = _validation_script(monkeypatch)
    target = tmp_path / "evidence.json"
    target.write_text(json.dumps({"flat_knee": {"runs": 2, "gaps": [1.0, 2.0]}}))
    monkeypatch.setattr(regime, "EVIDENCE_FILE", target)
    docs = SCRIPT.parents[2] / "docs"
    records = json.loads((docs / "validation.json").read_text())["rows"]
    arch = [r for run in json.loads((docs / "validation-architectures.json").read_text())["runs"] for r in run["rows"]]
    assert suite.main(["--evidence-from", str(docs / "validation.json"), str(docs / "validation-architectures.json")]) == 0
    written = regime.read_evidence(target)
    assert written["flat_knee"] == {"runs": 2, "gaps": [1.0, 2.0]}  # other sections kept
    section = written["suite"]
    controls = [100 * r["difference"] for r in records if not suite.is_l1(r["row"])]
    assert section["controls"] == {"runs": len(controls), "gaps": [round(min(controls), 1), round(max(controls), 1)]}
    assert section["in_regime"]["runs"] + section["outside_l1"]["runs"] == len(records) + len(arch) - len(controls)
    assert "--evidence-from" in section["written_by"]
    with pytest.raises(SystemExit, match="missing .*patterns-resnet20"):  # one file alone lacks the architecture rows
        suite.main(["--evidence-from", str(docs / "validation.json")])
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SystemExit, match="not a validation JSON"):
        suite.main(["--evidence-from", str(broken)])


def test_cli_validate_refuses_several_epsilons_instead_of_keeping_the_last(tmp_path) -> None:
    """``validate --epsilon 0.01 --epsilon 0.02`` measured at 0.02 alone, without a word (a review's
    repro); ``predict`` is the command that takes several. The refusal is a usage error, before any work."""
    from click.testing import CliRunner

    from pruning_limits.cli import cli

    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "absent.pt"), "--epsilon", "0.01", "--epsilon", "0.02"])
    assert result.exit_code == 2, result.output
    assert "validate takes one ε, got 2 (0.01, 0.02); predict takes several" in result.stderr
    assert not list(tmp_path.iterdir())


def test_cli_validate_report_needs_a_markdown_name(tmp_path) -> None:
    """``validate --report r.png`` wrote Markdown into r.png and said it succeeded (a review's repro)."""
    from click.testing import CliRunner

    from pruning_limits.cli import cli

    for name in ("r.png", ".md"):  # '.md' alone wrote the hidden files .md and .md-spectrum.png (a review, 2026-12-06)
        result = CliRunner().invoke(cli, ["validate", str(tmp_path / "absent.pt"), "--report", str(tmp_path / name)])
        assert result.exit_code == 1
        assert result.stderr.strip() == (
            f"Error: --report writes Markdown: give a name ending in .md (or .markdown), got {str(tmp_path / name)!r}"
        )
        assert not list(tmp_path.iterdir())
