import re
import sys
import types

import pytest
import torch
from torch import nn

from pruning_limits import PruningLimitsError
from pruning_limits.data import check_data_fits_model, make_bundle
from pruning_limits.models import ModelRecord, build_model, model_record, rebuild_model
from pruning_limits.objective import prunable_parameters


def bundle(input_shape, outputs=10, n=6):
    gen = torch.Generator().manual_seed(0)
    return make_bundle((torch.rand(n, *input_shape, generator=gen), torch.arange(n) % outputs), num_outputs=outputs)


def num_prunable(model):
    return sum(p.numel() for _, p in prunable_parameters(model))


@pytest.mark.parametrize(
    "spec, shape, dim",
    [
        ("mlp", (64,), 64 * 64 + 64 * 32 + 32 * 10),
        ("mlp:256,128", (64,), 64 * 256 + 256 * 128 + 128 * 10),
        ("mlp:0", (40,), 40 * 10),
        ("fc:3,20", (40,), 40 * 20 + 20 * 20 + 20 * 10),
        ("fc5", (64,), 64 * 100 + 3 * 100 * 100 + 100 * 10),
        ("fc12", (64,), 64 * 100 + 10 * 100 * 100 + 100 * 10),
        ("cnn", (64,), 9 * 8 + 9 * 8 * 16 + 16 * 4 * 4 * 10),
        ("cnn:4,6", (1, 8, 8), 9 * 4 + 9 * 4 * 6 + 6 * 4 * 4 * 10),
        ("cnn", (8, 8), 9 * 8 + 9 * 8 * 16 + 16 * 4 * 4 * 10),
        # mnist1d ConvBase: 40 -> 19 -> 10 -> 5 positions, 25 channels, linear 125 -> 10
        ("cnn1d", (40,), 5 * 25 + 3 * 25 * 25 * 2 + 125 * 10),
        ("cnn1d:3", (2, 40), 5 * 2 * 3 + 3 * 3 * 3 * 2 + 15 * 10),
    ],
)
def test_zoo_sizes_and_forward(spec, shape, dim):
    data = bundle(shape)
    model = build_model(spec, data)
    assert num_prunable(model) == dim
    check_data_fits_model(model, data)
    assert model(data.x_train).shape == (6, 10)


def test_seeded_init_is_reproducible_and_leaves_global_rng():
    data = bundle((64,))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    a = build_model("mlp", data, seed=3)
    assert torch.equal(torch.rand(3), expected)
    b = build_model("mlp", data, seed=3)
    c = build_model("mlp", data, seed=4)
    for (_, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a[1].weight, c[1].weight)


def test_record_rebuilds_the_same_architecture():
    data = bundle((1, 8, 8))
    model = build_model("cnn:4,6", data, seed=1)
    record = model_record(model)
    assert record == ModelRecord("cnn:4,6", (1, 8, 8), 10)
    again = rebuild_model(record.to_dict())
    again.load_state_dict(model.state_dict())
    x = data.x_train
    assert torch.equal(again(x), model(x))
    assert model_record(nn.Linear(2, 2)) is None


@pytest.mark.parametrize(
    "spec, message",
    [
        ("mlp:abc", "hidden widths must be integers"),
        ("mlp:\u0663", "hidden widths must be integers .* got '\u0663'"),  # ASCII digits only: int() read these as 3 and 4
        ("mlp:8,\uff14", "hidden widths must be integers"),
        ("resnet20:\u0663", "must be one integer"),
        # options that take one value say so (it said "integers ... separated by commas")
        ("resnet20:x", r"^model spec 'resnet20:x': the first-stage width W of resnet20:W must be one integer "
                       r"from 1 to 2\*\*31 - 1, got 'x'$"),
        ("resnet18:8,4", r"^model spec 'resnet18:8,4': the first-stage width W of resnet18:W must be one integer "
                         r"from 1 to 2\*\*31 - 1, got '8,4'$"),
        ("cnn1d:0", r"^model spec 'cnn1d:0': the channel count C of cnn1d:C must be one integer from 1 to "
                    r"2\*\*31 - 1, got '0'$"),
        ("mlp:", "give hidden widths after 'mlp:' .*'mlp:0' for a linear model"),
        ("pruning_limits.models:resnet20(depth=3)", "unexpected keyword argument 'depth'"),
        ("mlp:10,0", "must be >= 1"),
        ("mlp:99999999999999999999", "to 2\\*\\*31 - 1 separated by commas, got '99999999999999999999'"),
        ("resnet20:99999999999999999999", "to 2\\*\\*31 - 1"),
        ("fc:5", "expected fc:depth,width"),
        ("fc5:3", "takes no options"),
        ("cnn:3", "two channel counts"),
        ("resnet", "unknown model spec"),
        ("no_such_module_xyz:make", "cannot import module"),
    ],
)
def test_invalid_specs(spec, message):
    with pytest.raises(PruningLimitsError, match=message):
        build_model(spec, bundle((64,)))


def test_shape_errors():
    with pytest.raises(PruningLimitsError, match="square"):
        build_model("cnn", bundle((40,)))
    with pytest.raises(PruningLimitsError, match="sequences"):
        build_model("cnn1d", bundle((2, 3, 4)))
    with pytest.raises(PruningLimitsError, match="DataBundle"):
        build_model("mlp", object())


def test_user_factories(monkeypatch):
    module = types.ModuleType("pl_test_user_models")
    module.sized = lambda input_shape, outputs: nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], outputs))
    module.fixed = lambda: nn.Linear(64, 10)
    module.not_a_model = lambda: 3
    monkeypatch.setitem(sys.modules, "pl_test_user_models", module)
    data = bundle((64,))
    assert build_model("pl_test_user_models:sized", data)[1].out_features == 10
    assert build_model("pl_test_user_models:fixed", data).in_features == 64
    assert model_record(build_model("pl_test_user_models:fixed", data)).spec == "pl_test_user_models:fixed"
    with pytest.raises(PruningLimitsError, match="must return an nn.Module"):
        build_model("pl_test_user_models:not_a_model", data)


def test_zoo_factories_named_as_callables_take_the_specs_arguments_alone():
    """A stored spec rebuilds the network it built: sizes filled in from the data (tried on
    2026-12-06) made a bundle with ``resnet20(width=4)`` on 3-class data, 10 logits, unloadable."""
    net = rebuild_model({"spec": "pruning_limits.models:resnet20(width=2)", "input_shape": [3, 8, 8], "num_outputs": 3})
    assert net.fc.out_features == 10 and net.conv1.in_channels == 3
    assert build_model("pruning_limits.models:resnet20(num_classes=3, width=2)", bundle((3, 8, 8), outputs=3)).fc.out_features == 3


def test_a_vocabulary_below_one_token_is_refused():
    for vocab in (0, -1):
        with pytest.raises(PruningLimitsError, match=f"vocab_size must be an integer >= 1, got {vocab}"):
            rebuild_model({"spec": "transformer:8,1,2", "input_shape": [4], "num_outputs": 3, "vocab_size": vocab})


def test_a_model_too_large_to_allocate_is_one_line_naming_the_spec():
    with pytest.raises(MemoryError, match=r"model spec 'resnet20:99999999' is too large: one of its tensors needs .* GiB"):
        build_model("resnet20:99999999", bundle((1, 8, 8)))


def _nothing_is_built(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a layer was built")

    monkeypatch.setattr(nn.Linear, "__init__", refuse)
    monkeypatch.setattr(nn.TransformerEncoderLayer, "__init__", refuse)


@pytest.mark.parametrize(
    "spec, shape, layers",
    [
        ("fc:2147483647,2", (64,), 2147483647),
        ("transformer:8,2147483647,1", (16,), 2147483647),
        ("pruning_limits.models:transformer(input_shape=(16,), num_classes=3, layers=2147483647, d_model=8, heads=1)", (16,), 2147483647),
        ("fc:2,2147483647", (64,), 2),
    ],
)
def test_a_model_too_deep_or_wide_for_memory_is_refused_before_building(monkeypatch, spec, shape, layers):
    """``fc:2147483647,2`` built small layers until memory ran out (a MemoryError naming no spec)
    and ``transformer:8,2147483647,1`` hung (a review, 2026-12-07): both are refused from the spec."""
    from pruning_limits import models

    monkeypatch.setattr(models, "_machine_memory", lambda: 64 * 2**30)
    _nothing_is_built(monkeypatch)
    # a zoo factory named as a callable is user code to build_model: its error comes wrapped (UserCodeError)
    with pytest.raises((MemoryError, PruningLimitsError)) as caught:
        build_model(spec, bundle(shape, outputs=3))
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(
        rf"model spec '[^']*' is too large: its {layers} layers and .* parameters need at least .* GiB, "
        r"more than this machine's 64 GiB of memory$",
        message,
    ), message


def test_the_memory_check_counts_the_models_parameters_and_layers(monkeypatch):
    """The estimate is the built model's float32 parameters plus ``_LAYER_BYTES`` per layer:
    one byte less memory refuses the model, that many builds it."""
    from pruning_limits import models

    for spec, shape, layers in [("fc:3,20", (40,), 3), ("mlp:5,6", (7,), 3), ("transformer:8,3,2", (16,), 3)]:
        monkeypatch.setattr(models, "_machine_memory", lambda: None)  # unknown: no check
        parameters = sum(p.numel() for p in build_model(spec, bundle(shape, outputs=3)).parameters())
        needed = 4 * parameters + models._LAYER_BYTES * layers
        monkeypatch.setattr(models, "_machine_memory", lambda needed=needed: needed)
        build_model(spec, bundle(shape, outputs=3))
        monkeypatch.setattr(models, "_machine_memory", lambda needed=needed: needed - 1)
        with pytest.raises(MemoryError, match=rf"model spec '{re.escape(spec)}' is too large: its {layers} layers"):
            build_model(spec, bundle(shape, outputs=3))


@pytest.mark.parametrize(
    "v2, v1, expected",
    [
        ("max\n", None, 64 * 2**30),  # cgroup v2 without a limit: the physical memory
        (f"{2 * 2**30}\n", None, 2 * 2**30),  # a container limited to 2 GiB
        (None, f"{3 * 2**30}\n", 3 * 2**30),  # cgroup v1
        (None, "9223372036854771712\n", 64 * 2**30),  # v1 without a limit: its page-rounded 2**63
        (f"{2**40}\n", None, 64 * 2**30),  # a limit above the physical memory
        ("max\n", f"{5 * 2**30}\n", 5 * 2**30),  # both files: the smallest limit
        ("garbage", None, 64 * 2**30),  # unreadable as a number: says nothing
        (None, None, 64 * 2**30),  # no cgroup files (no container, another OS)
    ],
)
def test_the_memory_check_takes_a_containers_cgroup_limit_below_physical_memory(monkeypatch, tmp_path, v2, v1, expected):
    """A review: ``_machine_memory`` read the physical memory only, the host's in a container, so
    a model too large for the container's limit passed the check and was killed by the kernel."""
    from pruning_limits import models

    physical = 64 * 2**30
    monkeypatch.setattr(models.os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": physical // 4096}[name])
    files = []
    for name, text in (("memory.max", v2), ("memory.limit_in_bytes", v1)):
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        files.append(str(path))
    monkeypatch.setattr(models, "_CGROUP_MEMORY_FILES", tuple(files))
    assert models._machine_memory() == expected


def test_a_model_within_physical_memory_but_over_the_cgroup_limit_is_refused(monkeypatch, tmp_path):
    """End to end: 1 GiB of physical memory fits ``fc:3,20`` (1 KiB); a cgroup limit of 100 bytes does not."""
    from pruning_limits import models

    monkeypatch.setattr(models.os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 2**18}[name])
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(models, "_CGROUP_MEMORY_FILES", (str(limit),))
    limit.write_text("max\n")
    build_model("fc:3,20", bundle((40,), outputs=3))
    limit.write_text("100\n")
    with pytest.raises(MemoryError, match=r"model spec 'fc:3,20' is too large: .* more than this machine's 9.31e-08 GiB of memory$"):
        build_model("fc:3,20", bundle((40,), outputs=3))


def test_the_memory_without_sysconf_is_the_cgroup_limit_or_unknown(monkeypatch, tmp_path):
    from pruning_limits import models

    def no_sysconf(name):
        raise ValueError(f"unrecognized configuration name {name!r}")

    monkeypatch.setattr(models.os, "sysconf", no_sysconf)
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(models, "_CGROUP_MEMORY_FILES", (str(limit),))
    assert models._machine_memory() is None  # neither known: the check is skipped
    limit.write_text("123456789\n")
    assert models._machine_memory() == 123456789


def test_a_model_too_deep_for_memory_is_one_line_on_the_command_line(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from pruning_limits import models
    from pruning_limits.cli import cli

    monkeypatch.setattr(models, "_machine_memory", lambda: 64 * 2**30)
    _nothing_is_built(monkeypatch)
    result = CliRunner().invoke(cli, ["train", "--model", "transformer:8,2147483647,1", "--data", "patterns", "-o", str(tmp_path / "m.pt"), "-q"])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(
        "Error: out of memory: model spec 'transformer:8,2147483647,1' is too large: its 2147483647 layers"
    )
    assert len(result.stderr.strip().splitlines()) == 1
