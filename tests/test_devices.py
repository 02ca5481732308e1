"""``--device`` and the analysis dtype: CPU here, CUDA where a device exists (marked ``cuda``)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from pruning_limits._checks import PruningLimitsError
from pruning_limits.cli import cli
from pruning_limits.devices import FLOAT64_MAX_PARAMETERS, analysis_dtype, resolve_device
from pruning_limits.hessian import HessianOperator
from pruning_limits.spectrum import dense_hessian, slq

from conftest import one_line

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_resolve_device_and_dtype() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    for bad in ("tpu", "cuda:x", "cuda:-1"):
        with pytest.raises(PruningLimitsError, match=(
            rf"^device must be auto \(CUDA when available\), cpu, cuda or cuda:INDEX, got {re.escape(repr(bad))}$"
        )) as info:
            resolve_device(bad)
        one_line(info)
    cpu, cuda, small, large = torch.device("cpu"), torch.device("cuda"), FLOAT64_MAX_PARAMETERS, FLOAT64_MAX_PARAMETERS + 1
    assert analysis_dtype(cpu, torch.float32) == torch.float64  # size unknown: small
    assert analysis_dtype(cpu, torch.float32, parameters=small) == torch.float64
    assert analysis_dtype(cpu, torch.float32, parameters=large) == torch.float32  # float32 products above the size
    assert analysis_dtype(cpu, torch.float64, parameters=large) == torch.float64  # a float64 model stays float64
    assert analysis_dtype(cpu, torch.float16, parameters=large) == torch.float32  # never half-precision products
    assert analysis_dtype(cpu, torch.float32, "float64", parameters=large) == torch.float64
    assert analysis_dtype(cpu, torch.float32, "float32", parameters=small) == torch.float32
    assert analysis_dtype(cuda, torch.float32) == torch.float32
    assert analysis_dtype(cuda, torch.bfloat16) == torch.float32
    assert analysis_dtype(cuda, torch.float32, "float64") == torch.float64
    assert analysis_dtype(cuda, torch.float64) == torch.float64  # on CUDA too (docs/usage.md, --dtype)
    with pytest.raises(PruningLimitsError, match=r"^dtype must be one of auto, float64, float32, got 'half'$") as info:
        analysis_dtype(torch.device("cpu"), torch.float32, "half")
    one_line(info)


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "cuda:-1", "cpu:0"])
def test_a_name_that_is_no_device_is_a_usage_error(name: str) -> None:
    result = CliRunner().invoke(cli, ["predict", "nope.pt", "--device", name])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: Invalid value for '--device': expected auto, cpu, cuda or cuda:INDEX, got {name!r}"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_one_line() -> None:
    with pytest.raises(PruningLimitsError, match=(
        rf"^device 'cuda' needs CUDA, which this torch \({re.escape(torch.__version__)}\) cannot use on this machine: use --device cpu$"
    )) as info:
        resolve_device("cuda")
    one_line(info)
    result = CliRunner().invoke(cli, ["predict", "nope.pt", "--device", "cuda:1"])
    assert result.exit_code == 1 and result.stderr.strip().startswith("Error: device 'cuda:1' needs CUDA")
    assert len(result.stderr.strip().splitlines()) == 1


def _problem(device: str, dtype: torch.dtype):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3)).to(device, dtype)
    x = torch.randn(64, 6).to(device, dtype)
    y = torch.randint(0, 3, (64,)).to(device)
    return model, x, y


@pytest.mark.cuda
@needs_cuda
def test_cuda_products_match_the_cpu_in_float64() -> None:
    model0, x0, y0 = _problem("cpu", torch.float64)
    cpu = dense_hessian(HessianOperator(model0, (x0, y0)))
    model, x, y = _problem("cuda", torch.float64)
    operator = HessianOperator(model, (x, y))
    assert operator.device.type == "cuda"
    np.testing.assert_allclose(dense_hessian(operator), cpu, rtol=1e-9, atol=1e-12)


@pytest.mark.cuda
@needs_cuda
def test_float32_products_on_cuda_with_a_float64_lanczos_basis() -> None:
    """float32 products: the spectrum agrees with the float64 CPU one to float32 rounding."""
    model0, x0, y0 = _problem("cpu", torch.float64)
    reference = slq(HessianOperator(model0, (x0, y0)), iterations=20, probes=2)
    model, x, y = _problem("cuda", torch.float32)
    spectrum = slq(HessianOperator(model, (x, y)), iterations=20, probes=2)
    assert spectrum.nodes.dtype == np.float64
    # The bounds: float32 products err by a fraction of the operator's norm, max|λ|, not of each
    # node, and the SLQ trace is D times the probes' mean Rayleigh quotient, so its error is at most
    # D times the products' error: hence 1e-4 · max|λ| · D, a relative product error of 1e-4
    # (about 840 float32 epsilons). Not tightened without a GPU run: the same float32 problem on
    # the CPU (a proxy; cuBLAS sums in other orders) errs by 3e-8 relative in λ_max and 3e-9 of
    # max|λ| · D in the trace (measured with torch 2.13 on the CPU); re-measure with
    # benchmarks/gpu_check.sh before tightening.
    scale = np.abs(reference.nodes).max()
    np.testing.assert_allclose(spectrum.lambda_max, reference.lambda_max, rtol=1e-4)
    assert abs(spectrum.trace().value - reference.trace().value) <= 1e-4 * scale * reference.dim


def test_the_command_lines_analysis_copy_is_float32_above_the_size_and_float64_for_exact() -> None:
    from pruning_limits.cli._pipeline import analysis_copy

    def dtype(model, settings, exact=False):
        return next(analysis_copy(model, settings, exact=exact).parameters()).dtype

    large = torch.nn.Sequential(torch.nn.Linear(FLOAT64_MAX_PARAMETERS, 1, bias=True))  # one parameter too many
    small = torch.nn.Sequential(torch.nn.Linear(FLOAT64_MAX_PARAMETERS - 1, 1, bias=True))  # exactly at the size
    cpu = {"device": torch.device("cpu")}
    assert dtype(small, cpu) == torch.float64
    assert dtype(large, cpu) == torch.float32
    assert dtype(large, cpu, exact=True) == torch.float64  # the dense Hessian of --exact
    assert dtype(large, {**cpu, "dtype": "float64"}) == torch.float64
    assert next(large.parameters()).dtype == torch.float32  # the user's model is not touched


@pytest.mark.cuda
@needs_cuda
def test_validate_on_cuda_measures_and_diagnoses_on_cuda(tmp_path, monkeypatch) -> None:
    """`validate --device cuda` ran the Taylor products, the gradient, ε and the sweep on the CPU
    (the loaded model's device), and `predict --device cuda` its batch-std ε (a review, 2026-12-06)."""
    from pruning_limits import hessian, objective

    bundle = tmp_path / "m.pt"
    result = CliRunner().invoke(cli, ["train", "--model", "mlp:8", "--epochs", "2", "--l1", "1e-4", "-o", str(bundle), "-q"])
    assert result.exit_code == 0, result.output
    devices = []
    build, epsilon = hessian.HessianOperator.__init__, objective.batch_std_epsilon

    def recorded_build(self, model, *args, **kwargs):
        devices.append(("operator", next(model.parameters()).device.type))
        build(self, model, *args, **kwargs)

    def recorded_epsilon(model, *args, **kwargs):
        devices.append(("epsilon", next(model.parameters()).device.type))
        return epsilon(model, *args, **kwargs)

    monkeypatch.setattr(hessian.HessianOperator, "__init__", recorded_build)
    monkeypatch.setattr(objective, "batch_std_epsilon", recorded_epsilon)
    for command in (["validate"], ["validate", "--structure", "neuron"], ["predict"]):
        devices.clear()
        result = CliRunner().invoke(cli, [*command, str(bundle), "--device", "cuda", "--iterations", "5", "--probes", "2", "-q"])
        assert result.exit_code == 0, result.output
        assert devices and all(kind == "cuda" for _, kind in devices), (command, devices)


def test_a_cuda_index_with_a_leading_zero_names_that_device(monkeypatch) -> None:
    """`cuda:01` passed the name check, then torch refused it with a raw RuntimeError (a review,
    2026-12-06): the index is read as a number, as the name check reads it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:01") == torch.device("cuda", 1) == resolve_device(" CUDA:1 ")
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(PruningLimitsError, match="has 2 CUDA device"):
        resolve_device("cuda:002")


def test_a_torch_device_is_read_by_its_type_and_index(monkeypatch) -> None:
    """``torch.device("cpu", 0)`` was refused as ``'cpu:0'`` (a review, 2026-12-07)."""
    assert resolve_device(torch.device("cpu", 0)) == torch.device("cpu") == resolve_device(torch.device("cpu"))
    with pytest.raises(PruningLimitsError, match=r"device must be .*, got 'meta'$"):
        resolve_device(torch.device("meta"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert resolve_device(torch.device("cuda")) == torch.device("cuda")
    with pytest.raises(PruningLimitsError, match="has 2 CUDA device"):
        resolve_device(torch.device("cuda", 2))
