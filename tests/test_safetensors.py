""".safetensors state_dicts and Hugging Face model folders: round trips, damaged files, mismatches."""

from __future__ import annotations

import functools
import json
import os
import re
import sys

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from pruning_limits._checks import PruningLimitsError
from pruning_limits.checkpoint import build_from_checkpoint, read_checkpoint, save_safetensors
from pruning_limits.cli.main import cli
from pruning_limits.data import load_data
from pruning_limits.models import build_model

from conftest import one_line

SIZES = {"input_shape": [64], "num_outputs": 10}


def test_safetensors_round_trip(tmp_path):
    model = build_model("mlp:16", SIZES, seed=3)
    path = tmp_path / "weights.safetensors"
    save_safetensors(path, model)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.kind, checkpoint.format) == ("state_dict", "safetensors")
    with pytest.raises(PruningLimitsError, match=(
        rf"^{re.escape(repr(str(path)))} is a plain state_dict: give the architecture with --model SPEC \(and --data to size it\)$"
    )) as info:
        build_from_checkpoint(checkpoint, data=SIZES)
    one_line(info)
    loaded = build_from_checkpoint(checkpoint, model_spec="mlp:16", data=SIZES, seed=0)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.eval()(x), loaded(x))
    # a safetensors file without the suffix is recognised by its header
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(path.read_bytes())
    assert read_checkpoint(renamed).format == "safetensors"


def test_resnet_with_batchnorm_buffers_round_trips(tmp_path):
    sizes = {"input_shape": [3, 8, 8], "num_outputs": 4}
    model = build_model("resnet20:2", sizes)
    model(torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)))  # update running statistics in train mode
    path = tmp_path / "resnet.safetensors"
    save_safetensors(path, model)
    loaded = build_from_checkpoint(read_checkpoint(path), model_spec="resnet20:2", data=sizes)
    assert torch.equal(loaded.bn1.running_mean, model.bn1.running_mean)
    assert int(loaded.bn1.num_batches_tracked) == 1


@pytest.mark.parametrize(
    "content",
    [
        b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": garbage}",  # damaged JSON header
        b"\xff\xff\xff\xff\x00\x00\x00\x00{",  # header length beyond the file
        b"\x40\x00\x00\x00\x00\x00\x00\x00{\"w\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,64]}}    ",  # data missing
        b"not a safetensors file at all",
    ],
)
def test_damaged_safetensors_is_one_line(tmp_path, content):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(PruningLimitsError) as info:
        read_checkpoint(path)
    assert "broken.safetensors" in one_line(info)


def test_missing_and_mis_shaped_tensors_are_one_line(tmp_path):
    model = build_model("mlp:16", SIZES)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    missing = dict(state)
    del missing["3.weight"]
    save_file(missing, tmp_path / "missing.safetensors")
    with pytest.raises(PruningLimitsError, match=r"missing keys \[3.weight\]") as info:
        build_from_checkpoint(read_checkpoint(tmp_path / "missing.safetensors"), model_spec="mlp:16", data=SIZES)
    one_line(info)
    with pytest.raises(PruningLimitsError, match=(
        r"^the state_dict does not fit model 'mlp:8': missing keys \[3\.weight\]; "
        r"mis-shaped \(checkpoint vs model\) \[1\.weight \(16, 64\) vs \(8, 64\), 1\.bias \(16,\) vs \(8,\)\]$"
    )) as info:
        build_from_checkpoint(read_checkpoint(tmp_path / "missing.safetensors"), model_spec="mlp:8", data=SIZES)
    one_line(info)


def test_cli_predicts_and_prunes_a_safetensors_checkpoint(tmp_path):
    from pruning_limits.lomp import train

    data = load_data("digits")
    model = build_model("mlp:16", data)
    train(model, data, epochs=2, seed=0)
    path = tmp_path / "model.safetensors"
    save_safetensors(path, model)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["predict", str(path), "--model", "mlp:16", "--data", "digits", "--iterations", "20", "--probes", "2", "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["dim"] == 64 * 16 + 16 * 10 == record["params"]["weights"]
    assert list(record["params"]["tensors"]) == ["1.weight", "3.weight"]
    # --params: only the first layer
    result = runner.invoke(
        cli, ["predict", str(path), "--model", "mlp:16", "--data", "digits", "--params", "1.weight",
              "--iterations", "20", "--probes", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dim"] == 64 * 16
    assert "prunable: 1 tensor, D = 1024 weights (--params 1.weight)" in result.stderr
    pruned = tmp_path / "pruned.safetensors"
    result = runner.invoke(
        cli, ["prune", str(path), "--model", "mlp:16", "--data", "digits", "--sparsity", "0.5", "-o", str(pruned), "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    back = build_from_checkpoint(read_checkpoint(pruned), model_spec="mlp:16", data=data)
    weights = torch.cat([back[1].weight.flatten(), back[3].weight.flatten()])
    assert int((weights == 0).sum()) == round(0.5 * weights.numel())
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": garbage}")
    result = runner.invoke(cli, ["predict", str(broken), "--model", "mlp:16", "--data", "digits"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "safetensors" in lines[0]


@pytest.mark.parametrize(("dtype", "count", "size"), [("F4", 2, 1), ("F6_E2M3", 4, 3), ("F8_E8M0", 2, 2)])
def test_a_dtype_torch_has_no_type_for_is_one_line(tmp_path, dtype, count, size):
    """A review: safetensors knows these dtypes and torch has no type for them; reading such a
    file ended in a KeyError traceback."""
    header = json.dumps({
        "w": {"dtype": dtype, "shape": [count], "data_offsets": [0, size]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [size, size + 4]},
    }).encode()
    path = tmp_path / f"{dtype}.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(size + 4))
    with pytest.raises(PruningLimitsError, match=rf"holds tensors of dtype '{dtype}' \(\['w'\]\), which torch .* has no type for") as info:
        read_checkpoint(path)
    one_line(info)


def test_a_float64_checkpoint_is_pruned_into_float64_with_its_kept_values_bit_exact(tmp_path):
    """A review: the float32 model's values were cast back, so every kept weight and bias of a
    float64 file changed (by up to 4e-12). The file's own values are written with the zeros of pruning."""
    from safetensors.torch import load_file

    model = build_model("mlp:16", SIZES, seed=1)
    torch.manual_seed(0)
    state = {k: v.double() + 1e-12 * torch.randn(v.shape, dtype=torch.float64) for k, v in model.state_dict().items()}
    assert not torch.equal(state["1.weight"].float().double(), state["1.weight"])  # float32 rounds them
    path, pruned, bundle = tmp_path / "f64.pt", tmp_path / "pruned.safetensors", tmp_path / "pruned.pt"
    torch.save(state, path)
    for out in (pruned, bundle):
        result = CliRunner().invoke(
            cli, ["prune", str(path), "--model", "mlp:16", "--data", "digits", "--sparsity", "0.5", "-o", str(out), "-q"]
        )
        assert result.exit_code == 0, result.output
    for after in (load_file(pruned), torch.load(bundle, weights_only=True)["state_dict"]):
        assert {k: v.dtype for k, v in after.items()} == {k: torch.float64 for k in state}
        for name, before in state.items():
            kept = after[name] != 0
            assert torch.equal(after[name][kept], before[kept]), name
        assert 0 < int((after["1.weight"] != 0).sum()) < after["1.weight"].numel()
        assert torch.equal(after["1.bias"], state["1.bias"])  # a bias pruning leaves alone: the file's, bit for bit


def test_restore_dtypes_casts_values_that_were_changed_not_only_zeroed():
    """Values changed otherwise than zeroed (e.g. trained) are not the file's: they are cast, not replaced."""
    from pruning_limits.checkpoint import FileDtypes, restore_dtypes

    original = torch.tensor([[1.0 + 1e-12, 2.0 + 1e-12], [3.0 + 1e-12, 4.0 + 1e-12]], dtype=torch.float64)
    layer = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(original)
        layer.weight[0, 0] = 0.0
    restore_dtypes(layer, FileDtypes({"weight": torch.float64}, {"weight": original}))
    assert layer.weight.dtype == torch.float64
    assert torch.equal(layer.weight, torch.where(torch.tensor([[False, True], [True, True]]), original, 0.0))
    with torch.no_grad():
        layer.weight.copy_(original)
    layer.float()
    with torch.no_grad():
        layer.weight[1, 1] = 5.0  # trained
    restore_dtypes(layer, FileDtypes({"weight": torch.float64}, {"weight": original}))
    assert torch.equal(layer.weight, original.float().double().index_put((torch.tensor(1), torch.tensor(1)), torch.tensor(5.0, dtype=torch.float64)))


@functools.cache
def _torchvision_is_broken() -> bool:
    """torchvision is installed but cannot be imported: a CUDA build against a CPU torch."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return False
    except RuntimeError as err:  # "operator torchvision::nms does not exist"
        if "torchvision::" not in str(err):
            raise
        return True
    return False


transformers = None  # the module, once _transformers_without_a_broken_torchvision imported it


@pytest.fixture(scope="module", autouse=True)
def _transformers_without_a_broken_torchvision():
    """Import transformers for this module's tests (skipped without the Hugging Face extra).

    Where torchvision is installed but cannot be imported, transformers, which decides at its
    import whether torchvision is available, fails on it in its lazy model imports: make it look
    not installed while transformers is first imported and while this module's tests run, and
    only then (other modules, test_architectures' torchvision test among them, see it as it is).
    A working or absent torchvision is left alone."""
    global transformers
    with pytest.MonkeyPatch.context() as patch:
        if _torchvision_is_broken():
            patch.setitem(sys.modules, "torchvision", None)
        transformers = pytest.importorskip("transformers", reason="the Hugging Face extra (transformers) is not installed")
        yield


def tiny_bert(num_labels: int = 3):
    config = transformers.BertConfig(
        vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=num_labels, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config).eval()


def test_huggingface_folder_loads_and_predicts(tmp_path):
    from pruning_limits.pipeline import predict_limit
    from pruning_limits.objective import prunable_parameters

    bert = tiny_bert()
    folder = tmp_path / "bert"
    bert.save_pretrained(folder)
    checkpoint = read_checkpoint(folder)
    assert checkpoint.kind == "huggingface"
    model = build_from_checkpoint(checkpoint)
    data = load_data("tokens:n=40,test=8,classes=3,vocab=20,length=8")
    ids = data.x_train[:4]
    assert torch.equal(model(ids).logits, bert(ids).logits)  # same weights, output through .logits
    names = [n for n, _ in prunable_parameters(model)]
    assert "bert.encoder.layer.0.attention.self.query.weight" in names and "classifier.weight" in names
    assert not any("embeddings" in n or "LayerNorm" in n for n in names)
    prediction = predict_limit(model, data.train, epsilon=0.05, iterations=8, probes=1, seed=0)
    assert prediction.dim == sum(p.numel() for _, p in prunable_parameters(model))
    assert 0.0 <= prediction.sparsity <= 1.0


def test_huggingface_folder_in_the_cli_and_pruned_folder(tmp_path):
    folder = tmp_path / "bert"
    tiny_bert().save_pretrained(folder)
    runner = CliRunner()
    data = "tokens:n=40,test=8,classes=3,vocab=20,length=8"
    result = runner.invoke(
        cli, ["predict", str(folder), "--data", data, "--iterations", "6", "--probes", "1", "--epsilon", "0.05",
              "--memory-budget", "0.001", "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["params"]["weights"] == json.loads(result.stdout)["dim"]
    out = tmp_path / "pruned-bert"
    result = runner.invoke(cli, ["prune", str(folder), "--data", data, "--sparsity", "0.3", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    pruned = build_from_checkpoint(read_checkpoint(out))
    assert float((pruned.classifier.weight == 0).float().mean()) > 0


def test_huggingface_folder_refusals_are_one_line(tmp_path):
    folder = tmp_path / "bert"
    tiny_bert().save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    # custom code is never run
    (folder / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "modeling.Evil"}}))
    with pytest.raises(PruningLimitsError, match="custom model code") as info:
        read_checkpoint(folder)
    one_line(info)
    # weights of another shape
    (folder / "config.json").write_text(json.dumps({**config, "hidden_size": 32, "intermediate_size": 64}))
    with pytest.raises(PruningLimitsError, match=(  # the first mismatches named, then the count
        r"^the state_dict does not fit model BertForSequenceClassification: mis-shaped \(checkpoint vs model\) "
        r"\[bert\.embeddings\.word_embeddings\.weight \(20, 16\) vs \(20, 32\), .*, \.\.\. \(24 in all\)\]$"
    )) as info:
        read_checkpoint(folder)
    one_line(info)
    # an unknown architecture, and a folder without weights
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["NoSuchModel"]}))
    with pytest.raises(PruningLimitsError, match="no model class 'NoSuchModel'"):
        read_checkpoint(folder)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").unlink()
    with pytest.raises(PruningLimitsError, match="has no model.safetensors") as info:
        read_checkpoint(folder)
    one_line(info)


def test_a_float16_checkpoint_is_pruned_into_float16(tmp_path):
    """A float16 file loads into the float32 model; prune wrote the pruned weights in float32
    (twice the size, another dtype than the input). Pruning only zeroes entries, so the output
    keeps each tensor's dtype and its surviving values exactly."""
    from safetensors.torch import load_file

    data = load_data("digits")
    model = build_model("mlp:16", data).half()
    path, pruned = tmp_path / "half.safetensors", tmp_path / "pruned.safetensors"
    save_safetensors(path, model)
    result = CliRunner().invoke(
        cli, ["prune", str(path), "--model", "mlp:16", "--data", "digits", "--sparsity", "0.5", "-o", str(pruned), "-q"]
    )
    assert result.exit_code == 0, result.output
    before, after = load_file(path), load_file(pruned)
    assert {k: v.dtype for k, v in after.items()} == {k: v.dtype for k, v in before.items()} == {k: torch.float16 for k in before}
    kept = after["1.weight"] != 0
    assert 0 < int(kept.sum()) < kept.numel() and torch.equal(after["1.weight"][kept], before["1.weight"][kept])
    # a Hugging Face folder in float16 as well
    folder, out = tmp_path / "bert", tmp_path / "pruned-bert"
    tiny_bert().half().save_pretrained(folder)
    data = "tokens:n=40,test=8,classes=3,vocab=20,length=8"
    result = CliRunner().invoke(cli, ["prune", str(folder), "--data", data, "--sparsity", "0.3", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    weights = load_file(out / "model.safetensors")
    assert weights["classifier.weight"].dtype == torch.float16 and bool((weights["classifier.weight"] == 0).any())


def test_a_config_that_needs_the_hub_is_refused_without_a_network_call(tmp_path, monkeypatch):
    """A DETR config naming its backbone by Hub repository made transformers look it up on
    huggingface.co while building; building runs with the Hub's offline mode on, so nothing is
    looked up or connected to, and the refusal is one line."""
    import socket

    import huggingface_hub.constants
    from safetensors.torch import save_file

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network access in a test")

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, *args: refuse(*args))
    folder = tmp_path / "detr"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "detr", "architectures": ["DetrForObjectDetection"], "use_timm_backbone": False,
        "backbone": "facebook/resnet-50", "backbone_config": None,
    }))
    save_file({"weight": torch.zeros(2, 2)}, folder / "model.safetensors")
    with pytest.raises(PruningLimitsError, match="needs files from the Hugging Face Hub.*never downloads") as info:
        read_checkpoint(folder)
    one_line(info)
    assert attempts == []
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False  # the offline mode lasts only while building


def test_num_labels_beyond_the_weights_is_refused_before_building(tmp_path, monkeypatch):
    """num_labels without id2label made transformers build one id2label entry per label: 10**12
    of them filled the memory. A classifier over N labels has a weight of N rows, so a count
    above every dimension of the weights is refused before transformers sees the config."""
    folder = tmp_path / "bert"
    tiny_bert(num_labels=3).save_pretrained(folder)
    config = {k: v for k, v in json.loads((folder / "config.json").read_text()).items() if k not in ("id2label", "label2id")}
    (folder / "config.json").write_text(json.dumps({**config, "num_labels": 3}))
    assert build_from_checkpoint(read_checkpoint(folder)).config.num_labels == 3  # a count the weights hold still loads

    def never(*args, **kwargs):
        raise AssertionError("the config was built")

    monkeypatch.setattr(transformers.AutoConfig, "for_model", never)
    for bad in ({**config, "num_labels": 10**12}, {**config, "text_config": {"num_labels": 10**12}}):
        (folder / "config.json").write_text(json.dumps(bad))
        with pytest.raises(PruningLimitsError, match=r"num_labels=1000000000000, more than any dimension .*at most 32") as info:
            read_checkpoint(folder)
        one_line(info)


def test_keys_that_from_pretrained_ignores_are_dropped(tmp_path, monkeypatch):
    """An old checkpoint's bert.embeddings.position_ids buffer (non-persistent now) and a key the
    class lists in _keys_to_ignore_on_load_unexpected (regular expressions) load as they do with
    from_pretrained; any other extra key is still refused."""
    from safetensors.torch import load_file, save_file

    bert = tiny_bert()
    folder = tmp_path / "bert"
    bert.save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    save_file({**weights, "bert.embeddings.position_ids": torch.arange(16)[None]}, folder / "model.safetensors")
    checkpoint = read_checkpoint(folder)
    assert "bert.embeddings.position_ids" not in checkpoint.dtypes
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(build_from_checkpoint(checkpoint)(ids).logits, bert(ids).logits)
    save_file({**weights, "extra.weight": torch.zeros(3)}, folder / "model.safetensors")
    with pytest.raises(PruningLimitsError, match=r"unexpected keys \[extra.weight\]") as info:
        read_checkpoint(folder)
    one_line(info)
    monkeypatch.setattr(transformers.BertForSequenceClassification, "_keys_to_ignore_on_load_unexpected", [r"^extra\."])
    assert torch.equal(build_from_checkpoint(read_checkpoint(folder))(ids).logits, bert(ids).logits)


def test_sharded_weights_are_read_from_the_folder_only(tmp_path):
    """save_pretrained(max_shard_size=...) writes model.safetensors.index.json and shards; they
    load like one file. A shard name that leaves the folder, a missing shard or an index that
    does not match its shards is one line."""
    bert = tiny_bert()
    folder = tmp_path / "bert"
    bert.save_pretrained(folder, max_shard_size="4KB")
    shards = sorted(p.name for p in folder.glob("model-*.safetensors"))
    assert len(shards) > 1 and not (folder / "model.safetensors").exists()
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(build_from_checkpoint(read_checkpoint(folder))(ids).logits, bert(ids).logits)
    index_file = folder / "model.safetensors.index.json"
    index = json.loads(index_file.read_text())
    key = next(iter(index["weight_map"]))
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes((folder / index["weight_map"][key]).read_bytes())
    cases = [
        ({**index, "weight_map": {**index["weight_map"], key: "../outside.safetensors"}}, "file name in the folder itself"),
        ({**index, "weight_map": {**index["weight_map"], key: str(outside)}}, "file name in the folder itself"),
        ({**index, "weight_map": {**index["weight_map"], key: "model-99.safetensors"}}, "which is not a file in"),
        ({**index, "weight_map": {**index["weight_map"], "no.such": shards[0]}}, r"not in the shard it names: \[no.such\]"),
        ({"weight_map": ["model-00001.safetensors"]}, "must map tensor names to shard files"),
    ]
    for content, message in cases:
        index_file.write_text(json.dumps(content))
        with pytest.raises(PruningLimitsError, match=message) as info:
            read_checkpoint(folder)
        one_line(info)
    index_file.unlink()
    with pytest.raises(PruningLimitsError, match="has no model.safetensors or model.safetensors.index.json") as info:
        read_checkpoint(folder)
    one_line(info)


def test_a_config_nested_too_deep_is_one_line(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    save_file({"weight": torch.zeros(2)}, folder / "model.safetensors")
    with pytest.raises(PruningLimitsError, match="cannot read .*config.json' as JSON") as info:
        read_checkpoint(folder)
    one_line(info)


@pytest.mark.parametrize("entry, asked", [
    ({"attn_implementation": "attacker-org/evil-kernel"}, "attn_implementation='attacker-org/evil-kernel'"),
    ({"_attn_implementation": "attacker-org/evil-kernel:attention"}, "_attn_implementation='attacker-org/evil-kernel:attention'"),
    ({"attn_implementation": {"text_config": "attacker-org/evil-kernel"}}, "attn_implementation.text_config='attacker-org/evil-kernel'"),
    ({"text_config": {"model_type": "bert", "_attn_implementation": "attacker-org/evil-kernel@main"}},
     "text_config._attn_implementation='attacker-org/evil-kernel@main'"),
    ({"vision_config": {"attn_implementation": "paged|attacker-org/evil-kernel"}},
     "vision_config.attn_implementation='paged|attacker-org/evil-kernel'"),
    ({"line\nbreak": {"attn_implementation": "attacker-org/evil-kernel"}}, "'line\\nbreak'.attn_implementation='attacker-org/evil-kernel'"),
], ids=["top", "private", "per-sub-config", "in-text_config", "wrapped", "odd-key"])
def test_an_attention_implementation_from_the_hub_is_refused_before_building(tmp_path, monkeypatch, entry, asked):
    """attn_implementation "org/repo" (also _attn_implementation, and in a sub-config) makes
    transformers' kernels package fetch and load that repository's code while building the model."""
    import re

    folder = tmp_path / "bert"
    tiny_bert().save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    for implementation in ("eager", "sdpa", None):  # transformers' own ones still load
        (folder / "config.json").write_text(json.dumps({**config, "attn_implementation": implementation}))
        assert read_checkpoint(folder).kind == "huggingface"

    def never(*args, **kwargs):
        raise AssertionError("the config was built")

    monkeypatch.setattr(transformers.AutoConfig, "for_model", never)
    (folder / "config.json").write_text(json.dumps({**config, **entry}))
    with pytest.raises(PruningLimitsError, match=(
        f"config.json' asks for {re.escape(asked)}, an attention kernel from the Hugging Face Hub, whose code "
        r"pruning-limits never runs: set transformers' own \(eager or sdpa\)$"
    )) as info:
        read_checkpoint(folder)
    one_line(info)


def test_transformers_own_attention_implementations_are_not_refused(tmp_path):
    """An allow-list of five names refused transformers 5.25's own flash_attention_4 and
    paged|eager (a review): only a Hub kernel's name (with a '/') is refused."""
    from pruning_limits.checkpoint import _check_attention_implementations

    for name in ("eager", "sdpa", "flash_attention_4", "paged|eager", "flex_attention", None):
        _check_attention_implementations(tmp_path / "config.json", {"attn_implementation": name, "text_config": {"_attn_implementation": name}})


def test_a_model_declared_larger_than_its_weights_is_refused_before_it_is_built(tmp_path, monkeypatch):
    """A 746-byte config.json with vocab_size=40_000_000 took 30 s and 2.9 GB to build before its
    weights' shapes were found not to fit; the model is built on the meta device first, and only
    there before the refusal."""
    folder = tmp_path / "bert"
    tiny_bert().save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 10**12}))  # 64 TB in float32
    cls = transformers.BertForSequenceClassification
    construct = cls.__init__
    built_on_meta = []  # per construction of the model: whether its tensors were meta tensors

    def spied(self, *args, **kwargs):
        built_on_meta.append(torch.empty(0).is_meta)
        construct(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__init__", spied)
    with pytest.raises(PruningLimitsError, match=r"mis-shaped \(checkpoint vs model\) .*\(20, 16\) vs \(1000000000000, 16\)") as info:
        read_checkpoint(folder)
    one_line(info)
    assert built_on_meta == [True]


def test_a_training_record_nested_too_deep_is_one_line(tmp_path):
    """'maximum recursion depth exceeded while decoding a JSON array', naming no file, before."""
    folder = tmp_path / "bert"
    tiny_bert().save_pretrained(folder)
    (folder / "pruning_limits_training.json").write_text("[" * 200_000)
    with pytest.raises(PruningLimitsError, match="bert' carries a training record .* that is not JSON") as info:
        read_checkpoint(folder)
    one_line(info)


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["022", "027"])
def test_a_saved_folder_gets_the_umask_permissions(tmp_path, umask):
    """save_huggingface renamed mkdtemp's folder into place, so the folder stayed private (0700)."""
    import os
    import stat

    from pruning_limits.checkpoint import save_huggingface

    before = os.umask(umask)
    try:
        out = save_huggingface(tmp_path / "saved", tiny_bert())
    finally:
        os.umask(before)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    files = list(out.iterdir())
    assert files and {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o666 & ~umask}


def test_train_init_on_a_huggingface_folder_writes_a_folder_that_keeps_its_lambda(tmp_path):
    """train --init on a folder wrote a bundle with an empty model spec, which no command could
    load (and predict's next line suggested exactly that). It writes a folder again, carrying the
    training record, so predict knows the network was l1-trained and prune keeps the record."""
    folder, out, pruned = tmp_path / "bert", tmp_path / "bert-l1", tmp_path / "bert-l1-pruned"
    tiny_bert().save_pretrained(folder)
    data = "tokens:n=40,test=8,classes=3,vocab=20,length=8"
    runner = CliRunner()
    result = runner.invoke(cli, ["predict", str(folder), "--data", data, "--iterations", "6", "--probes", "1", "--epsilon", "0.05", "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["next"].endswith(f"-o {out}")  # a folder, as train --init writes it
    result = runner.invoke(cli, ["train", "--init", str(folder), "--data", data, "--l1", "0.001", "--epochs", "1", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    loaded = read_checkpoint(out)
    assert loaded.kind == "huggingface" and loaded.training["l1"] == 0.001
    result = runner.invoke(cli, ["predict", str(out), "--data", data, "--iterations", "6", "--probes", "1", "--epsilon", "0.05", "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["trust"]["l1"] == 0.001  # None before: λ not recorded
    result = runner.invoke(cli, ["prune", str(out), "--data", data, "--sparsity", "0.3", "-o", str(pruned), "-q"])
    assert result.exit_code == 0, result.output
    assert read_checkpoint(pruned).training["l1"] == 0.001
    # a --params selection travels with the folder, as in a bundle (the λ was credited to all weights)
    chosen = tmp_path / "bert-encoder"
    args = ["--data", data, "--params", "bert.encoder.*weight", "--l1", "0.001", "--epochs", "1", "-o", str(chosen), "-q"]
    assert runner.invoke(cli, ["train", "--init", str(folder), *args]).exit_code == 0
    assert read_checkpoint(chosen).params == ["bert.encoder.*weight"]
    record = json.loads(runner.invoke(cli, ["predict", str(chosen), "--data", data, "--iterations", "6", "--probes", "1",
                                            "--epsilon", "0.05", "--json", "-q"]).stdout)
    assert record["params"]["selection"] == "bert.encoder.*weight" and "classifier.weight" not in record["params"]["tensors"]
    # a damaged selection file: its own message, naming where the names came from
    stored = chosen / "pruning_limits_params.json"
    for content, message in (('{"a": 1}', "stores a parameter selection that is not a list of names"),
                             ('["nonexistent.weight"]', r"stores the parameter selection \['nonexistent.weight'\]: unknown")):
        stored.write_text(content)
        with pytest.raises(PruningLimitsError, match=message):
            build_from_checkpoint(read_checkpoint(chosen))


def test_quiet_silences_transformers_too(tmp_path):
    """-q promises no messages or progress bars on stderr; transformers printed its own
    ("Writing model shards: 100%|...", config notes). A fresh process: transformers reads the
    settings when it is first imported."""
    import subprocess
    import sys

    folder = tmp_path / "bert"
    tiny_bert().save_pretrained(folder)
    code = (  # as this module's fixture does, hide a torchvision that does not import (a CUDA build)
        "import sys\ntry:\n    import torchvision\nexcept Exception:\n    sys.modules['torchvision'] = None\n"
        "from pruning_limits.cli import cli\ncli()"
    )
    args = ["prune", str(folder), "--data", "tokens:n=40,test=8,classes=3,vocab=20,length=8", "--sparsity", "0.3"]
    env = {k: v for k, v in os.environ.items() if k not in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS")}
    quiet = subprocess.run([sys.executable, "-c", code, *args, "-o", str(tmp_path / "b"), "-q"], capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code, *args, "-o", str(tmp_path / "a")], capture_output=True, text=True, env=env)
    assert loud.returncode == 0 and "Writing model shards" not in loud.stderr, loud.stderr  # our own lines only
    # in-process (CliRunner, a notebook): transformers' verbosity and the environment as they were
    from transformers.utils import logging as hf_logging

    before = (os.environ.get("TRANSFORMERS_VERBOSITY"), hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
    assert CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "c"), "-q"]).exit_code == 0
    assert (os.environ.get("TRANSFORMERS_VERBOSITY"), hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == before


def tiny_gpt2(cls_name: str = "GPT2ForSequenceClassification", **config):
    config = transformers.GPT2Config(
        n_embd=16, n_layer=1, n_head=2, vocab_size=50, n_positions=16, num_labels=3,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **config,
    )
    torch.manual_seed(0)
    return getattr(transformers, cls_name)(config).eval()


def test_a_gpt2_classifier_without_a_pad_token_is_one_line_with_a_hint():
    """GPT-2's default pad_token_id None lets a batch of one through and refuses larger ones:
    a traceback in the analysis before, now a line at the data check (which runs two samples)."""
    from pruning_limits.data import check_data_fits_model, make_bundle

    tokens, labels = torch.randint(1, 50, (6, 8), generator=torch.Generator().manual_seed(0)), torch.arange(6) % 3
    with pytest.raises(PruningLimitsError) as info:
        check_data_fits_model(tiny_gpt2(pad_token_id=None), make_bundle((tokens, labels)))
    assert "\n" not in str(info.value)
    assert "shape (2, 8) (two samples of" in str(info.value)
    assert "Cannot handle batch sizes > 1 if no padding token is defined" in str(info.value)
    assert str(info.value).endswith("; set pad_token_id in config.json (a token id the inputs do not hold: each sequence's last token is classified)")
    check_data_fits_model(tiny_gpt2(pad_token_id=0), make_bundle((tokens, labels)))


def test_inputs_holding_the_pad_token_warn_that_no_attention_mask_is_passed(recwarn):
    from pruning_limits.data import check_data_fits_model, load_data, make_bundle

    tokens, labels = torch.randint(1, 50, (6, 8), generator=torch.Generator().manual_seed(0)), torch.arange(6) % 3
    check_data_fits_model(tiny_gpt2(pad_token_id=0), make_bundle((tokens, labels)))
    assert not [w for w in recwarn if "pad token" in str(w.message)]
    tokens[0, 5:] = 0  # a right-padded sequence
    with pytest.warns(RuntimeWarning, match=r"the training inputs hold the model's pad token 0: no attention mask is passed"):
        check_data_fits_model(tiny_gpt2(pad_token_id=0), make_bundle((tokens, labels)))
    recwarn.clear()  # the built-in tokens pad nothing: their token 0 is BERT's pad id by chance
    check_data_fits_model(tiny_bert(), load_data("tokens:n=40,test=8,classes=3,vocab=20,length=8"))
    assert not [w for w in recwarn if "pad token" in str(w.message)]


@pytest.mark.parametrize("model", ["bert", "gpt2"])
def test_sequences_longer_than_the_positions_name_the_config_limit(model):
    from pruning_limits.data import check_data_fits_model, make_bundle

    net = tiny_bert() if model == "bert" else tiny_gpt2(pad_token_id=0)
    key = "max_position_embeddings" if model == "bert" else "n_positions"
    tokens, labels = torch.randint(1, 20, (6, 20), generator=torch.Generator().manual_seed(0)), torch.arange(6) % 3
    with pytest.raises(PruningLimitsError) as info:
        check_data_fits_model(net, make_bundle((tokens, labels)))
    assert "\n" not in str(info.value)
    assert str(info.value).endswith(f"; the sequences have 20 tokens, more than config.json's {key} 16")
    assert "token indices" not in str(info.value)


def test_a_language_model_with_class_labels_says_per_token_losses_are_not_supported():
    from pruning_limits.data import check_data_fits_model, make_bundle

    tokens, labels = torch.randint(1, 50, (6, 8), generator=torch.Generator().manual_seed(0)), torch.arange(6) % 3
    with pytest.raises(PruningLimitsError) as info:
        check_data_fits_model(tiny_gpt2("GPT2LMHeadModel"), make_bundle((tokens, labels)))
    assert "\n" not in str(info.value)
    assert "returns shape (1, 8, 50) for one sample, expected (1, C) with C >= 3" in str(info.value)
    assert str(info.value).endswith(
        "; per-token (language-model) losses are not supported by the command line (the Python API takes a loss_fn)"
    )


def test_a_missing_untied_head_is_refused_and_a_tied_one_is_tied(tmp_path):
    """The class's tying keys were taken for tied whatever the config: GPT-2 with
    tie_word_embeddings=False and no lm_head.weight in the file loaded with a random head."""
    from safetensors.torch import load_file

    tied = tiny_gpt2("GPT2LMHeadModel")
    tied.save_pretrained(tmp_path / "tied")
    assert "lm_head.weight" not in load_file(tmp_path / "tied" / "model.safetensors")
    model = read_checkpoint(tmp_path / "tied").module
    assert model.lm_head.weight is model.transformer.wte.weight
    assert torch.equal(model.lm_head.weight, tied.transformer.wte.weight)
    untied = tiny_gpt2("GPT2LMHeadModel", tie_word_embeddings=False)
    untied.save_pretrained(tmp_path / "untied")
    state = load_file(tmp_path / "untied" / "model.safetensors")
    model = read_checkpoint(tmp_path / "untied").module  # whole, it loads its own head
    assert torch.equal(model.lm_head.weight, untied.lm_head.weight) and model.lm_head.weight is not model.transformer.wte.weight
    del state["lm_head.weight"]
    save_file(state, tmp_path / "untied" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(PruningLimitsError, match=r"missing keys \[lm_head\.weight\]$") as info:
        read_checkpoint(tmp_path / "untied")
    assert "\n" not in str(info.value)


def test_a_vit_folder_loads_with_the_keys_transformers_renames_at_load(tmp_path):
    """transformers 5 renames ViT's keys at load (encoder.layer.N.attention.attention.query ->
    layers.N.attention.q_proj) and save_pretrained writes the old names: the file's keys were
    missing and unexpected at once."""
    from safetensors.torch import load_file

    from pruning_limits.checkpoint import save_huggingface

    config = transformers.ViTConfig(
        image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    vit = transformers.ViTForImageClassification(config).eval()
    vit.save_pretrained(tmp_path / "vit")
    assert any(".encoder.layer.0.attention.attention.query." in k for k in load_file(tmp_path / "vit" / "model.safetensors"))
    images = torch.rand(2, 1, 8, 8)
    model = read_checkpoint(tmp_path / "vit").module
    assert torch.equal(model(images).logits, vit(images).logits)
    save_huggingface(tmp_path / "again", model)  # written as save_pretrained writes, read back the same
    assert set(load_file(tmp_path / "again" / "model.safetensors")) == set(load_file(tmp_path / "vit" / "model.safetensors"))
    assert torch.equal(read_checkpoint(tmp_path / "again").module(images).logits, vit(images).logits)


def test_a_float64_huggingface_folder_keeps_its_kept_values_bit_exact(tmp_path):
    """A review: a float64 folder loads into a float32 model, and the pruned folder held its
    values rounded through float32; the kept ones are now the file's own."""
    from safetensors.torch import load_file

    folder, out = tmp_path / "bert", tmp_path / "pruned-bert"
    bert = tiny_bert().double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # values float32 cannot hold
        for parameter in bert.parameters():
            parameter.add_(1e-12 * torch.randn(parameter.shape, dtype=parameter.dtype, generator=g))
    bert.save_pretrained(folder)
    before = load_file(folder / "model.safetensors")
    assert before["classifier.weight"].dtype == torch.float64
    assert not torch.equal(before["classifier.weight"].float().double(), before["classifier.weight"])
    data = "tokens:n=40,test=8,classes=3,vocab=20,length=8"
    result = CliRunner().invoke(cli, ["prune", str(folder), "--data", data, "--sparsity", "0.3", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    after = load_file(out / "model.safetensors")
    changed = [k for k in before if k in after and not torch.equal(after[k][after[k] != 0], before[k][after[k] != 0])]
    assert not changed
    assert bool((after["classifier.weight"] == 0).any()) and after["classifier.weight"].dtype == torch.float64
