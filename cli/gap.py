"""``pruning-limit gap``: the neuron-vs-weight pruning gap with certificates (docs/gap.md)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import click

from ._common import Console, all_or_none, check_output_path, common_options, json_option, plot_option, refuse_launcher

#: Most streams ``--seeds`` takes: each runs the whole ε ladder (seconds to minutes), and the
#: seed list was built before any check (memory without bound for ``--seeds 10**11``).
MAX_SEEDS = 10_000


def _eps_text(eps: float) -> str:
    """ε exactly: ``2^-k`` for a power of two, else the shortest decimal (``lottery.epsilon_text``)."""
    from pruning_limits.lottery import epsilon_text

    return epsilon_text(eps)


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _unreached(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The cells of one ε whose weight entry has no width but a status (model R: ε not reached within the stream)."""
    return [c for c in result["seeds"] if c["weight"].get("width") is None and c["weight"].get("status")]


def _summary(record: dict[str, Any], check: dict[str, Any]) -> list[str]:
    """Lines a person reads: the answer first (smallest ε), then the table, the fits and the checks."""
    R = record["model"] == "R"
    neuron = any("neuron" in c for r in record["results"] for c in r["seeds"])
    exact = neuron and record["dim"] <= 2  # the MILP runs only where the exact sup error exists
    last = min(record["results"], key=lambda r: r["epsilon"])
    med = last["median"]
    seeds = len(record["seeds"])
    lines = []
    eps = _eps_text(last["epsilon"])
    where = f"At ε = {eps} (d = {record['dim']}, {'median' if seeds == 1 else 'medians'} of {seeds} seed{'s' * (seeds != 1)})"
    unreached = _unreached(last) if R else []
    if unreached:  # no weight median: say why, not "<= -"
        head = f"{where}: the weight-pruning construction does not reach ε within the stream for {len(unreached)} of {seeds} seed{'s' * (seeds != 1)}"
        if neuron and med.get("neuron_lower_bound") is not None:
            head += f"; neuron pruning needs ≥ {_num(med['neuron_lower_bound'])} neurons"
        lines.append(head + ".")
        lines.append(f"Seed {unreached[0]['seed']}: {unreached[0]['weight']['status']}.")
    elif R and neuron and med.get("neuron_lower_bound") is not None and med.get("weight") is not None:
        lines.append(  # "neuron"/"weight" pruning, as the table's columns (within 88 characters)
            f"{where}: neuron needs ≥ {_num(med['neuron_lower_bound'])} neurons, weight ≤ {_num(med['weight'])}."
        )
        above = med["neuron_lower_bound"] > med["weight"]
        lines.append(
            "The certified neuron bound is above the weight width: the gap is certified."
            if above
            else "The certified neuron bound is not above the weight width at this ε."
        )
    elif R:
        lines.append(f"{where}: weight needs ≤ {_num(med['weight'])} neurons.")
    else:
        lines.append(
            f"Model L. {where}: weight needs ≥ {_num(med['weight'])} neurons"
            + (f", neuron ≥ {_num(med.get('neuron_lower_bound'))}." if neuron else ".")
        )
        lines.append("Both are certified LP lower bounds." if neuron else "It is a certified LP lower bound.")
    wname = "weight≤" if R else "weight≥"
    head = f"{'ε':>8} {wname:>8}" + (f" {'neuron≥':>9}" if neuron else "") + (f" {'exact':>6}" if exact else "")
    head += f" {'ratio':>6}" if neuron else ""
    lines += ["", head]
    for r in sorted(record["results"], key=lambda r: -r["epsilon"]):
        m = r["median"]
        row = f"{_eps_text(r['epsilon']):>8} {_num(m['weight']):>8}"
        if neuron:
            row += f" {_num(m.get('neuron_lower_bound')):>9}"
        if exact:
            row += f" {_num(m.get('neuron_exact')):>6}"
        if neuron:
            ratio = m.get("ratio")
            row += f" {('-' if ratio is None else f'{ratio:.2f}'):>6}"
        lines.append(row)
    missing = [(r, _unreached(r)) for r in sorted(record["results"], key=lambda r: -r["epsilon"])] if R else []
    missing = [(r, cells) for r, cells in missing if cells]
    if missing:
        total = sum(len(cells) for _, cells in missing)
        lines.append(
            f"weight '-': in {total} (ε, seed) cell{'s' * (total != 1)} the construction does not reach ε within the "
            "stream; the record gives each its status (the limit: stream width or items per class) instead of a width:"
        )
        for r, cells in missing:
            kinds = sorted({c["weight"]["status"].split(":")[0] for c in cells})
            lines.append(
                f"  ε = {_eps_text(r['epsilon'])}: seed{'s' * (len(cells) != 1)} {', '.join(str(c['seed']) for c in cells)} "
                f"({', '.join(kinds)})"
            )
    fits = record["fits"]
    lines.append("")
    if fits.get("weight"):
        f = fits["weight"]
        lines.append(
            f"weight: {f['slope_per_halving']:.2f} neurons per halving of ε (R² {f['r2']:.3f}, {f['points']} points)"
            + ("" if R else ", fitted to lower bounds")
        )
    if fits.get("neuron"):
        f = fits["neuron"]
        lines.append(f"neuron: lower bound ~ (1/ε)^{f['exponent']:.2f} (R² {f['r2']:.3f}, {f['points']} points)")
    from pruning_limits.report import hang, plural  # not at import: --help imports neither numpy nor torch

    limits = check.get("weight_limit", 0)
    lines += hang(
        "re-checked: ",
        f"{check['weight']} weight, {check['neuron']} LP, {check['exact']} exact certificates, "
        + (f"{plural(limits, 'weight limit')} re-derived, " if limits else "")
        + f"{plural(check['streams'], 'stream')}, medians and fits: "
        + ("all valid." if not check["problems"] else f"{len(check['problems'])} FAILED; {check['problems'][0]}"),
    )
    if exact:
        lines.append("exact: median MILP minimum, a verified subset; that one neuron fewer fails is")
        lines.append("the MILP solver's verdict. '-': some seed's MILP was not run or did not finish.")
    lines.append(f"{record['seconds']:.0f} s. The bounds are certified; --json carries the certificates.")
    return lines


@click.command("gap")
@click.option(
    "--dim",
    type=int,
    default=None,
    help="Input dimension 1 <= d <= 128 (required unless --check; model L: d <= 4). The stream holds max(4096, 128 d) neurons; "
    "an ε the weight construction does not reach within it is reported per cell, with its limit.",
)
@click.option(
    "--epsilon",
    "epsilons",
    type=float,
    multiple=True,
    help="Tolerance, 0 < ε <= 1 - 1e-8, repeatable (default: the halving ladder 2^-2 ... 2^-12; 2^-2 ... 2^-8 for --model L).",
)
@click.option("--seeds", type=int, default=5, show_default=True, help="Number of streams (seeds 0 .. K-1); medians over them.")
@click.option(
    "--model",
    type=click.Choice(["R", "L"]),
    default="R",
    show_default=True,
    help="R: output ReLU. L: linear output, the control (weight pruning gets an LP lower bound).",
)
@click.option("--weight-only", is_flag=True, help="Skip neuron pruning (e.g. d = 8, where the LPs are large).")
@click.option(
    "--milp-max-width",
    type=int,
    default=48,
    show_default=True,
    help="Run the exact MILP (d <= 2) when the LP bound is at most this width.",
)
@click.option(
    "--milp-time-limit",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds for all MILP solves of one (ε, seed); a time-out is reported, not guessed. 0: do not run the MILP.",
)
@click.option(
    "--check",
    "check_path",
    type=click.Path(),
    default=None,
    help="Re-check every certificate of a saved --json record instead of running.",
)
# readable=False: an output need not be readable (click refused a write-only file in three lines)
@click.option("-o", "--output", type=click.Path(readable=False), default=None, help="Also write the JSON record to this file.")
@json_option
@plot_option
@common_options
def gap_command(
    dim: int | None,
    epsilons: tuple[float, ...],
    seeds: int,
    model: str,
    weight_only: bool,
    milp_max_width: int,
    milp_time_limit: float,
    check_path: str | None,
    output: str | None,
    as_json: bool,
    plot_path: str | None,
    console: Console,
) -> None:
    """Weight vs neuron pruning of a random ReLU network to one ReLU neuron, certified (docs/gap.md).

    For each ε and seed: the width weight pruning needs (certified upper bound: a subset-sum
    construction whose masks are checked), and the width neuron pruning needs (certified lower
    bound: an infeasible LP relaxation with its Farkas certificate; the exact MILP minimum in
    d <= 2 where it finishes). Medians over seeds, fits, a figure; progress on stderr.
    """
    refuse_launcher("gap")
    from pruning_limits import lottery
    from pruning_limits._checks import PruningLimitsError

    started = time.monotonic()
    if check_path is not None:
        context = click.get_current_context()
        run_options = ("dim", "epsilons", "seeds", "model", "weight_only", "milp_max_width", "milp_time_limit", "output", "plot_path")
        given = [param.opts[-1] for param in context.command.params if param.name in run_options
                 and context.get_parameter_source(param.name) is not click.core.ParameterSource.DEFAULT]
        if given:  # a check runs nothing and writes nothing: the run's options would be ignored silently
            raise click.UsageError(f"--check re-checks a saved record and takes no run options, got {', '.join(given)}")
        try:
            with open(check_path, encoding="utf-8") as handle:
                record = json.load(handle)
        except json.JSONDecodeError as exc:  # its message, not the whole of it (one short line)
            raise PruningLimitsError(f"{check_path!r} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
        except UnicodeDecodeError:  # a binary file: the codec's byte and position said nothing useful
            raise PruningLimitsError(f"{check_path!r} is not JSON: not UTF-8 text (gap --json -o FILE writes a record)") from None
        check = lottery.check_gap_record(record)
        if as_json:
            console.result(json.dumps(check, indent=2))
        else:
            from pruning_limits.report import hang, plural

            limits = check.get("weight_limit", 0)
            console.result("\n".join(hang(
                f"{'all certificates valid' if not check['problems'] else 'INVALID certificates'}: ",
                f"{check['weight']} weight, {check['neuron']} LP, {check['exact']} exact"
                + (f", {plural(limits, 'weight limit')} re-derived" if limits else "")
                + f"; {plural(check['streams'], 'stream')} regenerated, medians and fits recomputed",
            )))
            for problem in check["problems"]:
                console.result(f"  {problem}")
        if check["problems"]:
            raise PruningLimitsError(f"{len(check['problems'])} certificate(s) failed the check")
        return
    if dim is None:
        raise click.UsageError("--dim is required (or --check FILE)")
    if dim < 1:
        raise PruningLimitsError(f"--dim must be an integer >= 1, got {dim}")
    if dim > lottery.MAX_DIM:  # the library's own check says "dim", not the flag
        raise PruningLimitsError(f"--dim must be at most {lottery.MAX_DIM} (the stream and record grow like d^2), got {dim}")
    if model == "L" and dim > lottery.MODEL_L_MAX_DIM:
        raise PruningLimitsError(
            f"--dim must be at most {lottery.MODEL_L_MAX_DIM} with --model L (its LP covers the 2^d - 1 masks of every neuron), got {dim}"
        )
    if not 1 <= seeds <= MAX_SEEDS:
        raise PruningLimitsError(f"--seeds must be an integer from 1 to {MAX_SEEDS} (each stream runs the whole ladder), got {seeds}")
    if milp_max_width < 0:
        raise PruningLimitsError(f"--milp-max-width must be >= 0, got {milp_max_width}")
    if not (milp_time_limit >= 0 and math.isfinite(milp_time_limit)):
        raise PruningLimitsError(f"--milp-time-limit must be a number of seconds >= 0, got {milp_time_limit!r}")
    eps_list = list(epsilons) or list(lottery.DEFAULT_EPSILONS if model == "R" else lottery.DEFAULT_EPSILONS_L)
    for eps in eps_list:
        if not (0 < eps <= lottery.MAX_EPSILON):  # lottery.check_epsilon's range, said with the flag
            raise PruningLimitsError(f"--epsilon must satisfy {lottery.EPSILON_RANGE} (float64 decides beyond), got {eps!r}")
    repeated = next((eps for k, eps in enumerate(eps_list) if eps in eps_list[:k]), None)
    if repeated is not None:  # a repeated row would count twice in the fits
        raise PruningLimitsError(f"--epsilon values must be distinct (a repeated ε counts twice in the fits), got {repeated!r} more than once")
    check_output_path(plot_path, figure=True)
    check_output_path(output, outputs={"--plot": plot_path})

    record = lottery.gap_experiment(
        dim,
        eps_list,
        range(seeds),
        model,
        neuron=not weight_only,
        milp_max_width=milp_max_width,
        milp_time_limit=milp_time_limit,
        progress=console.log,
    )
    check = lottery.check_gap_record(record)
    record["check"] = check
    record["seconds"] = time.monotonic() - started
    if check["problems"]:  # never present an unchecked number as certified
        raise PruningLimitsError(f"certificate check failed: {check['problems'][0]}")
    from pruning_limits.report import dumps_json

    text = dumps_json(record, indent=None)
    with all_or_none(plot_path, None, *([output] if output else [])):  # a failed figure leaves no record behind
        if output is not None:
            from pruning_limits.checkpoint import atomic_write

            atomic_write(output, text + "\n")
        if plot_path is not None:
            from pruning_limits.report import save_figure

            save_figure(lottery.gap_figure(record), plot_path)
            console.log(f"figure: {plot_path}")
    if as_json:
        console.result(text)
    else:
        for line in _summary(record, check):
            console.result(line)
