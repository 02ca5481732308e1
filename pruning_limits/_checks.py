"""Input validation with errors that say what was expected and what came.

Every user-facing check raises :class:`PruningLimitsError` (a ``ValueError``) with a
one-line message; the command line prints that line and exits with code 1.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from numbers import Integral, Real
from typing import Any


class PruningLimitsError(ValueError):
    """A bad input or an impossible request, explained in one line."""


class UserCodeError(PruningLimitsError):
    """A failure of code the user named (a data function, a model factory), in one line.

    Under torchrun such code can fail on one rank alone (a shard file missing on one machine),
    so every rank that meets it says it (``cli._common._local_to_rank``); the library's other
    errors come from what every rank reads alike, and rank 0 alone says them."""


class Terminated(BaseException):
    """SIGTERM arrived (``kill``, or torchrun stopping the other processes when one fails).

    The command line raises it from its signal handler so that the run unwinds as after Ctrl-C:
    a file being written atomically is removed, not left behind as a temporary file."""


class StopRequest:
    """The Ctrl-C or SIGTERM the command line's signal handlers raised, while a command runs.

    Signals are process-wide, and so is this record: the handlers set :attr:`pending` before they
    raise, and :func:`reraise_interrupt` reads it. The TorchScript interpreter (``make_fx``
    tracing, a scripted model's forward) turns an exception raised inside it into a
    ``RuntimeError`` without a chain, often as bare ``"RuntimeError: "``, and a fallback that
    caught it as "cannot trace" swallowed the stop: the run went on and exited 0 (a review's timed
    signals, 2026-12-05). ``None`` outside the command line's handlers."""

    pending: BaseException | None = None


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from or during (``__cause__``, else ``__context__``), once each."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = current.__cause__ or current.__context__


def message_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message, stripped, or its type's name when the message is empty."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def error_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception, or ``Type`` alone when its message is empty."""
    line = message_line(exc)
    return f"{type(exc).__name__}: {line}" if str(exc).strip() else line


def interrupt_in(exc: BaseException) -> BaseException | None:
    """The Ctrl-C or SIGTERM (:class:`Terminated`) an exception came from, if any.

    Found on the ``__cause__``/``__context__`` chain, in the text of a ``RuntimeError`` from
    TorchScript (``RuntimeError: KeyboardInterrupt: <EMPTY MESSAGE>``), or as the
    :class:`StopRequest` a handler left pending.
    """
    if StopRequest.pending is not None:
        return StopRequest.pending
    for current in exception_chain(exc):
        if isinstance(current, (KeyboardInterrupt, Terminated)):
            return current
        if isinstance(current, RuntimeError):
            text = str(current)
            for kind in (KeyboardInterrupt, Terminated):
                if f"{kind.__name__}:" in text:
                    return kind()
    return None


def reraise_interrupt(exc: BaseException) -> None:
    """Raise the Ctrl-C or SIGTERM :func:`interrupt_in` finds in ``exc``; for broad ``except`` fallbacks."""
    stop = interrupt_in(exc)
    if stop is not None:
        raise stop from exc


def describe(value: Any) -> str:
    """Short description of ``value`` for error messages, on one line (a tensor's or an array's
    ``repr`` spans several)."""
    text = " ".join(line.strip() for line in repr(value).splitlines())
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float after checking it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise PruningLimitsError(f"{name} must be a finite number > 0, got {describe(value)}")
    return float(value)


def check_nonnegative(name: str, value: Any) -> float:
    """Return ``value`` as a float after checking it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise PruningLimitsError(f"{name} must be a finite number >= 0, got {describe(value)}")
    return float(value)


def check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an int after checking it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise PruningLimitsError(f"{name} must be an integer >= {minimum}, got {describe(value)}")
    return int(value)


def check_seed(name: str, value: Any) -> int:
    """Return ``value`` as an int after checking it is a seed ``torch.Generator.manual_seed`` takes."""
    seed = check_int(name, value, 0)
    if seed >= 2**64:
        raise PruningLimitsError(f"{name} must be an integer in [0, 2**64), got {seed}")
    return seed


def check_fraction(name: str, value: Any, *, open_low: bool = False, open_high: bool = False) -> float:
    """Return ``value`` as a float after checking it lies in [0, 1] (ends optionally open)."""
    low = "(" if open_low else "["
    high = ")" if open_high else "]"
    ok = (
        not isinstance(value, bool)
        and isinstance(value, Real)
        and math.isfinite(value)
        and (value > 0 if open_low else value >= 0)
        and (value < 1 if open_high else value <= 1)
    )
    if not ok:
        raise PruningLimitsError(f"{name} must be a number in {low}0, 1{high}, got {describe(value)}")
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` after checking it is one of ``choices``."""
    if value not in choices:
        raise PruningLimitsError(f"{name} must be one of {', '.join(map(repr, choices))}, got {describe(value)}")
    return value


def seeded_generator(seed: Any, generator: Any = None) -> Any:
    """``generator`` when given (a ``torch.Generator``), else a CPU ``torch.Generator`` seeded
    with ``seed`` (checked by :func:`check_seed`: ``None``, ``1.5`` or ``"0"`` were read by
    ``int()`` or failed inside torch)."""
    import torch

    if generator is None:
        return torch.Generator().manual_seed(check_seed("seed", seed))
    if not isinstance(generator, torch.Generator):
        raise PruningLimitsError(f"generator must be a torch.Generator, got {describe(generator)}")
    return generator


def real_array(value: Any, name: str) -> Any:
    """``value`` (a numpy array, a torch tensor, also one that requires grad, or a list) as a
    float64 numpy array; complex numbers are refused (``astype`` dropped their imaginary part
    with a warning only)."""
    import numpy as np

    if hasattr(value, "detach") and hasattr(value, "is_complex"):  # a torch tensor
        if value.is_complex():
            raise PruningLimitsError(f"{name} must be real numbers, got a complex tensor")
        value = value.detach().to("cpu")
    elif np.iscomplexobj(value):
        raise PruningLimitsError(f"{name} must be real numbers, got complex values")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PruningLimitsError(f"{name} must be an array of numbers, got {describe(value)}") from None


def is_device_name(text: str) -> bool:
    """Whether ``text`` names a device ``--device`` takes: ``auto``, ``cpu``, ``cuda`` or ``cuda:INDEX``
    (whether this machine has it is :func:`pruning_limits.devices.resolve_device`'s question).

    Here, not in :mod:`pruning_limits.devices`, because the command line checks the name while it
    parses its options, before torch is imported (a Ctrl-C during that import would be click's).
    """
    return re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(text).strip().lower()) is not None


@contextlib.contextmanager
def too_large_for_memory(what: str) -> Iterator[None]:
    """Turn torch's allocator failure inside the block into one line naming ``what``.

    torch says "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate
    memory: you tried to allocate N bytes. Error code 12 ...", which names no spec.

    Raises:
        MemoryError: ``{what} is too large: one of its tensors needs X GiB``.
    """
    try:
        yield
    except RuntimeError as err:
        asked = re.search(r"can't allocate memory: you tried to allocate (\d+) bytes", str(err))
        if asked is None:
            raise
        raise MemoryError(f"{what} is too large: one of its tensors needs {int(asked[1]) / 2**30:.3g} GiB") from None
