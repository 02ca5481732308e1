"""``pruning-limit gap`` end to end: the CI-sized run (two ε, two seeds, d = 2), its certificates, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pruning_limits import lottery
from pruning_limits.cli import cli

REDUCED = ["gap", "--dim", "2", "--epsilon", "0.125", "--epsilon", "0.0625", "--seeds", "2"]


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def reduced_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gap")
    result = run(*REDUCED, "--json", "--plot", folder / "gap.png", "-o", folder / "gap.json")
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout), folder


def test_reduced_run_json_carries_checkable_certificates(reduced_run):
    record, folder = reduced_run
    assert record["dim"] == 2 and record["model"] == "R" and record["seeds"] == [0, 1]
    assert record["epsilons"] == [0.125, 0.0625]
    assert {"streams", "results", "fits", "setting", "seconds", "check"} <= set(record)
    stream = record["streams"][0]
    assert len(stream["w"]) == 2 and len(stream["first"]) == len(stream["second"])
    assert all(len(row) == 2 for row in stream["first"])
    for res in record["results"]:
        assert set(res["median"]) >= {"weight", "neuron_lower_bound", "neuron_exact"}
        for cell in res["seeds"]:
            wt = cell["weight"]
            assert np.asarray(wt["first_mask"]).shape == (wt["width"], 2)
            assert len(wt["second_mask"]) == wt["width"]
            assert wt["error"] <= res["epsilon"] and wt["error_kind"] == "exact"
            nr = cell["neuron"]
            assert nr["lower_bound"] == nr["certificate"]["width"] + 1
            assert {"points", "y_upper", "y_lower"} <= set(nr["certificate"])
            assert "status" in nr["exact"]
    # re-checked from the JSON alone (a fresh parse of the file the command wrote)
    saved = json.loads((folder / "gap.json").read_text())
    check = lottery.check_gap_record(saved)
    assert check["problems"] == [] and check["weight"] == 4 and check["neuron"] == 4 and check["streams"] == 2
    assert record["check"] == check
    assert (folder / "gap.png").read_bytes()[:4] == b"\x89PNG"
    assert record["fits"]["weight"]["points"] == 2


def test_check_option_accepts_the_record(reduced_run):
    record, folder = reduced_run
    result = run("gap", "--check", folder / "gap.json")
    assert result.exit_code == 0 and result.stdout.startswith("all certificates valid")


def _raise_lower_bound(rec):
    cell = rec["results"][1]["seeds"][0]
    cell["neuron"]["lower_bound"] += 5  # a bigger claim than the certificate proves
    return f"eps=2^-4 seed=0: lower_bound {cell['neuron']['lower_bound']} is not certificate width + 1"


def _empty_second_layer(rec):
    wt = rec["results"][1]["seeds"][0]["weight"]
    wt["second_mask"] = [0] * len(wt["second_mask"])  # the empty network errs 1
    return "eps=2^-4 seed=0: weight subnetwork errs 0.99999999999999"  # 1 up to rounding, "> ε" follows


def _pad_weight_masks(rec):
    wt = rec["results"][1]["seeds"][0]["weight"]
    n, stored = wt["width"], len(rec["streams"][0]["second"])
    wt["width"] = stored  # a width above the construction's, its masks padded with unused rows
    wt["first_mask"] += [[0, 0]] * (stored - n)
    wt["second_mask"] += [0] * (stored - n)
    return f"eps=2^-4 seed=0: weight width {stored} overstated: its masks keep no neuron past the first {n}"


def _forge_margin(rec):
    rec["results"][1]["seeds"][0]["neuron"]["certificate"]["margin"] = -1.0
    return "eps=2^-4 seed=0: neuron certificate margin -1.0 is not the recomputed "


def _forge_scale(rec):
    rec["results"][1]["seeds"][0]["neuron"]["certificate"]["scale"] = 1e-300
    return "eps=2^-4 seed=0: neuron certificate scale 1e-300 is not the recomputed "


def _forge_kind(rec):
    rec["kind"] = "x"
    return "'kind' must be 'pruning-gap', got 'x' (str)"


def _forge_tolerance(rec):
    rec["farkas_tolerance"] = 1.0
    return "'farkas_tolerance' must be 1e-09, the tolerance the certificates are re-checked with, got 1.0 (float)"


@pytest.mark.parametrize(
    "forge",
    [_raise_lower_bound, _empty_second_layer, _pad_weight_masks, _forge_margin, _forge_scale, _forge_kind, _forge_tolerance],
)
def test_check_option_refuses_each_forgery_with_its_own_message(reduced_run, tmp_path, forge):
    """One forged field per record (the earlier test forged two and asserted only "INVALID")."""
    _, folder = reduced_run
    forged = json.loads((folder / "gap.json").read_text())
    message = forge(forged)
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    result = run("gap", "--check", tmp_path / "forged.json")
    assert result.exit_code == 1
    assert result.stdout.startswith("INVALID certificates") and "certificate(s) failed" in result.stderr
    assert any(line.strip().startswith(message) for line in result.stdout.splitlines()), (message, result.stdout)


def test_text_output_leads_with_the_answer(tmp_path):
    result = run("gap", "--dim", "1", "--epsilon", "0.25", "--seeds", "1", "-o", tmp_path / "one.json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    first = result.stdout.splitlines()[0]
    assert first == "At ε = 2^-2 (d = 1, median of 1 seed): neuron needs ≥ 4 neurons, weight ≤ 4."
    assert "not above" in result.stdout.splitlines()[1]
    assert "all valid" in result.stdout
    assert "seed=0" in result.stderr  # progress on stderr
    # ≥ and ≤ as the other commands write them; "1 stream", not "1 streams"; lines within 88 (a review)
    lines = result.stdout.splitlines()
    assert "re-checked: 1 weight, 1 LP, 1 exact certificates, 1 stream, medians and fits: all valid." in lines
    assert "    2^-2        4         4      4   1.00" in lines and any("weight≤" in line and "neuron≥" in line for line in lines)
    assert ">=" not in result.stdout and "<=" not in result.stdout and "1 streams" not in result.stdout
    assert all(len(line) <= 88 for line in lines), [line for line in lines if len(line) > 88]
    model_l = run("gap", "--dim", "1", "--epsilon", "0.25", "--seeds", "1", "--model", "L")
    assert model_l.exit_code == 0, (model_l.stdout, model_l.stderr)
    assert model_l.stdout.splitlines()[0] == "Model L. At ε = 2^-2 (d = 1, median of 1 seed): weight needs ≥ 4 neurons, neuron ≥ 4."
    assert all(len(line) <= 88 for line in model_l.stdout.splitlines())
    checked = run("gap", "--check", tmp_path / "one.json")
    assert checked.exit_code == 0 and checked.stdout.splitlines() == [  # "1 streams", in one line of 99 characters
        "all certificates valid: 1 weight, 1 LP, 1 exact;",
        "                        1 stream regenerated, medians and fits recomputed",
    ]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--dim", "0"], "--dim must be an integer >= 1, got 0"),
        (["--dim", "2", "--epsilon", "0"], "--epsilon must satisfy 0 < ε <= 1 - 1e-8"),
        (["--dim", "2", "--epsilon", "1"], "--epsilon must satisfy 0 < ε <= 1 - 1e-8"),
        (["--dim", "2", "--epsilon", "-0.5"], "--epsilon must satisfy 0 < ε <= 1 - 1e-8"),
        (["--dim", "2", "--seeds", "0"], "--seeds must be an integer from 1 to 10000"),
        (["--dim", "2", "--seeds", "100000000000"], "--seeds must be an integer from 1 to 10000"),  # memory without bound
        (["--dim", "1000000000", "--seeds", "1", "--epsilon", "0.25"], "--dim must be at most 128"),  # was a MemoryError
        (["--dim", "99999999999999999999", "--seeds", "1"], "--dim must be at most 128"),  # numpy's ValueError traceback
        # lottery.MAX_DIM (docs/gap.md); the library's "dim must be at most 128, got 129" did not name the flag
        (["--dim", "129", "--seeds", "1", "--weight-only"], "Error: --dim must be at most 128 (the stream and record grow like d^2), got 129"),
        (["--dim", "2", "--epsilon", "1.0000001"], "got 1.0000001"),  # was "got 1", exactly what is allowed
        # was "Error: a Farkas multiplier sits on a lower row that does not exist" (the empty network's row is rounding)
        (["--dim", "2", "--epsilon", "0.9999999999999999", "--seeds", "1"],
         "Error: --epsilon must satisfy 0 < ε <= 1 - 1e-8 (float64 decides beyond), got 0.9999999999999999"),
        (["--dim", "2", "--milp-time-limit", "-1"], "--milp-time-limit must be a number of seconds >= 0"),
        (["--dim", "5", "--model", "L"], "Error: --dim must be at most 4 with --model L (its LP covers the 2^d - 1 masks of every neuron), got 5"),
        # the library's "epsilons must be distinct, got [0.25, 0.25]" did not name the flag
        (["--dim", "2", "--epsilon", "0.25", "--epsilon", "0.125", "--epsilon", "0.25"],
         "Error: --epsilon values must be distinct (a repeated ε counts twice in the fits), got 0.25 more than once"),
    ],
)
def test_bad_inputs_are_one_line_errors(args, message):
    result = run("gap", *args)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_usage_errors(tmp_path):
    assert run("gap").exit_code == 2  # neither --dim nor --check
    assert run("gap", "--dim", "2", "--model", "X").exit_code == 2
    result = run("gap", "--dim", "2", "--plot", tmp_path / "no" / "f.png")
    assert result.exit_code == 1 and "does not exist" in result.stderr
    (tmp_path / "bad.json").write_text("{")
    result = run("gap", "--check", tmp_path / "bad.json")
    assert result.exit_code == 1 and result.stderr.strip().endswith(
        "is not JSON: Expecting property name enclosed in double quotes (line 1, column 2)")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00{")  # a UnicodeDecodeError traceback before
    result = run("gap", "--check", tmp_path / "binary.json")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    # the codec's "can't decode byte 0xff in position 0: invalid start byte" (103 characters) said nothing useful
    assert result.stderr.strip().endswith("is not JSON: not UTF-8 text (gap --json -o FILE writes a record)")
    # a check runs and writes nothing: run options beside it were ignored silently
    result = run("gap", "--check", tmp_path / "bad.json", "--plot", tmp_path / "c.png", "--dim", "3")
    assert result.exit_code == 2 and "takes no run options, got --dim, --plot" in result.stderr


def test_milp_time_limit_zero_skips_the_milp_and_says_so():
    """--milp-time-limit 0 means "do not run the MILP" (the time-out label itself is tested in
    test_lottery through the library with a zero budget, independent of wall-clock speed)."""
    result = run("gap", "--dim", "2", "--epsilon", "0.25", "--seeds", "1", "--milp-time-limit", "0", "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    record = json.loads(result.stdout)
    exact = record["results"][0]["seeds"][0]["neuron"]["exact"]
    assert exact["width"] is None and exact["status"].startswith("not-attempted: MILP time limit 0")
    assert record["results"][0]["median"]["neuron_exact"] is None
    assert record["check"]["problems"] == [] and record["check"]["exact"] == 0


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"dim": 2, "model": "R", "streams": [], "results": 5}', "'results' must be a list"),
        ("[1, 2]", "expected a JSON object"),
        ('{"dim": 2, "model": "R", "streams": [], "results": []}', "no certificate to check"),
        ('{"dim": 2, "model": "R", "streams": [7], "results": []}', "streams[0] is malformed"),
        ('{"dim": 2, "model": "R", "streams": [{"seed": "a", "w": [], "first": [], "second": []}], "results": []}', "streams[0]"),
        ('{"dim": 2, "model": "R", "streams": [], "results": [{"epsilon": 0.5, "seeds": 3}]}', "results[0]"),
        (  # a weight limit where the experiment records none: its re-derivation took 148 s at d = 192
            json.dumps({"dim": 192, "model": "R", "streams": [{"seed": 0, "w": [1.0] + [0.0] * 191, "first": [], "second": []}],
                        "results": [{"epsilon": 0.5, "seeds": [{"seed": 0, "weight": {"width": None, "status": "stream-width-limit: x"}}]}]}),
            "refused: results[0] claims a weight limit (stream-width-limit) in d = 192; the experiment records weight limits only for d <= 128",
        ),
    ],
)
def test_check_of_malformed_records_is_a_one_line_error(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    result = run("gap", "--check", tmp_path / "bad.json")
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_check_refuses_a_width_below_what_can_be(reduced_run, tmp_path):
    """reshape(-1, d) accepted a weight width of -1, and the check certified the record."""
    _, folder = reduced_run
    forged = json.loads((folder / "gap.json").read_text())
    forged["results"][0]["seeds"][0]["weight"]["width"] = -1
    forged["results"][1]["seeds"][0]["neuron"]["certificate"]["width"] = -1
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    result = run("gap", "--check", tmp_path / "forged.json")
    assert result.exit_code == 1
    assert "weight width must be at least 1, got -1" in result.stdout
    assert "certificate width must be at least 0, got -1" in result.stdout


def test_check_reports_forged_medians(reduced_run, tmp_path):
    _, folder = reduced_run
    forged = json.loads((folder / "gap.json").read_text())
    forged["results"][1]["median"]["neuron_lower_bound"] = 999.0
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    result = run("gap", "--check", tmp_path / "forged.json")
    assert result.exit_code == 1 and "median neuron_lower_bound" in result.stdout


def test_model_l_weight_only_says_one_bound_and_repeated_seeds_are_refused():
    result = run("gap", "--dim", "1", "--model", "L", "--weight-only", "--epsilon", "0.25", "--seeds", "1")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "It is a certified LP lower bound." in result.stdout and "Both" not in result.stdout
    with pytest.raises(lottery.PruningLimitsError, match="seeds must be distinct, got \\[0, 0\\]"):
        lottery.gap_experiment(1, [0.25], [0, 0], neuron=False)  # its own record check refused the result


def test_an_unreachable_weight_cell_keeps_the_run(monkeypatch, tmp_path):
    """`gap --dim 96 --weight-only` ended rc 1 after 5 finished cells, writing nothing, when one ε was out of the
    stream's reach. Here the stream is cut to 40 neurons: in d = 2, ε = 2^-2 is reached (widths 12, 37), 2^-8 is not."""
    monkeypatch.setattr(lottery, "MIN_STREAM_WIDTH", 40)
    monkeypatch.setattr(lottery, "STREAM_NEURONS_PER_DIM", 0, raising=False)
    out = tmp_path / "limited.json"
    result = run(
        "gap", "--dim", "2", "--epsilon", "0.25", "--epsilon", "0.00390625", "--seeds", "2", "--weight-only",
        "-o", out, "--plot", tmp_path / "limited.png",
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert (tmp_path / "limited.png").read_bytes()[:4] == b"\x89PNG"  # the figure skips the cells without a width
    lines = result.stdout.splitlines()
    assert lines[0] == "At ε = 2^-8 (d = 2, medians of 2 seeds): the weight-pruning construction does not reach ε within the stream for 2 of 2 seeds."
    assert lines[1].startswith("Seed 0: stream-width-limit: in d = 2 the construction's bound with all 40 neurons of the stream is ")
    assert "> ε = 2^-8" in lines[1] and "a wider stream could reach ε" in lines[1]
    assert "    2^-2     24.5" in lines and "    2^-8        -" in lines
    assert "  ε = 2^-8: seeds 0, 1 (stream-width-limit)" in lines
    assert "2 weight limits re-derived" in result.stdout and "all valid" in result.stdout
    assert "eps=2^-8: weight not reached (stream-width-limit)" in result.stderr
    record = json.loads(out.read_text())  # the finished cells were written
    assert [c["weight"]["width"] for c in record["results"][0]["seeds"]] == [12, 37]
    for cell in record["results"][1]["seeds"]:
        assert cell["weight"]["width"] is None and cell["weight"]["stream_width"] == 40
        assert cell["weight"]["status"].startswith("stream-width-limit: in d = 2")
    checked = run("gap", "--check", out)
    assert checked.exit_code == 0 and checked.stdout.splitlines() == [  # wrapped at its "; " (it was 116 characters)
        "all certificates valid: 2 weight, 0 LP, 0 exact, 2 weight limits re-derived;",
        "                        2 streams regenerated, medians and fits recomputed",
    ]
    cell = record["results"][0]["seeds"][0]  # a reached width hidden behind a limit: a forgery
    cell["weight"] = dict(record["results"][1]["seeds"][0]["weight"])
    record["results"][0]["median"]["weight"] = None
    (tmp_path / "forged.json").write_text(json.dumps(record))
    forged = run("gap", "--check", tmp_path / "forged.json")
    assert forged.exit_code == 1 and "but the construction reaches ε with the stream's 40 neurons" in forged.stdout


def test_the_items_per_class_limit_is_named():
    """`--dim 1 --epsilon 1e-15` blamed "4096 neurons"; the limit is 40 items per (coordinate, sign) class."""
    result = run("gap", "--dim", "1", "--epsilon", "1e-15", "--epsilon", "0.25", "--seeds", "1", "--weight-only", "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    record = json.loads(result.stdout)
    limited, reached = record["results"]  # in the order given
    assert reached["seeds"][0]["weight"]["width"] >= 1
    status = limited["seeds"][0]["weight"]["status"]
    assert status.startswith("items-per-class-limit: in d = 1 the construction takes at most 40 neurons per (coordinate, sign) class")
    assert "> ε = 1e-15; a wider stream would not help" in status
    assert record["check"]["weight_limit"] == 1 and record["check"]["problems"] == []


def test_epsilon_is_shown_exactly():
    """0.9999999 was shown as "ε = 1" and the progress line as "eps=2^-1.44e-07"."""
    result = run("gap", "--dim", "2", "--epsilon", "0.9999999", "--seeds", "1", "--milp-time-limit", "0")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stdout.startswith("At ε = 0.9999999 (d = 2, median of 1 seed):")
    assert "\n0.9999999 " in "\n" + "\n".join(line.strip() for line in result.stdout.splitlines())  # the table's row
    assert "d=2 seed=0 eps=0.9999999: weight" in result.stderr


def test_help_states_the_dimension_the_stream_reaches():
    result = run("gap", "--help")
    text = " ".join(result.stdout.split())
    assert f"1 <= d <= {lottery.MAX_DIM}" in text
    assert f"max({lottery.MIN_STREAM_WIDTH}, {lottery.STREAM_NEURONS_PER_DIM} d) neurons" in text


def test_a_record_with_no_width_gets_its_figure(tmp_path):
    """`--dim 1 --epsilon 1e-15 --weight-only --plot` ended in a traceback ("Data cannot be log-scaled") after -o was written."""
    out, plot = tmp_path / "w15.json", tmp_path / "w15.png"
    result = run("gap", "--dim", "1", "--epsilon", "1e-15", "--seeds", "1", "--weight-only", "--plot", plot, "-o", out)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(out.read_text())["results"][0]["seeds"][0]["weight"]["status"].startswith("items-per-class-limit")


def test_a_failed_figure_leaves_no_record(monkeypatch, tmp_path):
    """-o was written before the figure failed: a failed run left half its outputs. They are one set now."""
    def broken(record):
        raise lottery.PruningLimitsError("the figure failed")

    monkeypatch.setattr(lottery, "gap_figure", broken)
    args = ["gap", "--dim", "1", "--epsilon", "0.25", "--seeds", "1", "--weight-only", "--plot", tmp_path / "f.png"]
    result = run(*args, "-o", tmp_path / "new.json")
    assert result.exit_code == 1 and "the figure failed" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither file, no leftover copy
    (tmp_path / "old.json").write_text("the earlier record\n")
    result = run(*args, "-o", tmp_path / "old.json")
    assert result.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]
    assert (tmp_path / "old.json").read_text() == "the earlier record\n"  # put back, not the new run's record
