"""``package.module:factory(key=literal, ...)`` specs, parsed as literals and never evaluated.

A model or data spec may name a function of an importable module and pass it keyword
arguments written as Python literals::

    torchvision.models:resnet18(num_classes=10)
    pruning_limits.models:resnet18(num_classes=10, width=16)
    mypkg.nets:transformer(dims=(64, 64), act="gelu", norm=None)

The argument list is read with :func:`ast.parse` and each value with :func:`ast.literal_eval`
(strings, bytes, numbers, tuples, lists, dicts, sets, booleans and ``None``; Python's
documented safe subset). Nothing in the text is executed: a call, a name, an attribute
access, ``**`` unpacking or a positional argument is refused before anything is imported.
Bundles store the spec text; it is parsed again, with the same rules, when they are loaded.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._checks import PruningLimitsError, message_line

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
#: ``package.module:name`` optionally followed by ``(...``; what follows the name is parsed by ast.
_CALLABLE = re.compile(rf"^({_DOTTED}):([A-Za-z_]\w*)\s*(\(.*)?$", re.DOTALL)


@dataclass(frozen=True)
class CallableSpec:
    """A parsed ``package.module:name(key=literal, ...)`` spec."""

    module: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    def resolve(self, what: str) -> Callable[..., Any]:
        """Import the module and return its callable (a one-line error otherwise)."""
        try:
            module = importlib.import_module(self.module)
        except Exception as err:  # noqa: BLE001 - any import failure is a user error here
            raise PruningLimitsError(f"cannot import module {self.module!r} of {what} {self.text!r}: {message_line(err)}") from None
        func = getattr(module, self.name, None)
        if not callable(func):
            raise PruningLimitsError(f"module {self.module!r} has no callable {self.name!r} ({what} {self.text!r})")
        return func


def looks_callable(spec: str) -> bool:
    """Whether ``spec`` has the shape ``package.module:name`` or ``package.module:name(...)``."""
    return isinstance(spec, str) and bool(_CALLABLE.match(spec.strip()))


def parse_callable_spec(spec: str, what: str = "spec") -> CallableSpec:
    """Parse ``package.module:name`` or ``package.module:name(key=literal, ...)`` without evaluating it.

    Args:
        spec: the spec text.
        what: what the spec is, for messages (``"model spec"``, ``"data spec"``).

    Returns:
        The module, the callable's name and the keyword arguments as Python values.

    Raises:
        PruningLimitsError: the text is not of that form, or an argument is not a literal
            (a call such as ``__import__('os')``, a name, an attribute access, ``**`` unpacking)
            or is positional, or a keyword repeats.
    """
    text = spec.strip() if isinstance(spec, str) else ""
    match = _CALLABLE.match(text)
    if not match:
        raise PruningLimitsError(
            f"{what} {spec!r} is not of the form package.module:name or package.module:name(key=literal, ...)"
        )
    module, name, arguments = match.groups()
    if not arguments:
        return CallableSpec(module, name, {}, text)
    try:
        tree = ast.parse(f"f{arguments}", mode="eval")
    except SyntaxError as err:
        raise PruningLimitsError(f"{what} {spec!r}: the arguments are not valid Python ({err.msg})") from None
    except (MemoryError, RecursionError):  # the parser's limits, on deeply nested text
        raise PruningLimitsError(f"{what} {spec[:60]!r}...: the arguments are nested too deeply to parse") from None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise PruningLimitsError(f"{what} {spec!r}: expected one argument list name(key=literal, ...)")
    if call.args:
        raise PruningLimitsError(
            f"{what} {spec!r}: arguments must be given by keyword (key=literal), got a positional argument"
        )
    kwargs: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise PruningLimitsError(f"{what} {spec!r}: ** unpacking is not allowed, write key=literal")
        if keyword.arg in kwargs:
            raise PruningLimitsError(f"{what} {spec!r}: argument {keyword.arg!r} is given twice")
        try:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            source = ast.get_source_segment(f"f{arguments}", keyword.value) or type(keyword.value).__name__
            raise PruningLimitsError(
                f"{what} {spec!r}: argument {keyword.arg}={source} is not a literal (numbers, strings, "
                "True/False/None, tuples, lists, dicts); specs are never evaluated as code"
            ) from None
    return CallableSpec(module, name, kwargs, text)
