"""The curated public API: every exported name resolves, and importing the package is light."""

import subprocess
import sys

import pruning_limits


def test_every_exported_name_resolves():
    for name in pruning_limits.__all__:
        assert getattr(pruning_limits, name) is not None, name


def test_import_does_not_load_torch():
    code = "import sys, pruning_limits; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_exported_lanczos_is_callable_whatever_was_imported_first():
    """`pl.block_lanczos` first imported the submodule `lanczos`, which Python binds to the
    package's name `lanczos`: `pl.lanczos(...)` then raised "'module' object is not callable"."""
    code = (
        "import numpy as np, pruning_limits as pl\n"
        "pl.block_lanczos\n"
        "result = pl.lanczos(lambda v: np.arange(1.0, 6.0) * v, 5, 3, start=np.ones(5))\n"
        "assert list(result.alpha[:2]) == [3.0, 3.0], result.alpha\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_describe_is_one_line():
    """A tensor's repr spans lines; an error built with describe() printed only its first line
    (the CLI shows one), cutting the message short."""
    import torch

    from pruning_limits._checks import describe

    text = describe(torch.zeros(3, 3))
    assert "\n" not in text and text.startswith("tensor([[0., 0., 0.], [0., 0., 0.],") and text.endswith("(Tensor)")
    assert describe("a  b") == "'a  b' (str)"
