"""``python -m pruning_limits`` runs the ``pruning-limit`` command line."""

from pruning_limits.cli import cli

if __name__ == "__main__":
    cli(prog_name="pruning-limit")
