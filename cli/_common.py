"""Options, error handling and checkpoint loading shared by the commands.

Nothing here imports torch, numpy or the library at module level: ``pruning-limit --help``
must stay fast. Commands import what they need inside their bodies.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from pruning_limits._checks import Terminated, message_line  # torch-free; re-exported for the commands and tests

F = TypeVar("F", bound=Callable[..., Any])

#: Exit code of an error explained in one line (click uses 2 for usage errors).
EXIT_ERROR = 1

#: The largest ``--memory-budget``, in GiB (1 PiB): far above any machine, and a byte count an
#: int holds (``1e300`` overflowed to infinity on the way to bytes, a traceback; a review).
MAX_MEMORY_BUDGET_GIB = 2**20

#: Options of stochastic Lanczos quadrature that the dense spectrum of ``--exact`` has no use for.
SLQ_ONLY_OPTIONS = ("--iterations", "--probes", "--tolerance")


@dataclass(frozen=True)
class Console:
    """Where messages go: results on stdout, logs and progress bars on stderr."""

    verbose: int = 0
    quiet: bool = False
    debug: bool = False
    main: bool = True  # False on every rank but 0 under torchrun: they print nothing

    @property
    def progress(self) -> bool:
        """Show tqdm bars: on a terminal unless ``-q``, always with ``-v``."""
        if self.quiet:
            return False
        return self.verbose > 0 or sys.stderr.isatty()

    def log(self, message: str, level: int = 0) -> None:
        """Print ``message`` on stderr unless ``-q`` (``level`` 1 needs ``-v``)."""
        if not self.quiet and self.verbose >= level:
            click.echo(message, err=True)

    def result(self, text: str) -> None:
        """Print a result on stdout (rank 0 only under torchrun)."""
        if self.main:
            click.echo(text)


#: ``-v``'s help; on predict, validate and demo it also prints a detail table after the answer
#: (``report.prediction_rows``, ``validation_rows``, validate's ``structures_rows``; not after
#: predict's table of several ε), which the help said nothing of (a review).
VERBOSE_HELP = "More messages on stderr (repeatable)."
VERBOSE_DETAIL_HELP = (
    "More messages on stderr (repeatable); also the detail table after the answer on stdout, where it has one (not with --json)."
)


def common_options(func: F | None = None, *, detail: bool = False) -> Any:
    """Add ``-v/--verbose``, ``-q/--quiet`` and ``--debug`` and turn errors into one line.

    Used as ``@common_options``, or ``@common_options(detail=True)`` on a command whose ``-v``
    also prints its detail table on stdout (its help says so). The wrapped command receives a
    :class:`Console` as ``console``. A
    :class:`~pruning_limits.PruningLimitsError`, ``OSError`` or ``RuntimeError`` becomes
    ``Error: <first line>`` on stderr and exit code 1; ``--debug`` shows the traceback instead.
    Python warnings become one ``warning: ...`` line through the console, so ``-q`` silences
    them too.
    """
    if func is None:
        return functools.partial(common_options, detail=detail)
    command = func

    @click.option("-v", "--verbose", count=True, help=VERBOSE_DETAIL_HELP if detail else VERBOSE_HELP)
    @click.option("-q", "--quiet", is_flag=True, help="No messages, warnings or progress bars on stderr.")
    @click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
    @functools.wraps(command)
    def wrapper(*args: Any, verbose: int, quiet: bool, debug: bool, **kwargs: Any) -> Any:
        main = _rank() == 0  # under torchrun only rank 0 prints (pruning_limits.distributed)
        console = Console(verbose=verbose, quiet=quiet or not main, debug=debug, main=main)
        with warnings.catch_warnings(), _sigterm_unwinds(), _quiet_transformers(console.quiet):
            if not debug:  # --debug keeps Python's form, with the category and the source line
                warnings.showwarning = functools.partial(_show_warning, console)
            return _run(command, args, kwargs, console, debug)

    return wrapper


@contextlib.contextmanager
def _quiet_transformers(quiet: bool) -> Iterator[None]:
    """Under ``-q``, transformers' own log lines off for the command, and as they were afterwards
    (the CLI can run inside another process): its verbosity set to errors if it is loaded, else
    ``TRANSFORMERS_VERBOSITY=error`` for its first import (unless the user set it), then its
    default again. (``save_huggingface`` writes without transformers' progress bar.)"""
    if not quiet:
        yield
        return
    log = sys.modules.get("transformers.utils.logging")
    before = log.get_verbosity() if log is not None else None
    added = "TRANSFORMERS_VERBOSITY" not in os.environ
    if added:
        os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    if log is not None:
        log.set_verbosity_error()
    try:
        yield
    finally:
        if added:
            os.environ.pop("TRANSFORMERS_VERBOSITY", None)
        log = sys.modules.get("transformers.utils.logging")
        if log is not None:  # loaded before: its level; loaded during the command: its default
            log.set_verbosity(before if before is not None else getattr(log, "_get_default_logging_level", lambda: 30)())


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` and Ctrl-C into ``KeyboardInterrupt`` while a command
    runs (main thread only), each recorded in ``_checks.StopRequest`` so that a library fallback
    that catches it as another error re-raises it; then restore the handlers."""
    import signal
    import threading

    from pruning_limits._checks import StopRequest

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        stop = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        StopRequest.pending = stop
        raise stop

    wanted = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is signal.default_int_handler else [])
    previous = {signum: signal.signal(signum, handler) for signum in wanted}  # an ignored Ctrl-C stays ignored
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        StopRequest.pending = None


def refuse_launcher(command: str) -> None:
    """One line, exit 1, when ``command`` (one that runs in one process) is started by torchrun."""
    if _world_size() > 1:
        from pruning_limits._checks import PruningLimitsError

        raise PruningLimitsError(
            f"{command} runs in one process, got WORLD_SIZE={_world_size()} from a launcher "
            "(torchrun runs predict, spectrum and validate)"
        )


def _rank() -> int:
    """This process's rank under torchrun (the RANK variable with WORLD_SIZE > 1), 0 otherwise.

    A RANK left in the environment of a single process (WORLD_SIZE unset or 1) silenced every
    command: no output, exit 0 (a review's repro)."""
    import os

    if _world_size() <= 1:
        return 0
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_main_process() -> bool:
    """False on the ranks other than 0 under torchrun: they neither print nor write."""
    return _rank() == 0


def _show_warning(console: Console, message: Warning | str, *_: Any, **__: Any) -> None:
    console.log(f"warning: {_one_line(message) if isinstance(message, Warning) else message}")


def _run(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], console: Console, debug: bool) -> Any:
    """Call a command; errors become one line on stderr and exit code 1 (see :func:`common_options`).

    A SIGTERM that arrives while an error is being reported (torchrun stopping this rank because
    another exited first with the same error) ends the process quietly, exit 143.
    """
    try:
        return _run_classified(func, args, kwargs, console, debug)
    except Terminated:
        sys.exit(143)


def _run_classified(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], console: Console, debug: bool) -> Any:
    try:
        if "seed" in kwargs:  # every command's --seed, checked as lomp.train checks its seed
            from pruning_limits._checks import check_seed

            kwargs["seed"] = check_seed("--seed", kwargs["seed"])
        return func(*args, console=console, **kwargs)
    except click.exceptions.Exit:
        raise
    except click.ClickException:
        raise
    except KeyboardInterrupt:
        _exit_interrupted(console)
    except Terminated:
        _exit_terminated(console)
    except Exception as exc:  # noqa: BLE001 - classified just below
        from pruning_limits._checks import PruningLimitsError, interrupt_in

        cause = interrupt_in(exc)  # e.g. Python wraps an error of __set_name__ (a matplotlib import) in a RuntimeError
        if isinstance(cause, KeyboardInterrupt):
            _exit_interrupted(console)
        if isinstance(cause, Terminated):
            _exit_terminated(console)
        if debug:
            traceback.print_exc()
            sys.exit(EXIT_ERROR)
        if not isinstance(exc, (PruningLimitsError, OSError, RuntimeError, MemoryError)):
            raise
        text = f"{'out of memory: ' if isinstance(exc, MemoryError) else ''}{_one_line(exc)}"
        ranked = text if text.startswith("rank ") else f"rank {_rank()}: {text}"
        if console.main:  # under a launcher an error that may be rank 0's alone names it, as the others' do
            click.echo(f"Error: {ranked if _world_size() > 1 and _local_to_rank(exc) else text}", err=True)
        elif _local_to_rank(exc):
            click.echo(f"Error: {ranked}", err=True)
        else:  # rank 0 says an error every rank meets: let it exit first, as torchrun stops every rank once one has failed
            _wait_for_rank_0()
            click.echo(f"Error: {ranked}", err=True)  # rank 0 did not stop: this rank alone met it (its data, its shard)
        sys.exit(EXIT_ERROR)


#: Seconds a rank other than 0 waits before it exits on an error that rank 0 reports. torchrun
#: sends SIGTERM to every rank once one has exited with an error: a rank that exited at once
#: could stop rank 0 before its one line was printed (1 of 4 runs of a refused `prune` under
#: torchrun printed no error at all, 2026-12-06). Rank 0 ends the wait when it exits; a rank whose
#: wait runs out says the error itself (``Error: rank N: ...``): rank 0 did not meet it (data
#: damaged on one rank, a check on one shard), where before nothing at all was printed (a review).
RANK_ERROR_GRACE_SECONDS = 10.0


def _wait_for_rank_0() -> None:
    """Sleep up to :data:`RANK_ERROR_GRACE_SECONDS` (torchrun's SIGTERM, sent once rank 0 has exited,
    ends it: :class:`Terminated`); returning means rank 0 has not stopped within the grace."""
    import time

    time.sleep(RANK_ERROR_GRACE_SECONDS)


def _exit_interrupted(console: Console) -> None:
    if console.main:  # under torchrun every rank is interrupted: rank 0 says so
        click.echo("Error: interrupted", err=True)
    sys.exit(130)


def _exit_terminated(console: Console) -> None:
    if console.main:
        launched = _world_size() > 1
        click.echo(f"Error: {'rank 0: ' if launched else ''}stopped by SIGTERM"
                   + (" (torchrun stops every process when one fails, or when it is stopped)" if launched else ""), err=True)
    sys.exit(143)


def _local_to_rank(exc: BaseException) -> bool:
    """Whether an error may be this rank's alone (a lost peer, memory, a device): printed by every rank that meets it.

    The library's other errors (:class:`~pruning_limits.PruningLimitsError`: inputs, settings,
    data) mostly come from what every rank reads alike, so rank 0's line says them once, and a
    rank other than 0 says one only once its grace has passed without rank 0 stopping
    (:func:`_wait_for_rank_0`: damaged data on one rank, a check on one shard); a failure of
    the user's own code (``_checks.UserCodeError``: a data function that fails on rank 1 alone
    left no line at all, a review's repro) is said by every rank that meets it.
    """
    from pruning_limits._checks import PruningLimitsError, UserCodeError

    # a ProcessGroupError exists only once pruning_limits.distributed is imported; importing it
    # here (torch) would hold this rank in its error path while torchrun stops it
    distributed = sys.modules.get("pruning_limits.distributed")
    lost_peer = distributed is not None and isinstance(exc, distributed.ProcessGroupError)
    return lost_peer or isinstance(exc, UserCodeError) or not isinstance(exc, PruningLimitsError)


def _world_size() -> int:
    import os

    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename!r}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return message_line(exc)


def seed_option(func: F) -> F:
    return click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(func)


def plot_option(func: F) -> F:
    # readable=False: an output need not be readable (click refused a write-only file in three lines)
    return click.option(
        "--plot", "plot_path", type=click.Path(readable=False), default=None, help="Write a figure (.png, .pdf or .svg)."
    )(func)


def exact_option(func: F) -> F:
    return click.option(
        "--exact", is_flag=True, help="Dense float64 Hessian and eigvalsh instead of SLQ (D <= 10 000)."
    )(func)


def _device_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A usage error (exit 2) for a name that is no device, as ``--dtype``'s choices give; whether
    the machine has that device is checked when the command runs (exit 1)."""
    from pruning_limits._checks import is_device_name  # torch-free: this runs while click parses

    if is_device_name(value):
        return value
    raise click.BadParameter(f"expected auto, cpu, cuda or cuda:INDEX, got {value!r}")


def device_option(func: F) -> F:
    """``--device auto|cpu|cuda[:i]``: where the command computes (pruning_limits.devices)."""
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        callback=_device_name,
        help="Where to compute: auto (CUDA when available), cpu, cuda or cuda:INDEX.",
    )(func)


def spectrum_options(func: F) -> F:
    """``--iterations``, ``--probes``, ``--memory-budget``, ``--tolerance``, ``--hessian-samples``,
    ``--device`` and ``--dtype`` of stochastic Lanczos quadrature."""
    func = click.option(
        "--dtype",
        "analysis_dtype",
        type=click.Choice(["auto", "float64", "float32"]),
        default="auto",
        show_default=True,
        help="Dtype of the Hessian-vector products: auto is float64 on the CPU for models of at most 100 000 "
        "parameters, float32 above that and on CUDA; the Lanczos recurrence is float64 either way, its stored "
        "basis float32 for float32 products (docs/usage.md, 'Large models').",
    )(func)
    func = device_option(func)
    func = click.option(
        "--hessian-samples",
        type=int,
        default=None,
        metavar="N",
        help="Hessian over a seeded random subset of N training samples (default: all); epsilon and the "
        "gradient term stay on all of them. Warns when N x (classes - 1), for regression N x outputs, is too "
        "small for D (rank hazard).",
    )(func)
    func = click.option(
        "--tolerance",
        type=float,
        default=None,
        metavar="POINTS",
        help="Stop SLQ once s* has settled to this many points of sparsity (default 0.2 points: "
        "adaptive.DEFAULT_TOLERANCE = 0.002 as a fraction). Without it, --iterations fixes the step count.",
    )(func)
    func = click.option(
        "--memory-budget",
        type=float,
        default=None,
        metavar="GIB",
        help="GiB that the Hessian engine's caches and, apart, the Lanczos arrays are each held to (default 1; "
        "together up to about twice it, beside the model and data). The block Gauss rule is fully "
        "re-orthogonalised when its basis, projected matrix and working blocks fit, else it runs in O(probes x D) memory "
        "without; the default grows to that minimum, an explicit budget below it is an error (docs/usage.md, "
        "'Large models').",
    )(func)
    func = click.option(
        "--probes",
        type=int,
        default=None,
        help="SLQ probe vectors, >= 1. Default of an adaptive run: 8 up to D = 22 857, fewer above, 2 from "
        "D = 80 000 (spectrum.default_probes); of a fixed run (--iterations alone): 8.",
    )(func)
    return click.option(
        "--iterations",
        type=int,
        default=None,
        help="Lanczos steps per probe, >= 2. Alone: exactly this many (a fixed run); with --tolerance, or not "
        "given, the most an adaptive run may take (default: spectrum.DEFAULT_ITERATIONS, 300).",
    )(func)


def structure_option(*, allow_all: bool = False) -> Callable[[F], F]:
    """``--structure S``: the allowed supports (``pruning_limits.structures``); ``all`` when allowed."""
    extra = " or 'all' (every structure side by side, one spectrum)" if allow_all else ""
    return click.option(
        "--structure",
        default="unstructured",
        show_default=True,
        metavar="S",
        help="Allowed supports: unstructured (global magnitude), layerwise, neuron (rows, dim 0, of 2-D weights: "
        "nn.Linear, attention in-projections, any 2-D tensor chosen with --params), channel (those rows and the "
        "dim-0 slices of tensors with 3+ dims: a convolution's output channels; transposed convolutions stay dense) "
        f"or N:M, e.g. 2:4 (at most N non-zeros in every M inputs){extra}. "
        "neuron/channel keep the output layer's rows unless given as neuron+outputs/channel+outputs; "
        "N:M+cl takes runs of input channels at each kernel position (the sparse tensor core layout).",
    )


def check_structure(structure: str, model: Any = None, *, allow_all: bool = False) -> Any:
    """Parse ``--structure`` (one line naming what is expected) and, given a model, check it applies.

    Returns the parsed ``Structure``, or ``None`` for ``all``.

    Raises:
        PruningLimitsError: an unknown structure, ``all`` where it is not allowed (only
            ``validate`` takes it), or a structure that applies to no layer of ``model``.
    """
    from pruning_limits._checks import PruningLimitsError
    from pruning_limits.structures import EXPECTED, model_order, parse_structure

    if structure.strip().lower() == "all":
        if allow_all:
            return None
        raise PruningLimitsError(
            f"structure must be {EXPECTED}, got {structure.strip()!r} (every structure side by side is for validate only)"
        )
    parsed = parse_structure(structure)
    if model is not None:
        model_order(model, parsed)
    return parsed


def given_spec(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A usage error for an empty ``--model``/``--data`` (it stood for the default silently)."""
    if value is not None and not value.strip():
        raise click.BadParameter(f"expected a spec, got {value!r}")
    return value


def given_folder(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A usage error for an empty or blank folder name (``demo --out ''`` wrote into the current
    folder, over a model.pt there; a review)."""
    if value is not None and not value.strip():
        raise click.BadParameter(f"expected a folder name, got {value!r}")
    return value


def source_options(func: F) -> F:
    """``--model``, ``--data`` and ``--trust-checkpoint`` for commands that read a checkpoint."""
    func = click.option(
        "--trust-checkpoint",
        is_flag=True,
        help="Allow a full pickled model, a TorchScript archive, or a checkpoint that names its own model or data "
        "function. Each runs code the file chooses: only for files you trust.",
    )(func)
    func = click.option(
        "--data", "data_spec", default=None, callback=given_spec, help="Data spec (default: the one the checkpoint names: a bundle, or what train wrote). A FILE.npz "
        "without x_test/y_test holds out 20 % of its samples as test (not stratified), drawn with the seed train "
        "recorded for its own data, else --seed."
    )(func)
    func = params_option(func)
    return click.option(
        "--model",
        "model_spec",
        default=None,
        callback=given_spec,
        help="Model spec for a plain state_dict or .safetensors file (e.g. mlp:256,128, resnet18, "
        "torchvision.models:resnet18(num_classes=10)).",
    )(func)


def params_option(func: F) -> F:
    """``--params``: the weights to analyse and prune, by names and glob patterns."""
    return click.option(
        "--params",
        default=None,
        metavar="PATTERNS",
        help="Weights to analyse and prune: parameter names or glob patterns, comma-separated "
        "(e.g. 'encoder.*weight'; a pattern picks parameters with >= 2 dims), or 'all'. "
        "Default: Linear/conv weights and attention input projections.",
    )(func)


@contextlib.contextmanager
def all_or_none(plot_path: str | None, report_path: str | None, *others: str | os.PathLike[str]) -> Iterator[None]:
    """Write a command's outputs (``--plot``, ``--report`` and its figures, and ``others``) as one
    set: an error or a signal while they are written removes those that did not exist before and
    puts back the earlier version of those that did.

    Each file is written atomically already; a stop between them left a plot and a figure
    without their report (a review's SIGTERM under torchrun), or an old report beside the new
    run's figures (a review's Ctrl-C, 2026-12-06). An existing file is copied beside it (a hidden
    ``.NAME.XXXXXXXX.old``) until the set is written: these outputs are small (figures, a report,
    a JSON record, the demo's model). After a failure the copy replaces only a file that was
    written (its inode, size or time changed): one the run never reached keeps its inode, hard
    links and owner (a review, 2026-12-06). A file that cannot be read (an output need not be:
    a write-only one) is kept as a hard link instead (:func:`_keep_copy`)."""
    import uuid
    from pathlib import Path

    from pruning_limits.report import REPORT_FIGURES, report_figure_path

    paths = [Path(p) for p in (plot_path, report_path, *others) if p]
    if report_path:
        paths += [report_figure_path(report_path, name) for name in REPORT_FIGURES]
    paths = list(dict.fromkeys(path.resolve() for path in paths))  # a link's target is what gets replaced
    new = [path for path in paths if not path.exists()]
    kept: dict[Path, tuple[Path, tuple[int, int, int]]] = {}
    try:
        for path in paths:
            if path.is_file():
                backup = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
                _keep_copy(path, backup)
                kept[path] = backup, _signature(path)
        yield
    except BaseException:
        for path, (backup, before) in list(kept.items()):
            if not path.exists() or _signature(path) != before:  # one it never wrote keeps its inode and links
                os.replace(backup, path)
            else:
                backup.unlink(missing_ok=True)
            del kept[path]
        for path in new:
            path.unlink(missing_ok=True)
        raise
    finally:
        for backup, _ in kept.values():
            backup.unlink(missing_ok=True)


def _keep_copy(path: Any, backup: Any) -> None:
    """Copy ``path`` to ``backup`` for :func:`all_or_none`; a file this process cannot read (a
    write-only output: it failed after the whole run with "Permission denied") is hard-linked
    instead, which keeps its content as well, since every output is replaced by a rename
    (``checkpoint.atomic_open``) and never written in place.

    Raises:
        PruningLimitsError: the file can be neither read nor linked, in one line.
    """
    import shutil

    from pruning_limits._checks import PruningLimitsError

    try:
        shutil.copy2(path, backup)
    except PermissionError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(backup)
        try:
            os.link(path, backup)
        except OSError as err:
            raise PruningLimitsError(
                f"cannot replace {str(path)!r}: it is not readable ({exc.strerror}) and cannot be linked "
                f"({err.strerror}), so no copy of it is kept to put back if the command fails"
            ) from None


def _signature(path: Any) -> tuple[int, int, int]:
    """A file's inode, size and modification time: what an atomic write (a rename) or a write in place changes."""
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def check_output_path(
    path: str | None,
    *,
    figure: bool = False,
    inputs: Mapping[str, str | None] | None = None,
    outputs: Mapping[str, str | None] | None = None,
    what: str = "output",
) -> None:
    """Refuse an output path before any work: its folder missing or not writable, a directory, a
    figure with an unknown suffix, or the same file as one of ``inputs`` (name -> path: the
    checkpoint, a data file; a spec that names no file, as ``digits``, is none) or ``outputs``
    (the command's other outputs, compared by name), which writing it would replace. ``what``
    names the output in errors."""
    if path is None:
        return
    from pathlib import Path

    from pruning_limits._checks import PruningLimitsError
    from pruning_limits.checkpoint import is_huggingface_folder, output_target

    target = output_target(path)  # where atomic_open will write: through a symbolic link
    if target.is_dir():
        raise PruningLimitsError(f"{what} {path!r} is a directory, expected a file name")
    if target.exists() and not target.is_file():  # an atomic rename would replace the device or pipe itself
        raise PruningLimitsError(f"{what} {path!r} is not a regular file (a device or a pipe), expected a file name")
    named = [(name, given) for name, given in (inputs or {}).items() if given and Path(given).exists()]
    named += [(name, given) for name, given in (outputs or {}).items() if given]
    for name, given in named:
        if _same_file(target, Path(given)):
            raise PruningLimitsError(f"{what} {path!r} is the {name} file, which writing it would replace: choose another name")
        # a Hugging Face folder's weights; a folder named like a built-in data spec ('digits/') is no input
        if is_huggingface_folder(given) and Path(given).resolve() in target.resolve().parents:
            raise PruningLimitsError(
                f"{what} {path!r} lies inside the {name} folder {given!r}, whose files writing it could replace: "
                "choose a path outside it"
            )
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise PruningLimitsError(f"cannot write {path!r}: directory {str(folder)!r} does not exist")
    _check_writable(folder, path)
    if figure:
        from pruning_limits.report import FIGURE_FORMATS, check_matplotlib

        if Path(path).suffix.lower().lstrip(".") not in FIGURE_FORMATS:
            raise PruningLimitsError(
                f"plot file must end in {', '.join('.' + f for f in FIGURE_FORMATS)}, got {path!r}"
            )
        check_matplotlib()


def _check_writable(folder: Any, path: str) -> None:
    """Create and remove a file in ``folder``, as the atomic write will (``os.access`` misleads root)."""
    import os
    import tempfile

    from pruning_limits._checks import PruningLimitsError

    try:
        fd, probe = tempfile.mkstemp(prefix=".pruning-limit-check.", dir=folder)
    except OSError as exc:
        raise PruningLimitsError(f"cannot write {path!r}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def _same_file(a: Any, b: Any) -> bool:
    """Whether two paths name one file: an existing one under two names, or one name to be written."""
    import os

    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_spectrum_settings(
    iterations: int | None,
    probes: int | None,
    memory_budget: float | None = None,
    *,
    tolerance: float | None = None,
    hessian_samples: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    exact: bool = False,
    exact_replaces_slq: bool | None = None,
) -> dict[str, Any]:
    """Validate the SLQ options and return the settings to pass on.

    ``--memory-budget`` is in GiB (at most :data:`MAX_MEMORY_BUDGET_GIB`), ``--tolerance`` in
    points of sparsity (stored as a fraction). The scale settings (``tolerance``,
    ``hessian_samples``, ``device``, ``dtype``) appear only when given, so the library settings
    stay plain keyword arguments. With ``exact`` (``--exact``: the dense float64 Hessian of all
    samples) a Hessian subset or float32 would be ignored, so they are refused; where the dense
    spectrum replaces SLQ (``exact_replaces_slq``, by default ``exact``: ``validate --exact``
    without ``--structure`` runs SLQ beside it) so are ``--iterations``, ``--probes`` and
    ``--tolerance`` (their defaults are ``None``: a value here was given on the command line).
    """
    from pruning_limits._checks import PruningLimitsError, check_int, check_positive

    if exact_replaces_slq is None:
        exact_replaces_slq = exact
    if exact_replaces_slq:
        given = [name for name, value in zip(SLQ_ONLY_OPTIONS, (iterations, probes, tolerance)) if value is not None]
        if given:
            raise PruningLimitsError(
                f"--exact computes the dense spectrum (eigvalsh) instead of SLQ, got SLQ's {', '.join(given)}: "
                f"drop {'it' if len(given) == 1 else 'them'} or --exact"
            )
    if exact and hessian_samples is not None:
        raise PruningLimitsError("--exact takes the Hessian of all samples, got --hessian-samples: drop one of them")
    if exact and dtype == "float32":
        raise PruningLimitsError("--exact computes the dense Hessian in float64, got --dtype float32: drop one of them")
    if exact and _world_size() > 1:  # before loading anything (validate --exact ran sharded SLQ and the dense one on rank 0)
        raise PruningLimitsError(
            f"--exact computes the dense Hessian in one process, got {_world_size()} processes under torchrun: drop one of them"
        )
    settings: dict[str, Any] = {}
    if iterations is not None:
        settings["iterations"] = check_int("--iterations", iterations, 2)
    if probes is not None:
        settings["probes"] = check_int("--probes", probes, 1)
    if memory_budget is not None:
        if check_positive("--memory-budget", memory_budget) > MAX_MEMORY_BUDGET_GIB:
            raise PruningLimitsError(
                f"--memory-budget is in GiB, at most {MAX_MEMORY_BUDGET_GIB} (1 PiB), got {memory_budget:g}"
            )
        settings["memory_budget"] = max(1, int(memory_budget * 2**30))
    if tolerance is not None:
        if check_positive("--tolerance", tolerance) >= 100:
            raise PruningLimitsError(f"--tolerance is in points of sparsity, below 100 (0.2 by default), got {tolerance:g}")
        settings["tolerance"] = tolerance / 100
    if hessian_samples is not None:
        settings["hessian_samples"] = check_int("--hessian-samples", hessian_samples, 1)
    if device is not None:
        from pruning_limits.devices import resolve_device

        settings["device"] = resolve_device(device)
    if dtype is not None and dtype != "auto":
        settings["dtype"] = dtype
    return settings


def check_hessian_samples(settings: dict[str, Any], data: Any) -> None:
    """``--hessian-samples`` against the training samples, in one line, before any work."""
    samples = settings.get("hessian_samples")
    if samples is None or data is None:
        return
    from pruning_limits._checks import PruningLimitsError
    from pruning_limits.subsets import num_samples

    total = num_samples(data.train)
    if samples > total:
        held = len(data.x_test) if getattr(data, "test_source", None) == "split" and data.x_test is not None else 0
        split = f" ({total + held} in the file, {held} held out as test)" if held else ""
        raise PruningLimitsError(f"--hessian-samples must be at most the {total} training samples{split}, got {samples}")


def parse_epsilon(text: str) -> str | float:
    """``"batch-std"`` or a finite number > 0. A word is a usage error (exit 2, as click's own
    "is not a valid float"); a number out of range an error of the run (exit 1, as the other
    range checks)."""
    from pruning_limits._checks import check_positive

    if text.strip().lower() == "batch-std":
        return "batch-std"
    try:
        value = float(text)
    except ValueError:
        raise click.BadParameter(f"must be 'batch-std' or a number > 0, got {text!r}", param_hint="'--epsilon'") from None
    return check_positive("--epsilon", value)


@dataclass
class Loaded:
    """A model ready for analysis, its data, and where they came from."""

    model: Any
    data: Any
    checkpoint: Any
    model_spec: str | None
    data_spec: str | None
    params: dict[str, Any] | None = None
    data_seed: int | None = None  # the seed the data were loaded with (the bundle's own when the spec is its own)
    own_data: bool = True  # the data are the bundle's own (data.same_data_spec), split with its stored seed


def report_selection(model: Any, console: Console, given: str | None) -> dict[str, Any]:
    """Log which tensors are analysed and pruned; return the record for JSON.

    With ``--params``: one line, and every tensor with ``-v``. The default selection, or the one
    a checkpoint stores (named as such), is logged only with ``-vv`` (JSON records carry it always).
    """
    from pruning_limits.objective import parameter_selection, selection_summary

    summary = selection_summary(model)
    tensors = summary["tensors"]
    stored = None if given else parameter_selection(model)  # a checkpoint's own selection, not the default
    label = (f" (--params {given})" if given else f" (the checkpoint's selection {','.join(stored)})" if stored is not None
             else " (Linear/conv weights and attention projections)")
    console.log(
        f"prunable: {len(tensors)} tensor{'' if len(tensors) == 1 else 's'}, D = {summary['weights']} weights" + label,
        level=0 if given else 2,
    )
    for name, count in tensors.items():
        console.log(f"  {name}: {count}", level=1 if given else 2)
    if not given and stored is None:
        _note_left_out_matrices(model, summary, console)
    return summary


def _note_left_out_matrices(model: Any, summary: dict[str, Any], console: Console) -> None:
    """A note (wrapped by ``report.hang``) when the default selection leaves out most matrix
    weights: layers of other types (a Hugging Face ``Conv1D``, a custom layer) are neither
    analysed nor pruned unless named with ``--params``; embeddings are left out by design
    (docs/usage.md, "Choosing the prunable weights")."""
    from torch import nn

    from pruning_limits.report import hang

    selected = set(summary["tensors"])
    embeddings = {id(m.weight): name for name, m in model.named_modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))}
    for name, param in model.named_parameters(remove_duplicate=False):  # a head tied to the input embedding
        if name in selected and id(param) in embeddings and embeddings[id(param)] + ".weight" != name:
            console.log("\n".join(hang("note: ", f"{name} is tied to the embedding {embeddings[id(param)]}.weight: "
                                                 "pruning it prunes the embedding too")))
    left: dict[str, int] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            continue
        for attr, param in module.named_parameters(recurse=False):
            name = f"{module_name}.{attr}" if module_name else attr
            if param.dim() >= 2 and name.removesuffix("_orig") not in selected:
                left[name] = int(param.numel())
    if sum(left.values()) > summary["weights"]:
        first = next(iter(left))
        owner = type(model.get_submodule(first.rpartition(".")[0]) if "." in first else model).__name__
        console.log("\n".join(hang(  # within LINE_WIDTH: it took 162 characters in tests/test_cli.py
            "note: ", f"the default selection covers {summary['weights']} weights; {sum(left.values())} more sit in "
            f"{len(left)} matrices of other layer types (e.g. {first}, a {owner}): --params names them to analyse them"
        )))


def recorded_l1(loaded: Loaded) -> float | None:
    """The λ a bundle records, or ``None`` when the checkpoint does not say or records no finite
    number (a λ ≤ 0 is returned: ``regime.trust_level`` reads it as trained without l1)."""
    l1 = loaded.checkpoint.training.get("l1") if loaded.checkpoint.training else None
    if not isinstance(l1, (int, float)) or isinstance(l1, bool) or not math.isfinite(l1):
        return None
    return float(l1)


def next_step(loaded: Loaded, path: str) -> tuple[str, str]:
    """The ``train --init`` command that takes this checkpoint into the regime, and why, in words."""
    from pruning_limits.data import same_data_spec
    from pruning_limits.models import calls_user_code

    extra = []
    kind = loaded.checkpoint.kind
    stored_model = loaded.checkpoint.model_spec
    if kind in ("state_dict", "bundle") and loaded.model_spec and (
        loaded.model_spec != stored_model or calls_user_code(stored_model)
    ):
        # a state_dict's --model, one given for a bundle, or a bundle's own model function, which
        # train --init imports and calls only when named (check_stored_spec): named, not trusted
        extra += ["--model", loaded.model_spec.strip()]
    stored = loaded.checkpoint.data_spec
    if loaded.data_spec and (
        not loaded.own_data or (stored and not same_data_spec(loaded.data_spec, stored)) or calls_user_code(stored)
    ):
        # other data, the file a relative stored path (an older bundle's) names from another folder,
        # or a data function the checkpoint names (as its model function above)
        extra += ["--data", loaded.data_spec]
    if kind in ("module", "torchscript"):  # both run code stored in the file
        extra.append("--trust-checkpoint")
    # train --init splits the bundle's own data with its stored seed, other data with --seed (0 unless given)
    stored_seed = (loaded.checkpoint.training or {}).get("data_seed")
    default_seed = stored_seed if loaded.own_data and stored_seed is not None else 0
    if loaded.data_seed is not None and loaded.data_seed != default_seed:
        extra += ["--seed", str(loaded.data_seed)]  # the split this run used, which train --init would redraw
    selection = (loaded.params or {}).get("selection")
    if selection not in (None, "default"):
        extra += ["--params", selection]
    training = loaded.checkpoint.training
    if training and "constant_loss" not in training and loaded.own_data and loaded.data is not None:
        # a bundle written before train recorded them: its last epoch's loss against the same split's constant
        from pruning_limits.data import materialize
        from pruning_limits.lomp import constant_prediction_loss

        training = {**training, "train_loss": training.get("final_loss"),
                    "constant_loss": constant_prediction_loss(materialize(loaded.data.train)[1])}
    return train_next_step(path, training, extra)


def train_next_step(path: str, training: Any = None, extra: list[str] | None = None) -> tuple[str, str]:
    """``(command, reason)``: l1 fine-tune the network at ``path`` (``train --init``) into the regime.

    A network that was itself trained on the λ path (its ``training`` records ``l1_path``) would
    be taken along the same path again; the command then pins a stronger λ read from that path
    (``pruning_limits.regpath.stronger_l1``) and the reason names its cost. One trained at a
    fixed λ gets twice it, the path's spacing (``regpath.stronger_fixed_l1``; below the path's
    first λ, the plain fine-tune), unless that λ left it a constant prediction (``training``'s
    ``train_loss`` against ``constant_loss``, ``lomp.collapsed``): then the plain fine-tune, whose
    λ path starts weaker.
    """
    import shlex
    from pathlib import Path

    from pruning_limits.report import NEXT_REASON

    target = Path(path)
    if target.name in ("", ".", ".."):  # a folder given as '.': name the output after the folder itself
        target = target.resolve()
    words = ["pruning-limit", "train", "--init", path, *(extra or [])]
    reason = NEXT_REASON
    l1_path = (training or {}).get("l1_path")
    fixed = (training or {}).get("l1")
    if l1_path:
        from pruning_limits._checks import PruningLimitsError
        from pruning_limits.regpath import stronger_l1

        try:
            l1, reason = stronger_l1(l1_path)
            words += ["--l1", f"{l1:g}"]
        except PruningLimitsError:  # a damaged path record: the plain fine-tune is still a next step
            pass
    elif isinstance(fixed, (int, float)) and not isinstance(fixed, bool) and fixed > 0:
        from pruning_limits.lomp import collapsed
        from pruning_limits.regpath import stronger_fixed_l1

        losses = [(training or {}).get(key) for key in ("train_loss", "constant_loss")]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in losses) and collapsed(*losses):
            reason = f"λ = {fixed:g} left it a constant prediction: the λ path starts weaker"
        elif (pinned := stronger_fixed_l1(fixed)) is not None:  # λ auto might choose a weaker λ than this one
            words += ["--l1", f"{pinned[0]:g}"]
            reason = pinned[1]
    # a Hugging Face folder is written as a folder again (train --init keeps the format); a file
    # other than .pt keeps its suffix in the name, so that sd.safetensors and sd.pt do not both
    # name sd-l1.pt (the second fine-tune overwrote the first, a review)
    if target.is_dir():
        output = target.with_name(target.name + "-l1")
    elif target.suffix in ("", ".pt"):
        output = target.with_name(target.stem + "-l1.pt")
    else:
        output = target.with_name(f"{target.stem}-{target.suffix[1:]}-l1.pt")
    words += ["-o", str(output)]
    return " ".join(shlex.quote(w) for w in words), reason


def check_exact_fits(model: Any) -> None:
    """Refuse ``--exact`` before any work when D exceeds the dense limit (``spectrum.DEFAULT_MAX_DIM``)."""
    from pruning_limits._checks import PruningLimitsError
    from pruning_limits.objective import prunable_dim
    from pruning_limits.spectrum import DEFAULT_MAX_DIM

    dim = prunable_dim(model)
    if dim > DEFAULT_MAX_DIM:
        raise PruningLimitsError(
            f"--exact needs a dense {dim} x {dim} Hessian, above the limit of D = {DEFAULT_MAX_DIM}: drop --exact"
        )


def load_model_and_data(
    path: str,
    *,
    model_spec: str | None,
    data_spec: str | None,
    trust: bool,
    seed: int,
    console: Console,
    need_data: bool = True,
    exact: bool = False,
    params: str | None = None,
) -> Loaded:
    """Read a checkpoint, load its data, build the model and check that they fit together.

    The data are loaded with the seed recorded in a bundle's training settings (so the
    training/test split is the one the model was trained on), else with ``seed``. With
    ``need_data=False`` the data are loaded only when given or named by the checkpoint. With
    ``exact=True`` a model above the dense-Hessian limit is refused here, before any work.
    ``params`` (``--params``) selects the weights every later step analyses and prunes
    (``pruning_limits.objective.select_parameters``). The checkpoint may be a bundle, a state_dict
    (``.pt`` or ``.safetensors``, with ``--model``), a TorchScript archive (with ``trust``), or a Hugging Face
    model folder (config.json + model.safetensors; needs the ``hf`` extra).

    A stored ``.npz`` path is absolute in what ``train`` writes now; a relative one (an older
    bundle's, as typed at training) is read from the current folder, with a warning when another
    file of that name lies beside the checkpoint, and a ``--data`` naming either file counts as
    the checkpoint's own data (:func:`stored_data_files`). When the checkpoint's own data (no
    ``--data``, or one naming the same data) differ from those ``train`` recorded
    (``pruning_limits.data.bundle_fingerprint``: split sizes, training part), a warning says how;
    a record without the fingerprint (an older bundle) is not compared.
    """
    from pruning_limits._checks import PruningLimitsError
    from pruning_limits.checkpoint import build_from_checkpoint, check_stored_spec, read_checkpoint
    from pruning_limits.data import check_data_fits_model, data_drift, load_data, same_data_spec

    checkpoint = read_checkpoint(path, trust=trust)
    console.log(f"read {checkpoint.kind} checkpoint {path}", level=1)
    stored = checkpoint.data_spec or None
    spec = data_spec or stored
    data = None
    data_seed = None
    own_data = True
    if spec:
        if not data_spec:
            check_stored_spec(checkpoint, spec, "data", trust=trust)
            spec = _stored_data_to_read(path, spec, console, need_data=need_data)
    if spec:
        stored_seed = checkpoint.training.get("data_seed")
        files = stored_data_files(path, stored) if stored else []
        same = not data_spec or (stored is not None and any(same_data_spec(data_spec, s) for s in [stored, *files]))
        data_seed = int(stored_seed if same and stored_seed is not None else seed)
        if stored_seed is not None and data_seed != stored_seed:
            if stored is not None:
                console.log(
                    f"warning: --data is not the {'bundle' if checkpoint.kind == 'bundle' else 'checkpoint'}'s data ({stored!r}): "
                    f"its split is drawn with --seed {seed}, "
                    f"not the training seed {stored_seed}"
                )
            else:  # a TorchScript archive or Hugging Face folder written before its record named its data
                console.log(
                    f"warning: {path!r} records the data seed {stored_seed} of its training but not its data: the split of "
                    f"--data is drawn with --seed {seed}; pass --seed {stored_seed} if they are the data it was trained on"
                )
        data = load_data(spec, seed=data_seed, classes_from="model")  # its head decides: check_data_fits_model
        own_data = same
        drift = data_drift(checkpoint.training.get("data_fingerprint"), data) if same else None  # None: an older record
        if drift is not None:
            console.log(f"warning: the data {spec!r} differ from those the model was trained on ({drift}): they changed "
                        "since training, and the analysis uses them as they are now")
    elif need_data or (checkpoint.kind == "state_dict"):
        # a plain state_dict needs both: say so at once rather than one error after the other
        needs_model = checkpoint.kind == "state_dict" and not (model_spec or checkpoint.model_spec)
        raise PruningLimitsError(
            f"{path!r} is a {checkpoint.kind.replace('_', ' ')} checkpoint without a data spec: "
            "give the data with --data SPEC" + (" and the architecture with --model SPEC" if needs_model else "")
        )
    model = build_from_checkpoint(checkpoint, model_spec=model_spec, data=data, seed=seed, trust=trust)
    if params is not None:
        from pruning_limits.objective import select_parameters

        select_parameters(model, params)
    selection = report_selection(model, console, params)
    if exact:
        check_exact_fits(model)
    if data is not None:
        check_data_fits_model(model, data)
    return Loaded(model, data, checkpoint, model_spec or checkpoint.model_spec, spec, selection, data_seed, own_data)


def data_file(spec: str | None) -> str | None:
    """The file a data spec names (a ``.npz`` path, ``~`` expanded), or ``None`` (a built-in source, a function)."""
    import os

    if spec is None:
        return None
    spec = spec.strip()
    return os.path.expanduser(spec) if spec.lower().endswith(".npz") else None


def absolute_data_spec(spec: str | None) -> str | None:
    """The data spec to store in a checkpoint: a ``.npz`` path made absolute (a relative one named
    another file, or none, when the checkpoint was read from another folder), any other spec as given."""
    import os

    file = data_file(spec)
    return os.path.abspath(file) if file is not None else spec


def stored_data_files(path: str, stored: str) -> list[str]:
    """Where a ``.npz`` path stored in the checkpoint at ``path`` may lie, as absolute paths: a
    relative one from the current folder and from the checkpoint's folder (the path was typed
    relative to the folder ``train`` ran in, which the checkpoint does not record); an absolute one
    there and, under its name, beside the checkpoint (the two moved together); ``[]`` for any other spec."""
    import os

    file = data_file(stored)
    if file is None:
        return []
    if os.path.isabs(file):
        beside = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.basename(file))
        return [file] if os.path.normpath(beside) == os.path.normpath(file) else [file, os.path.normpath(beside)]
    here = os.path.abspath(file)
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), file)
    return [here] if os.path.normpath(beside) == here else [here, os.path.normpath(beside)]


def _stored_data_to_read(path: str, stored: str, console: Console, *, need_data: bool = True) -> str | None:
    """The stored data spec to load: an absolute ``.npz`` path, or the file of its name beside the
    checkpoint when it is gone (the two moved together; with a warning), or a relative one (an older
    bundle's) resolved from the current folder (:func:`stored_data_files`). A missing file names the
    stored spec and ``--data``; where the command can go on without data (``need_data=False``:
    ``prune``), it warns and gives ``None``."""
    import os
    import shlex

    from pruning_limits._checks import PruningLimitsError

    file = data_file(stored)
    if file is None:
        return stored
    if os.path.isabs(file):
        if os.path.exists(file):
            return file
        moved = stored_data_files(path, stored)[1:]
        if moved and os.path.exists(moved[0]):
            console.log(f"warning: {path!r} names the data file {file!r}, which is gone: reading {moved[0]!r}, the file of "
                        "that name beside it (--data names another)")
            return moved[0]
        if not need_data:
            console.log(f"warning: {path!r} names the data file {file!r}, which does not exist: going on without data "
                        "(give --data SPEC to measure the loss)")
            return None
        raise PruningLimitsError(f"{path!r} names the data file {file!r}, which does not exist: give the data with --data SPEC")
    here, *beside = stored_data_files(path, stored)
    other = beside[0] if beside and os.path.exists(beside[0]) else None
    if not os.path.exists(here):
        hint = f" (--data {shlex.quote(os.path.relpath(other))}, the file beside it?)" if other else ""
        raise PruningLimitsError(
            f"{path!r} names the data file {file!r} relative to the folder it was trained in, and there is none in this "
            f"folder: give the data with --data SPEC{hint}"
        )
    if other is not None and not os.path.samefile(here, other):
        console.log(
            f"warning: {path!r} names the data file {file!r} relative to the folder it was trained in: read from this "
            f"folder ({here!r}), not the other {file!r} beside it; --data names the one it was trained on"
        )
    return here
