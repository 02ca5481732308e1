"""Top-level click group. Commands import the library inside their bodies so ``--help`` is fast."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import click

from pruning_limits._version import __version__

from .commands import predict_command, prune_command, spectrum_command, train_command, validate_command
from .demo import demo_command
from .gap import gap_command

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class _Group(click.Group):
    """The command group; under torchrun, ranks other than 0 leave usage errors to rank 0, which prints them once.

    Such a rank waits for rank 0 before it exits, as on a library error (``_common._wait_for_rank_0``):
    exiting at once, it had torchrun stop rank 0 before rank 0's line was printed (a review's run
    with rank 0 starting 1 s late printed no error at all). If rank 0 has not stopped by then,
    the rank says the error itself (``Error: rank N: ...``).
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        from ._common import is_main_process

        if is_main_process():
            return super().main(*args, **kwargs)
        # rank 0 alone prints results, --help and --version: stdout is rank 0's. Without standalone
        # mode click returns an Exit's code (--help, --version: 0) instead of raising it.
        try:
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                return super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.ClickException as exc:  # the same arguments on every rank: rank 0 says it
            _after_rank_0(exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            _after_rank_0("aborted")
            sys.exit(1)


def _after_rank_0(message: str | None) -> None:
    """Wait for rank 0 to exit on the error it met too (torchrun then stops this rank: exit 143);
    past the grace, say ``message`` as this rank's."""
    from pruning_limits._checks import Terminated

    from . import _common

    try:
        _common._wait_for_rank_0()
    except Terminated:
        sys.exit(143)
    if message is not None:
        click.echo(f"Error: rank {_common._rank()}: {message}", err=True)


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="pruning-limit")
def cli() -> None:
    """Predict how sparse a trained PyTorch network can be pruned before its loss rises by ε.

    The prediction comes from the Hessian spectrum and the weight magnitudes (Zhang et al.,
    "How Sparse Can We Prune A Deep Network", NeurIPS 2024); `validate` and `demo` check it
    against one-shot magnitude pruning. Results go to stdout, logs and progress bars to
    stderr. Exit codes: 0 success, 1 error (one line on stderr), 2 usage error,
    130 interrupted (Ctrl-C), 143 stopped by SIGTERM.

    Sets OMP_WAIT_POLICY=PASSIVE unless it is set: OpenMP threads that busy-wait between
    torch's small parallel regions made the demo twice as slow on 2 cores.
    """
    # Before any command imports torch: the OpenMP runtime reads it once, when it loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


for _command in (demo_command, train_command, spectrum_command, predict_command, prune_command, validate_command, gap_command):
    cli.add_command(_command)
