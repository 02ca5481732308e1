"""The ``pruning-limit`` command line (installed as ``pruning_limits.cli``)."""

from .main import cli

__all__ = ["cli"]
