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
