"""Data-parallel Hessian products and SLQ over two gloo processes against one process.

Both tests start real processes (``torch.multiprocessing`` and ``torchrun``) on the CPU with the
gloo backend, on small models, so they run in CI without a GPU.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset
import torch.multiprocessing as mp
from torch import nn

from pruning_limits.adaptive import adaptive_slq
from pruning_limits.distributed import DistributedContext, ShardedOperator
from pruning_limits.hessian import HessianOperator
from pruning_limits.limits import sparsity_estimator
from pruning_limits.objective import flat_weights


def _problem():
    torch.manual_seed(0)
    # D = 672: the adaptive run below settles at 99 steps (its minimum) with 3 x 99 = 297 nodes,
    # far from filling the space, where the weights of nearly equal nodes are not well defined
    model = nn.Sequential(nn.Linear(10, 48), nn.Tanh(), nn.Linear(48, 4)).double()
    x = torch.randn(101, 10, dtype=torch.float64)  # 101: the two shards differ in size (50, 51)
    y = torch.randint(0, 4, (101,))
    return model, x, y


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_rank(rank: int, world: int, port: int) -> None:
    """The environment torchrun gives a process of rank ``rank`` of ``world`` (port ``port`` on this host).

    Also turns on :mod:`faulthandler` in the rank: gloo's teardown aborted a rank about once in
    a few hundred starts ("terminate called without an active exception"; 0 of 61 starts of the
    refusal test alone, 2026-12-05), and the Python stack it prints says where, next time.
    """
    faulthandler.enable(all_threads=True)
    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world),
         "LOCAL_RANK": str(rank)}
    )


def _worker(rank: int, world: int, port: int, out: str) -> None:
    _as_rank(rank, world, port)
    torch.set_num_threads(1)
    model, x, y = _problem()
    context = DistributedContext(torch.device("cpu"))
    try:
        local, local_samples, total = context.shard((x, y))
        operator = ShardedOperator(HessianOperator(model, local), local_samples, total, context)
        V = np.random.default_rng(1).standard_normal((operator.dim, 3))
        products = np.column_stack([operator.matvec(V[:, 0]), operator.matmat(V[:, 1:])])
        estimate = sparsity_estimator(flat_weights(model), [0.05])
        spectrum = adaptive_slq(operator, estimate, tolerance=0.002, iterations=120, probes=3, seed=5,
                                sync=context.synced_monitor)
        np.savez(f"{out}-{rank}.npz", products=products, nodes=spectrum.nodes, weights=spectrum.weights,
                 shard=local_samples, steps=spectrum.steps, estimate=spectrum.stopping["final_estimate"])
    finally:
        context.close()


def test_two_gloo_processes_give_the_single_process_products_and_spectrum(tmp_path) -> None:
    import time

    out = str(tmp_path / "rank")
    context = mp.start_processes(_worker, args=(2, _free_port(), out), nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + 300  # a gloo deadlock fails the test instead of hanging the run
    while not context.join(timeout=max(deadline - time.monotonic(), 0.0)):  # raises for a rank that failed
        if time.monotonic() >= deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                    process.join()
            pytest.fail("the two gloo processes did not finish within 300 s")
    ranks = [np.load(f"{out}-{r}.npz") for r in range(2)]
    model, x, y = _problem()
    single = HessianOperator(model, (x, y))
    V = np.random.default_rng(1).standard_normal((single.dim, 3))
    reference = single.matmat(V)
    estimate = sparsity_estimator(flat_weights(model), [0.05])
    spectrum = adaptive_slq(single, estimate, tolerance=0.002, iterations=120, probes=3, seed=5)
    assert [int(r["shard"]) for r in ranks] == [50, 51]
    assert spectrum.stopping["ended"] == "settled"
    for r in ranks:
        assert np.abs(r["products"] - reference).max() <= 1e-8 * np.abs(reference).max()
        assert int(r["steps"]) == spectrum.steps
        np.testing.assert_allclose(r["nodes"], spectrum.nodes, rtol=1e-6, atol=1e-9 * np.abs(spectrum.nodes).max())
        np.testing.assert_allclose(r["weights"], spectrum.weights, atol=1e-6)
        assert list(r["estimate"]) == spectrum.stopping["final_estimate"]
    # every rank ran the same recurrence on the same reduced products
    np.testing.assert_array_equal(ranks[0]["nodes"], ranks[1]["nodes"])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from pruning_limits.checkpoint import save_bundle
    from pruning_limits.data import load_data
    from pruning_limits.lomp import train
    from pruning_limits.models import build_model

    path = tmp_path_factory.mktemp("dist") / "model.pt"
    data = load_data("digits", seed=0)
    model = build_model("mlp:8", data, seed=0)
    train(model, data.train, epochs=3, l1=1e-4, seed=0)
    save_bundle(path, model, model_spec="mlp:8", data_spec="digits", training={"l1": 1e-4, "data_seed": 0})
    return path


def _command(*args: str, processes: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    prefix = launcher + ["-m", "pruning_limits"] if processes > 1 else [sys.executable, "-m", "pruning_limits"]
    return subprocess.run(prefix + list(args), capture_output=True, text=True, env=env, timeout=600)


def test_torchrun_predict_equals_one_process_and_only_rank_0_prints(bundle) -> None:
    args = ("predict", str(bundle), "--json", "--device", "cpu", "--iterations", "60", "--tolerance", "0.2")
    one = _command(*args)
    two = _command(*args, processes=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    single, parallel = json.loads(one.stdout), json.loads(two.stdout)  # one JSON object: rank 1 printed nothing
    assert parallel["sparsity"] == single["sparsity"] and parallel["kept"] == single["kept"]
    assert parallel["spectrum"]["stopping"]["processes"] == 2 and single["spectrum"]["stopping"]["processes"] == 1
    assert parallel["spectrum"]["stopping"]["dtype"] == single["spectrum"]["stopping"]["dtype"] == "float64"  # a small model
    # auto's method is a rule, the same on every rank and recorded (an MLP: the cached double-backward)
    assert parallel["spectrum"]["stopping"]["hessian_methods"] == single["spectrum"]["stopping"]["hessian_methods"] == {
        "matvec": "double-backward", "matmat": "double-backward"}
    assert parallel["num_hvps"] == single["num_hvps"]
    assert parallel["spectrum"]["trace"] == pytest.approx(single["spectrum"]["trace"], rel=1e-8)
    # spectrum too (README and usage.md say so): a fixed run, one JSON object, the one-process spectrum
    args = ("spectrum", str(bundle), "--json", "--device", "cpu", "--iterations", "20", "--probes", "2")
    one, two = _command(*args), _command(*args, processes=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    single, parallel = json.loads(one.stdout), json.loads(two.stdout)
    assert parallel["stopping"]["processes"] == 2 and single["stopping"]["processes"] == 1
    assert parallel["num_hvps"] == single["num_hvps"] and parallel["nodes_per_probe"] == single["nodes_per_probe"]
    assert parallel["trace"] == pytest.approx(single["trace"], rel=1e-8)
    assert parallel["lambda_max"] == pytest.approx(single["lambda_max"], rel=1e-8)
    np.testing.assert_allclose(parallel["nodes"], single["nodes"], rtol=1e-6, atol=1e-9 * np.abs(single["nodes"]).max())


def _dying_worker(rank: int, world: int, port: int, out: str) -> None:
    _as_rank(rank, world, port)
    from pruning_limits._checks import PruningLimitsError

    context = DistributedContext(torch.device("cpu"), timeout=60)
    if rank == 1:
        os._exit(3)  # dies without a word, as a killed process would
    try:
        context.all_reduce(np.ones(4))
    except PruningLimitsError as exc:
        Path(f"{out}-{rank}.txt").write_text(str(exc))
    finally:
        # as the command line's session does; left to the interpreter's exit, gloo's teardown with
        # a dead peer aborted rank 0 (SIGABRT) in 2 of 12 runs, with close() in 0 of 16
        context.close()


def test_a_rank_that_dies_stops_the_others_with_one_line(tmp_path) -> None:
    out = str(tmp_path / "rank")
    context = mp.start_processes(_dying_worker, args=(2, _free_port(), out), nprocs=2, join=False, start_method="spawn")
    for process in context.processes:  # each on its own: the launcher's join would kill rank 0 at once
        process.join(timeout=120)
    assert [p.exitcode for p in context.processes] == [0, 3]
    message = Path(f"{out}-0.txt").read_text()
    assert message.startswith("rank 0: another process stopped") and "\n" not in message


def _cli_worker(rank: int, world: int, port: int, out: str, args: list[str], fault: str) -> None:
    """The command line on rank ``rank`` (``{rank}`` in ``args`` names it), its stderr and exit code
    written to ``out``; ``fault == "products"``: rank 1's third Hessian product meets a library error."""
    _as_rank(rank, world, port)
    torch.set_num_threads(1)
    from pruning_limits.cli import _common, cli

    _common.RANK_ERROR_GRACE_SECONDS = 0.0  # no torchrun here to end the wait, and no one to wait for
    if fault == "products" and rank == 1:  # as the shard-level checks of HessianOperator would, on this shard only
        from pruning_limits._checks import PruningLimitsError

        calls = []
        product = HessianOperator.matmat

        def failing(self, V):
            calls.append(1)
            if len(calls) == 3:
                raise PruningLimitsError("the Hessian-vector product is NaN or infinite at these weights (this shard)")
            return product(self, V)

        HessianOperator.matmat = failing
    code: object = 0
    with open(f"{out}-{rank}.err", "w") as err, contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main([a.format(rank=rank) for a in args], prog_name="pruning-limit")
        except SystemExit as exc:
            code = exc.code
    Path(f"{out}-{rank}.code").write_text(str(code))


@pytest.mark.parametrize("fault", ["loading", "products"])
def test_a_library_error_one_rank_meets_is_said_once_with_its_rank_and_stops_the_others(bundle, tmp_path, fault) -> None:
    """Data damaged on one rank (a NaN in rank 1's copy) or a check that fails on one shard: rank 1
    said nothing, rank 0 waited in torchrun's rendezvous until it was killed (loading), or said
    only 'another process stopped' (products: rank 1 left the group before its grace), a review.
    Now rank 1 says it once with its rank, and rank 0, which joined the group before loading,
    stops on the broken connection at once."""
    from pruning_limits.data import load_data

    digits = load_data("digits", seed=0)
    for rank in range(2):
        x = digits.x_train.numpy().copy()
        if fault == "loading" and rank == 1:
            x[3, 3] = np.nan
        np.savez(tmp_path / f"digits-{rank}.npz", x=x, y=digits.y_train.numpy(), x_test=digits.x_test.numpy(), y_test=digits.y_test.numpy())
    args = ["predict", str(bundle), "--data", str(tmp_path / "digits-{rank}.npz"), "--json", "--device", "cpu", "--iterations", "20"]
    out = str(tmp_path / "rank")
    context = mp.start_processes(_cli_worker, args=(2, _free_port(), out, args, fault), nprocs=2, join=False, start_method="spawn")
    for process in context.processes:  # each on its own: the launcher's join would kill rank 0 at once
        process.join(timeout=120)
    for process in context.processes:
        if process.is_alive():  # before 2026-12-06 rank 0 waited in the rendezvous for a rank that had left
            process.kill()
            process.join()
    said = {r: [line for line in Path(f"{out}-{r}.err").read_text().splitlines() if line.startswith("Error:")] for r in range(2)}
    expected = "training data: inputs contain NaN or infinite values" if fault == "loading" else (
        "the Hessian-vector product is NaN or infinite at these weights (this shard)")
    assert said[1] == [f"Error: rank 1: {expected}"]
    assert len(said[0]) == 1 and said[0][0].startswith("Error: rank 0: another process stopped (")
    assert [Path(f"{out}-{r}.code").read_text() for r in range(2)] == ["1", "1"]


class _Stream(torch.utils.data.IterableDataset):
    """Samples without indices: a shard cannot pick them."""

    def __iter__(self):
        yield from ((torch.zeros(3), torch.tensor(0)) for _ in range(6))


class _Batches(torch.utils.data.Dataset):
    """Items that are batches already, read by a ``batch_size=None`` loader: an index picks a batch."""

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int):
        return torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)


def _disagreeing_worker(rank: int, world: int, port: int, out: str) -> None:
    _as_rank(rank, world, port)
    from pruning_limits._checks import PruningLimitsError

    torch.set_num_threads(1)
    model, x, y = _problem()
    context = DistributedContext(torch.device("cpu"), timeout=60)
    messages = []
    try:
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(rank))  # unseeded shuffling, per rank
        for case, data in (("shuffled", (x[order], y[order])), ("loader", TensorDataset(x[order], y[order]))):
            try:
                context.shard(data)
                messages.append(f"{case}: accepted")
            except PruningLimitsError as exc:
                messages.append(f"{case}: {exc}")
        context.shard((x, y))  # the same data on both ranks pass
        # no indices to split (a raw NotImplementedError), or indices of batches (the weights counted batches)
        for case, data in (("stream", _Stream()), ("batches", torch.utils.data.DataLoader(_Batches(), batch_size=None))):
            try:
                context.shard(data)
                messages.append(f"{case}: accepted")
            except PruningLimitsError as exc:
                messages.append(f"{case}: {exc}")
        for case, tensor in (("weights", model[0].weight), ("bias", model[0].bias)):  # a bias is not analysed, but shapes H
            if rank == 1:
                with torch.no_grad():
                    tensor.view(-1)[0] += 1e-3
            try:
                ShardedOperator(HessianOperator(model, (x, y)), 101, 101, context)
                messages.append(f"{case}: accepted")
            except PruningLimitsError as exc:
                messages.append(f"{case}: {exc}")
            if rank == 1:
                with torch.no_grad():
                    tensor.view(-1)[0] -= 1e-3
        ShardedOperator(HessianOperator(model, (x, y)), 101, 101, context)  # the same weights again pass
        # a training split's loader: its sampler's indices are the samples the shards split (the whole
        # dataset before 2026-12-06, held-out samples too)
        loader = torch.utils.data.DataLoader(
            TensorDataset(x, y), batch_size=8, sampler=torch.utils.data.SubsetRandomSampler(range(10, 50))
        )
        local, local_samples, total = context.shard(loader)
        got = torch.cat([inputs for inputs, _ in local])
        start = 10 + 20 * rank
        part = "its part" if torch.equal(got, x[start : start + 20]) else "other samples"
        messages.append(f"sampler: {total} samples, {local_samples} here, {part}")
        Path(f"{out}-{rank}.txt").write_text("\n".join(messages))
    finally:
        context.close()


def test_ranks_holding_other_data_or_weights_are_refused_on_every_rank(tmp_path) -> None:
    """A data function that shuffles without a seed gave each rank the same samples in another
    order: the shards overlapped and missed, and the spectrum came out 2 % off with no warning
    (λ_max 3.747 against 3.670, a review's 2-rank run). Every rank now refuses it alike."""
    out = str(tmp_path / "rank")
    mp.start_processes(_disagreeing_worker, args=(2, _free_port(), out), nprocs=2, join=True, start_method="spawn")
    texts = [Path(f"{out}-{r}.txt").read_text() for r in range(2)]
    assert texts[0] == texts[1]
    lines = texts[0].splitlines()
    assert lines[0].startswith("shuffled: the data differ between processes (1 of 2 ranks against rank 0)")
    assert lines[1].startswith("loader: the data differ between processes")
    assert lines[2].startswith("stream: data-parallel shards split the samples by index: the data must be an (x, y) pair")
    assert lines[3].startswith("batches: data-parallel shards split the samples by index: got a DataLoader whose items are batches")
    assert lines[4].startswith("weights: the weights differ between processes")
    assert lines[5].startswith("bias: the weights differ between processes")  # accepted before 2026-12-06
    assert lines[6] == "sampler: 40 samples, 20 here, its part"


@pytest.mark.parametrize("structure", ["unstructured", "neuron"])
def test_torchrun_validate_is_data_parallel_and_rank_0_alone_measures_and_writes(bundle, tmp_path, structure) -> None:
    plot = tmp_path / "structures.png"
    args = ("validate", str(bundle), "--structure", structure, "--json", "--device", "cpu", "--iterations", "30", "--probes", "2")
    one = _command(*args)
    two = _command(*args, "--plot", str(plot), processes=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    single, parallel = json.loads(one.stdout), json.loads(two.stdout)  # one JSON object: rank 1 printed nothing
    assert parallel["spectrum"]["stopping"]["processes"] == 2 and single["spectrum"]["stopping"]["processes"] == 1
    assert parallel["spectrum"]["trace"] == pytest.approx(single["spectrum"]["trace"], rel=1e-8)
    if structure == "unstructured":  # rank 0 alone measures: the same sweep as one process
        assert parallel["predicted"]["sparsity"] == single["predicted"]["sparsity"]
        assert parallel["measured"]["limit_by_loss"] == single["measured"]["limit_by_loss"]
    assert plot.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["structures.png"]  # no temporary files


def test_torchrun_says_an_error_once_and_refuses_one_process_commands(bundle, tmp_path) -> None:
    missing = _command("predict", str(tmp_path / "missing.pt"), processes=2)
    assert missing.returncode != 0
    assert [line for line in missing.stderr.splitlines() if line.startswith("Error:")] == [
        f"Error: checkpoint {str(tmp_path / 'missing.pt')!r} does not exist"
    ]
    pruned = _command("prune", str(bundle), "--sparsity", "0.5", "-o", str(tmp_path / "p.pt"), processes=2)
    assert pruned.returncode != 0 and not (tmp_path / "p.pt").exists()
    assert [line for line in pruned.stderr.splitlines() if line.startswith("Error:")] == [
        "Error: prune runs in one process, got WORLD_SIZE=2 from a launcher (torchrun runs predict, spectrum and validate)"
    ]
    # rank 1, stopped by torchrun while it reported the same error, printed a traceback of
    # PruningLimitsError and Terminated (3 of 3 runs); torchrun's own ChildFailedError report stays
    assert "PruningLimitsError" not in pruned.stderr and "Terminated" not in pruned.stderr


@pytest.mark.parametrize(
    ("rank", "args", "code", "printed"),
    [
        ("0", ["predict", "missing.pt"], 1, "Error: checkpoint 'missing.pt' does not exist\n"),
        # every rank meets it: rank 0 alone says it, and torchrun stops rank 1 while it waits (143)
        ("1", ["predict", "missing.pt"], 143, ""),
        ("1", ["predict", "--no-such-option"], 143, ""),  # a usage error waited for nothing before (exit 2 at once)
        ("1", ["--version"], 0, ""),  # printed once per rank before
        ("1", ["predict", "--help"], 0, ""),
        ("0", ["train", "-o", "m.pt"], 1, "Error: train runs in one process, got WORLD_SIZE=2 from a launcher"),
    ],
)
def test_under_a_launcher_rank_0_alone_prints_what_every_rank_meets(monkeypatch, tmp_path, rank, args, code, printed) -> None:
    from click.testing import CliRunner

    from pruning_limits.cli import _common, _pipeline, cli
    from pruning_limits.cli._common import Terminated

    def stopped() -> None:  # rank 0 exited on the same error: torchrun's SIGTERM ends the others' wait
        raise Terminated

    monkeypatch.setattr(_common, "_wait_for_rank_0", stopped)
    monkeypatch.setattr(_pipeline, "join", lambda settings: None)  # the group before loading: no peers here
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    result = CliRunner().invoke(cli, args, prog_name="pruning-limit")
    assert result.exit_code == code
    assert result.stdout == "" and result.stderr.startswith(printed) and (printed or result.stderr == "")
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["predict", "missing.pt"], 1, "Error: rank 1: checkpoint 'missing.pt' does not exist\n"),
        (["predict", "m.pt", "--device", "gpu"], 2, "Error: rank 1: Invalid value for '--device'"),
    ],
)
def test_under_a_launcher_a_rank_that_rank_0_did_not_stop_says_the_error_itself(monkeypatch, tmp_path, args, code, line) -> None:
    """An error rank 0 does not meet (data damaged on one rank, a check on one shard) was never
    printed: rank 1 waited in silence, and rank 0 waited in the group until torchrun killed it (a
    review). Past its grace (0 here) a rank other than 0 says it, usage errors too, which no
    longer exit at once (that stopped rank 0 before its line when rank 0 started late)."""
    from click.testing import CliRunner

    from pruning_limits.cli import _common, _pipeline, cli

    monkeypatch.setattr(_common, "RANK_ERROR_GRACE_SECONDS", 0.0)
    monkeypatch.setattr(_pipeline, "join", lambda settings: None)  # the group before loading: no peers here
    waits = []
    wait = _common._wait_for_rank_0
    monkeypatch.setattr(_common, "_wait_for_rank_0", lambda: (waits.append(1), wait())[1])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    result = CliRunner().invoke(cli, args, prog_name="pruning-limit")
    assert result.exit_code == code and waits == [1]
    assert result.stdout == "" and result.stderr.startswith(line) and result.stderr.count("\n") == 1


def test_more_processes_than_gpus_are_refused_in_one_line(monkeypatch) -> None:
    """torch's multi-sentence 'invalid device ordinal' on the ranks past the GPU count, while
    rank 0 waited in the rendezvous (a review, read without a GPU); with LOCAL_WORLD_SIZE every
    process refuses alike, rank 0 too, so that rank 0 says it once."""
    from pruning_limits._checks import PruningLimitsError

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank, per_node in (("0", "2"), ("1", None)):  # torchrun's LOCAL_WORLD_SIZE; another launcher's LOCAL_RANK alone
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", rank)
        if per_node is None:
            monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        else:
            monkeypatch.setenv("LOCAL_WORLD_SIZE", per_node)
        with pytest.raises(PruningLimitsError, match=r"2 processes on this node need 2 GPUs, but this process sees 1 CUDA device\(s\): "
                           r"start at most 1 process per node \(--nproc-per-node\)$") as refused:  # "1 processes" before
            DistributedContext(torch.device("cuda"))  # before CUDA or the group is touched
        assert "\n" not in str(refused.value)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    with pytest.raises(PruningLimitsError, match=r"sees 2 CUDA device\(s\): start at most 2 processes per node \(--nproc-per-node\)$"):
        DistributedContext(torch.device("cuda"))


def test_a_lost_peer_is_said_by_every_rank_that_meets_it(monkeypatch, capsys) -> None:
    from pruning_limits.cli._common import Console, _run
    from pruning_limits.distributed import ProcessGroupError

    def lost(console: Console) -> None:
        raise ProcessGroupError("rank 1: another process stopped (Connection closed by peer); nothing was written")

    def memory(console: Console) -> None:
        raise RuntimeError("out of memory on this rank")

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    for command, line in ((lost, "Error: rank 1: another process stopped"), (memory, "Error: rank 1: out of memory on this rank")):
        with pytest.raises(SystemExit) as stopped:
            _run(command, (), {}, Console(quiet=True, main=False), debug=False)
        assert stopped.value.code == 1 and capsys.readouterr().err.startswith(line)
    # rank 0's own (it printed 'Error: out of memory ...' beside rank 1's 'Error: rank 1: another process stopped')
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit) as stopped:
        _run(memory, (), {}, Console(quiet=True, main=True), debug=False)
    assert stopped.value.code == 1 and capsys.readouterr().err == "Error: rank 0: out of memory on this rank\n"
    monkeypatch.delenv("WORLD_SIZE")  # one process: no rank to name
    with pytest.raises(SystemExit) as stopped:
        _run(memory, (), {}, Console(quiet=True, main=True), debug=False)
    assert stopped.value.code == 1 and capsys.readouterr().err == "Error: out of memory on this rank\n"


def test_a_sigterm_while_an_error_is_reported_ends_quietly(monkeypatch, capsys) -> None:
    """torchrun stops the other ranks once one exits; the signal may land in the error path."""
    from pruning_limits._checks import PruningLimitsError
    from pruning_limits.cli import _common
    from pruning_limits.cli._common import Console, Terminated, _run

    def fails(console: Console) -> None:
        raise PruningLimitsError("prune runs in one process")

    def signalled(exc: BaseException) -> bool:
        raise Terminated

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(_common, "_local_to_rank", signalled)
    with pytest.raises(SystemExit) as stopped:
        _run(fails, (), {}, Console(quiet=True, main=False), debug=False)
    assert stopped.value.code == 143 and capsys.readouterr().err == ""


def test_sigterm_unwinds_the_run_and_leaves_no_temporary_file(bundle, tmp_path) -> None:
    import signal

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    command = [sys.executable, "-m", "pruning_limits", "predict", str(bundle), "-v", "--device", "cpu",
               "--iterations", "300", "--probes", "8", "--tolerance", "0.001", "--plot", str(tmp_path / "p.png")]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    for line in process.stderr:  # the handler is in place once the command logs
        if "estimating the Hessian spectrum" in line:
            break
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 143, rest
    assert [line for line in rest.splitlines() if line.startswith("Error:")] == ["Error: stopped by SIGTERM"]
    assert list(tmp_path.iterdir()) == []


def test_a_gpu_index_under_a_launcher_is_refused(monkeypatch) -> None:
    from pruning_limits._checks import PruningLimitsError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(PruningLimitsError, match="give --device cuda, got cuda:1"):
        DistributedContext(torch.device("cuda", 1))  # refused before CUDA or the group is touched


def test_the_weights_fingerprint_sees_the_fixed_tensors_and_takes_any_values() -> None:
    """A bias beside a mask buffer of -inf and float64's lowest: a change in the bias shows (a
    common sum would swallow it), and two copies agree (NaN sums agree with nothing)."""
    from pruning_limits.distributed import weights_fingerprint

    weights = torch.randn(10, dtype=torch.float64)
    fixed = {"mask": torch.tensor([0.0, float("-inf"), torch.finfo(torch.float64).min]), "bias": torch.randn(3, dtype=torch.float64)}
    first = weights_fingerprint(weights, fixed)
    np.testing.assert_array_equal(first, weights_fingerprint(weights.clone(), {k: v.clone() for k, v in fixed.items()}))
    assert np.isfinite(first).all()
    moved = {**fixed, "bias": fixed["bias"] + torch.tensor([1e-3, 0.0, 0.0], dtype=torch.float64)}
    assert not np.allclose(weights_fingerprint(weights, moved), first, rtol=1e-9, atol=0.0)


def test_the_data_fingerprint_sees_order_and_takes_any_samples() -> None:
    """Order-sensitive for an (x, y) pair (read in chunks); a Dataset's samples of any size or
    kind (a padding collate_fn's variable-length tensors, dicts) were stacked and failed."""
    from torch.utils.data import DataLoader, Dataset

    from pruning_limits.distributed import FINGERPRINT_CHUNK, data_fingerprint

    x = torch.randn(FINGERPRINT_CHUNK + 7, 5)  # more than one chunk
    y = torch.randint(0, 3, (len(x),))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    assert (data_fingerprint((x, y), len(x)) != data_fingerprint((x[order], y[order]), len(x))).any()
    np.testing.assert_array_equal(data_fingerprint((x, y), len(x)), data_fingerprint((x.clone(), y.clone()), len(x)))

    class Tokens(Dataset):
        def __init__(self, shift: int) -> None:
            self.shift = shift

        def __len__(self) -> int:
            return 25

        def __getitem__(self, i: int) -> dict:
            j = (i + self.shift) % 25
            return {"input_ids": torch.arange(j + 5), "label": j % 2}

    padded = DataLoader(Tokens(0), batch_size=4, collate_fn=lambda batch: batch)
    assert (data_fingerprint(padded, 25) != data_fingerprint(Tokens(3), 25)).any()
    np.testing.assert_array_equal(data_fingerprint(padded, 25), data_fingerprint(Tokens(0), 25))
