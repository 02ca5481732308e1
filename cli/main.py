"""Top-level click group. Commands import the library inside their bodies so ``--help`` is fast."""

from __future__ import annotations

import click

from pruning_limits._version import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="pruning-limit")
def cli() -> None:
    """Predict how sparse a trained PyTorch network can be pruned before its loss rises by ε."""
