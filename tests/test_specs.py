"""``package.module:factory(key=literal, ...)`` specs: parsed as literals, never evaluated."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from pruning_limits._checks import PruningLimitsError
from pruning_limits.specs import looks_callable
from pruning_limits.checkpoint import BUNDLE_FORMAT, BUNDLE_VERSION, build_from_checkpoint, read_checkpoint
from pruning_limits.data import load_data
from pruning_limits.models import build_model, model_record, rebuild_model
from pruning_limits.specs import parse_callable_spec


def test_literal_arguments_are_parsed():
    parsed = parse_callable_spec(
        "pkg.mod:factory(a=1, b=-2.5, c='x', d=(1, 2), e=[3], f={'k': None}, g=True, h=1e-3)"
    )
    assert (parsed.module, parsed.name) == ("pkg.mod", "factory")
    assert parsed.kwargs == {"a": 1, "b": -2.5, "c": "x", "d": (1, 2), "e": [3], "f": {"k": None}, "g": True, "h": 1e-3}
    assert parse_callable_spec("pkg.mod:factory").kwargs == {}
    assert parse_callable_spec("pkg.mod:factory()").kwargs == {}
    assert looks_callable("torchvision.models:resnet18(num_classes=10)")
    assert not looks_callable("mlp:64,32")


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("plm_spec_marker:factory(x=__import__('os'))", "not a literal"),
        ("plm_spec_marker:factory(x=os.path)", "not a literal"),
        ("plm_spec_marker:factory(x=open('f'))", "not a literal"),
        ("plm_spec_marker:factory(x=[len('a')])", "not a literal"),
        ("plm_spec_marker:factory(x=y)", "not a literal"),
        ("plm_spec_marker:factory(x=lambda: 0)", "not a literal"),
        ("plm_spec_marker:factory(x=1 if True else 2)", "not a literal"),
        ("plm_spec_marker:factory(x=().__class__)", "not a literal"),
        ("plm_spec_marker:factory(**{'x': 1})", "unpacking"),
        ("plm_spec_marker:factory(1)", "positional"),
        ("plm_spec_marker:factory(x=1, x=2)", "given twice"),
        ("plm_spec_marker:factory(x=1", "not of the form|not valid Python"),
        ("plm_spec_marker:factory(x=1); import os", "not of the form|not valid Python"),
        ("plm_spec_marker:factory(x=1)(y=2)", "expected one argument list"),
    ],
)
def test_non_literal_arguments_are_refused_before_anything_is_imported(spec, reason, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "plm_spec_marker.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from torch import nn\n"
        "def factory(**kwargs):\n"
        "    return nn.Linear(64, 10)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PruningLimitsError, match=reason) as info:
        build_model(spec, {"input_shape": [64], "num_outputs": 10})
    assert "\n" not in str(info.value)
    assert not marker.exists() and "plm_spec_marker" not in sys.modules


def test_factory_receives_sizes_and_keyword_arguments(tmp_path, monkeypatch):
    (tmp_path / "plm_spec_factory.py").write_text(
        "from torch import nn\n"
        "def sized(input_shape, num_outputs, hidden=4, act='relu'):\n"
        "    layers = [nn.Flatten(), nn.Linear(input_shape[0], hidden), nn.ReLU() if act == 'relu' else nn.Tanh()]\n"
        "    return nn.Sequential(*layers, nn.Linear(hidden, num_outputs))\n"
        "def keywords(*, width=3):\n"
        "    return nn.Linear(64, width)\n"
        "def fails(*, width=3):\n"
        "    raise ValueError('width too small')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sizes = {"input_shape": [64], "num_outputs": 10}
    model = build_model("plm_spec_factory:sized(hidden=7, act='tanh')", sizes)
    assert model[1].out_features == 7 and isinstance(model[2], nn.Tanh) and model[3].out_features == 10
    assert build_model("plm_spec_factory:keywords(width=5)", sizes).out_features == 5
    # the record keeps the spec text; rebuilding parses it again, and calls it only when trusted
    # (a record read from a file is data: it called any function it named)
    with pytest.raises(PruningLimitsError, match="names the function .plm_spec_factory:sized.*trust=True"):
        rebuild_model(model_record(model))
    rebuilt = rebuild_model(model_record(model), trust=True)
    assert rebuilt[1].out_features == 7
    with pytest.raises(PruningLimitsError, match="failed: ValueError: width too small"):
        build_model("plm_spec_factory:fails(width=1)", sizes)
    with pytest.raises(PruningLimitsError, match="failed: TypeError"):
        build_model("plm_spec_factory:keywords(height=1)", sizes)


def test_data_spec_with_keyword_arguments(tmp_path, monkeypatch):
    (tmp_path / "plm_spec_data.py").write_text(
        "import torch\n"
        "def make(n=10, classes=2):\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    return torch.randn(n, 3, generator=g), torch.arange(n) % classes\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_data("plm_spec_data:make(n=12, classes=3)")
    assert len(data.x_train) == 12 and data.num_outputs == 3
    with pytest.raises(PruningLimitsError, match="not a literal"):
        load_data("plm_spec_data:make(n=__import__('os').getpid())")


def _bundle_with_spec(path, spec, state):
    torch.save(
        {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "state_dict": state, "model_spec": spec,
         "data_spec": "digits", "training": {}, "model_record": {"spec": spec, "input_shape": [3, 8, 8], "num_outputs": 4},
         "library_version": "0.1.0"},
        path,
    )


def test_stored_specs_are_rechecked_on_load(tmp_path):
    sizes = {"input_shape": [3, 8, 8], "num_outputs": 4}
    zoo = "pruning_limits.models:resnet20(num_classes=4, width=2)"
    model = build_model(zoo, sizes)
    path = tmp_path / "zoo.pt"
    _bundle_with_spec(path, zoo, model.state_dict())
    # the zoo's own factories build networks only: a stored spec naming them needs no trust
    loaded = build_from_checkpoint(read_checkpoint(path))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    # a foreign factory with arguments is refused without trust, like one without arguments
    path2 = tmp_path / "foreign.pt"
    _bundle_with_spec(path2, "os:system(command='true')", model.state_dict())
    with pytest.raises(PruningLimitsError, match="--trust-checkpoint"):
        build_from_checkpoint(read_checkpoint(path2))
    # a stored spec that is not literal is refused even when trusted
    path3 = tmp_path / "evil.pt"
    _bundle_with_spec(path3, "pruning_limits.models:resnet20(width=__import__('os').getpid())", model.state_dict())
    with pytest.raises(PruningLimitsError, match="not a literal"):
        build_from_checkpoint(read_checkpoint(path3), trust=True)


def test_zoo_factory_spec_in_cli_train_and_predict(tmp_path):
    from click.testing import CliRunner

    from pruning_limits.cli.main import cli as main

    runner = CliRunner()
    bundle = str(tmp_path / "r.pt")
    spec = "pruning_limits.models:resnet18(num_classes=4, width=2)"
    result = runner.invoke(
        main, ["train", "--model", spec, "--data", "patterns:n=16,test=4,classes=4,size=8", "--epochs", "1", "-o", bundle, "-q"]
    )
    assert result.exit_code == 0, result.output
    # a memory budget too small to cache a gradient graph (auto then never traces the ResNet, a minute)
    # but large enough for Lanczos without re-orthogonalisation (3 vectors of D = 11 014)
    result = runner.invoke(
        main, ["predict", bundle, "--iterations", "4", "--probes", "1", "--epsilon", "0.1", "--memory-budget", "0.0005", "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    import json

    record = json.loads(result.stdout)
    assert record["params"]["selection"] == "default" and record["params"]["weights"] == record["dim"]
    assert "layer1.0.conv1.weight" in record["params"]["tensors"]
    result = runner.invoke(main, ["predict", bundle, "--model", "pkg:f(x=print('hi'))", "--epsilon", "0.1", "-q"])
    assert result.exit_code == 1 and "not a literal" in result.output and "Traceback" not in result.output


def test_linear_model_spec_rejects_a_factory_that_returns_no_module(tmp_path, monkeypatch):
    (tmp_path / "plm_spec_bad.py").write_text("def factory(*, n=1):\n    return n\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PruningLimitsError, match="must return an nn.Module"):
        build_model("plm_spec_bad:factory(n=2)", {"input_shape": [4], "num_outputs": 2})
    assert isinstance(build_model("mlp:0", {"input_shape": [4], "num_outputs": 2}), nn.Module)
