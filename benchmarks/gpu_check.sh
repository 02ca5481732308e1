#!/usr/bin/env bash
# One prepared check on a bare CUDA machine, at most 8 minutes, log under $OUT (or a temp folder).
#
#   bash benchmarks/gpu_check.sh
#
# 0. without a CUDA device prints "SKIPPED: no CUDA device" and exits 0 after the torch check,
# 1. installs the package offline without its dependencies (the device machines reach no index;
#    their image holds torch and the rest; torch is installed only if missing, where an index is);
#    where that install fails (a stock venv: setuptools without 'wheel') it lays the pure-Python
#    package out in a temporary folder (setuptools' build_py: pruning_limits.cli is cli/) and runs
#    from there with PYTHONPATH, so that the checkout's pruning_limits/ does not shadow it,
# 2. runs the CUDA-marked tests (tests/test_devices.py),
# 3. times a prediction for a CIFAR-style ResNet-18 (11.2 M weights) on 1 000 generated
#    32x32x3 images on the GPU: operator build, seconds per product, products to convergence,
#    total time (issue 20's target: <= 3 minutes on an H200), float32 products, float64 Lanczos
#    recurrence (its basis, float32 for float32 products, is far above the 1 GiB budget at this D).
# Time limits (475 s in all, the worst case): nvidia-smi 10 s, torch present 20 s, torch install
# 60 s (only if missing), CUDA check 20 s, package 20 s (and 10 s for build_py where it fails),
# dependency check 20 s, tests 75 s, timing 240 s.
# Exit status: 0 when everything ran and passed (or no CUDA device), 1 when a step failed.
set -u
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
cd "$(dirname "$0")/.."
REPO="$(pwd)"
echo "gpu_check: $(date -u +%FT%TZ) in $(pwd), log $LOG"
timeout 10 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi not found"

PY=python3
if ! timeout 20 $PY -c "import torch" 2>/dev/null; then
  echo "torch missing: installing it"
  timeout 60 $PY -m pip install -q torch || { echo "FAILED: torch install"; exit 1; }
fi
timeout 20 $PY -c "import sys, torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.device_count()); sys.exit(0 if torch.cuda.is_available() else 3)"
status=$?
if [ "$status" -eq 3 ]; then
  echo "SKIPPED: no CUDA device"
  exit 0
elif [ "$status" -ne 0 ]; then
  echo "FAILED: CUDA check (exit code $status)"; exit 1
fi
# the device machines reach no package index: install this package alone, offline, over the
# image's own torch, click, scipy, matplotlib, scikit-learn, tqdm and pytest (mnist1d, absent
# there, is imported only by the mnist1d data spec, which this check does not use)
if ! timeout 20 $PY -m pip install -q --no-index --no-deps --no-build-isolation -e .; then
  # PYTHONPATH=$REPO alone would miss pruning_limits.cli (setup.cfg maps it to cli/)
  site="$(mktemp -d)"
  echo "NOTE: pip install -e . (offline, no dependencies) failed; using PYTHONPATH=$site instead: the pure-Python"
  echo "      package laid out by setuptools' build_py (no wheel needed), run from there, not from $REPO"
  timeout 10 $PY -c "from setuptools import setup; setup()" -q build_py --build-lib "$site" \
    || { echo "FAILED: setuptools build_py of the package"; exit 1; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  cd "$site"
fi
timeout 20 $PY -c "import click, scipy, matplotlib, sklearn, tqdm, pytest, pruning_limits.cli" \
  || { echo "FAILED: a dependency is missing on this machine"; exit 1; }

echo "== CUDA-marked tests"
timeout 75 $PY -m pytest -q -m cuda "$REPO/tests/test_devices.py" -rs
tests=$?
echo "tests exit code $tests"

echo "== ResNet-18 timing"
timeout 240 $PY - "$REPO/benchmarks/bench_scale.py" <<'PYEOF'
import importlib.util, sys, time, torch
spec = importlib.util.spec_from_file_location("bench_scale", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_scale"] = bench  # its dataclasses look the module up
spec.loader.exec_module(bench)
from pruning_limits import predict_limit
from pruning_limits.adaptive import adaptive_slq
from pruning_limits.hessian import HessianOperator
from pruning_limits.limits import sparsity_estimator
from pruning_limits.objective import batch_std_epsilon, flat_weights, loss_gradient
import numpy as np
device = torch.device("cuda")
model, source = bench.resnet("resnet18")
x, y = bench.images(1000)
model = model.to(device).eval()  # float32 products; the Lanczos recurrence runs in float64 on the CPU
data = (x.to(device), y.to(device))
print("model source", source, "weights", sum(p.numel() for p in model.parameters()))
total = time.perf_counter()
eps = batch_std_epsilon(model, data)
gradient = loss_gradient(model, data)
start = time.perf_counter()
# double-backward: on the GPU the convolutions' double backward runs in cuDNN; auto would trace
op = HessianOperator(model, data, method="double-backward")
torch.cuda.synchronize(); build = time.perf_counter() - start
v = np.random.default_rng(0).standard_normal(op.dim)
op.matvec(v); torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(3):
    op.matvec(v)
torch.cuda.synchronize(); per = (time.perf_counter() - t) / 3
print(f"D = {op.dim}, build {build:.1f} s, {per:.3f} s per product", flush=True)
weights = flat_weights(model)
spectrum = adaptive_slq(op, sparsity_estimator(weights, [eps], gradient=gradient))
p = predict_limit(model, data, dtype=None, spectrum=spectrum, gradient=gradient, epsilon=eps)
stop = spectrum.stopping
print(f"prediction {time.perf_counter() - total:.1f} s in all: s* {p.sparsity:.4f}, {spectrum.num_hvps} products "
      f"(SLQ's; {op.num_hvps} with the 4 timing products), "
      f"{spectrum.probes} probes x {spectrum.steps} steps, {spectrum.rule} {spectrum.reorthogonalization}, "
      f"converged {stop['converged']} ({stop['ended']}), peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
PYEOF
timing=$?
echo "timing exit code $timing"
echo "gpu_check done: $(date -u +%FT%TZ)"
if [ "$tests" -ne 0 ] || [ "$timing" -ne 0 ]; then
  echo "FAILED: tests exit code $tests, timing exit code $timing (124 is a timeout)"
  exit 1
fi
