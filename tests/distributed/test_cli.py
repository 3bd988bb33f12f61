"""`edgegnn train --distributed` under torchrun (gloo on 127.0.0.1): the checkpoint it writes, a
killed rank and the resume, and the bad inputs every rank reports alike."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DATA = "synthetic:users=600,items=300,seed=2"


def card(tmp_path: Path, loss: str = "whole-data", epochs: int = 30, kind: str = "lightgcn") -> Path:
    path = tmp_path / f"{kind}-{loss}-{epochs}.yaml"
    model = f"  type: {kind}\n  embedding_dim: 16\n" + ("  num_layers: 2\n" if kind == "lightgcn" else "")
    path.write_text(f"name: {kind}-test\nmodel:\n{model}training:\n  loss: {loss}\n  epochs: {epochs}\n"
                    "  eval_every: 2\n  batch_size: 1024\n")
    return path


def torchrun(ranks: int, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", str(ranks), "-m", "edgegnn",
                           "train", "--distributed", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def plain_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "edgegnn"), "train", *args], capture_output=True, text=True, timeout=600,
                          cwd=REPO)


def state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize("kind,loss,epochs", [("lightgcn", "whole-data", 12), ("lightgcn", "bpr", 2),
                                               ("sage", "whole-data", 6), ("sage", "bpr", 2),
                                               ("gat", "whole-data", 6), ("gat", "bpr", 2)])
def test_one_rank_under_torchrun_writes_the_plain_paths_checkpoint_bit_for_bit(tmp_path, kind, loss, epochs):
    model = card(tmp_path, loss=loss, epochs=epochs, kind=kind)
    plain = plain_train("--model", str(model), "--data", DATA, "--out", str(tmp_path / "plain.pt"))
    assert plain.returncode == 0, plain.stderr
    one = torchrun(1, "--model", str(model), "--data", DATA, "--out", str(tmp_path / "one.pt"))
    assert one.returncode == 0, one.stderr[-2000:]
    expected, actual = state(tmp_path / "plain.pt"), state(tmp_path / "one.pt")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    plain_metrics = torch.load(tmp_path / "plain.pt", weights_only=True)["metrics"]
    one_metrics = torch.load(tmp_path / "one.pt", weights_only=True)["metrics"]
    assert one_metrics["test"] == plain_metrics["test"] and one_metrics["valid"] == plain_metrics["valid"]
    assert one_metrics["distributed"]["world_size"] == 1


def test_two_ranks_write_a_checkpoint_that_evaluate_reads_with_the_plain_paths_metrics(tmp_path):
    model = card(tmp_path, loss="bpr", epochs=4)
    plain = plain_train("--model", str(model), "--data", DATA, "--out", str(tmp_path / "plain.pt"))
    two = torchrun(2, "--model", str(model), "--data", DATA, "--out", str(tmp_path / "two.pt"), "--json")
    assert plain.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    expected, actual = state(tmp_path / "plain.pt"), state(tmp_path / "two.pt")
    torch.testing.assert_close(actual["gnn.embedding.weight"], expected["gnn.embedding.weight"], rtol=1e-5,
                               atol=1e-5)
    evaluated = subprocess.run([str(BIN / "edgegnn"), "evaluate", str(tmp_path / "two.pt"), "--json"],
                               capture_output=True, text=True, timeout=300, cwd=REPO)
    assert evaluated.returncode == 0, evaluated.stderr
    assert '"recall@20"' in evaluated.stdout
    assert '"pairs_per_rank"' in two.stdout                # printed once, by rank 0


def _worker_of_rank(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of torchrun's worker with RANK=rank."""
    for child in Path(f"/proc/{launcher.pid}/task").glob("*/children"):
        for pid in child.read_text().split():
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if f"RANK={rank}".encode() in environ:
                return int(pid)
    raise AssertionError(f"no worker with RANK={rank}")


def test_a_killed_rank_fails_the_job_in_one_line_and_resume_ends_where_an_unbroken_run_does(tmp_path):
    model = card(tmp_path, epochs=80)
    data = "synthetic:users=6000,items=1500,seed=2"
    checkpoints = tmp_path / "checkpoints"
    args = ["--model", str(model), "--data", data, "--checkpoint-dir", str(checkpoints)]
    launcher = subprocess.Popen([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "edgegnn",
                                 "train", "--distributed", *args, "--out", str(tmp_path / "broken.pt")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.monotonic() + 300
    while not (checkpoints / "epoch-000004").is_dir():
        assert launcher.poll() is None and time.monotonic() < deadline, "the job ended before its 2nd checkpoint"
        time.sleep(0.05)
    os.kill(_worker_of_rank(launcher, 1), signal.SIGKILL)
    _, stderr = launcher.communicate(timeout=300)
    assert launcher.returncode != 0
    lines = error_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("error: rank 0 of 2: "), stderr[-3000:]
    assert "resume with --resume --checkpoint-dir" in stderr
    assert not (tmp_path / "broken.pt").exists()
    assert not list(checkpoints.glob(".*partial"))          # a half-written one is never left looking complete
    shutil.copytree(checkpoints, tmp_path / "copy")

    resumed = torchrun(2, *args, "--resume", "--out", str(tmp_path / "resumed.pt"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    unbroken = torchrun(2, "--model", str(model), "--data", data, "--out", str(tmp_path / "unbroken.pt"))
    assert unbroken.returncode == 0, unbroken.stderr[-2000:]
    expected, actual = state(tmp_path / "unbroken.pt"), state(tmp_path / "resumed.pt")
    assert torch.equal(expected["gnn.embedding.weight"], actual["gnn.embedding.weight"])
    newest = sorted(path.name for path in (tmp_path / "copy").iterdir())[-1]
    assert resumed_from(tmp_path / "resumed.pt") == {"checkpoint": newest, "epoch": int(newest.split("-")[1]),
                                                     "world_size": 2}
    assert f"resumed from {newest}" in resumed.stdout

    # The same checkpoint resumed by one rank: resharded, it ends where the unbroken run does (to
    # float32 rounding: the sums run in another order).
    resharded = torchrun(1, "--model", str(model), "--data", data, "--checkpoint-dir", str(tmp_path / "copy"),
                         "--resume", "--out", str(tmp_path / "one.pt"))
    assert resharded.returncode == 0, resharded.stderr[-2000:]
    one = state(tmp_path / "one.pt")["gnn.embedding.weight"]
    torch.testing.assert_close(one, expected["gnn.embedding.weight"], rtol=1e-4, atol=1e-5)
    assert torch.load(tmp_path / "one.pt", weights_only=True)["metrics"]["distributed"]["world_size"] == 1
    assert resumed_from(tmp_path / "one.pt")["world_size"] == 2


def resumed_from(path: Path) -> dict:
    return torch.load(path, weights_only=True)["metrics"]["distributed"]["resumed_from"]


@pytest.mark.parametrize("kind", ["sage", "gat"])
def test_a_job_with_replicated_layers_resumed_from_an_earlier_checkpoint_ends_where_it_ended(tmp_path, kind):
    """GraphSAGE's and graph attention's replicated layers and their Adam moments go through DCP too
    (graph attention's table has no user rows): the newest checkpoint of a finished job removed, the
    job resumed from the one before ends bit for bit where it ended (and, resharded onto one rank,
    to float32 rounding)."""
    model = card(tmp_path, kind=kind, epochs=8)
    checkpoints = tmp_path / "checkpoints"
    args = ["--model", str(model), "--data", DATA, "--checkpoint-dir", str(checkpoints)]
    whole = torchrun(2, *args, "--out", str(tmp_path / "whole.pt"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    kept = sorted(path.name for path in checkpoints.iterdir())
    assert kept == ["epoch-000006", "epoch-000008"]
    shutil.rmtree(checkpoints / kept[-1])
    shutil.copytree(checkpoints, tmp_path / "copy")
    again = torchrun(2, *args, "--resume", "--out", str(tmp_path / "again.pt"))
    assert again.returncode == 0, again.stderr[-2000:]
    expected, actual = state(tmp_path / "whole.pt"), state(tmp_path / "again.pt")
    assert expected.keys() == actual.keys() and any(name.startswith("conv") for name in expected)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert resumed_from(tmp_path / "again.pt")["epoch"] == 6
    one = torchrun(1, "--model", str(model), "--data", DATA, "--checkpoint-dir", str(tmp_path / "copy"), "--resume",
                   "--out", str(tmp_path / "one.pt"))
    assert one.returncode == 0, one.stderr[-2000:]
    for name, value in state(tmp_path / "one.pt").items():
        torch.testing.assert_close(value, expected[name], rtol=1e-4, atol=1e-5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ranks_started_with_different_data_files_fail_alike_in_one_line(tmp_path):
    """Each rank launched by hand (as srun would), rank 1 given a file with other bytes."""
    files = []
    for name, extra in (("a.csv", ""), ("b.csv", "9,3\n")):
        rows = "".join(f"{u},{i}\n" for u in range(40) for i in range(u % 7, u % 7 + 6))
        files.append(tmp_path / name)
        files[-1].write_text("user,item\n" + rows + extra)
    port = _free_port()
    ranks = []
    for rank, data in enumerate(files):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
               "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)}
        ranks.append(subprocess.Popen([str(BIN / "edgegnn"), "train", "--distributed", "--model", str(card(tmp_path)),
                                       "--data", str(data), "--out", str(tmp_path / "m.pt"),
                                       "--checkpoint-dir", str(tmp_path / "ck")],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO))
    for process in ranks:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 1, stderr
        lines = error_lines(stderr)
        assert len(lines) == 1 and "rank 1 was started with other data" in lines[0], stderr
        assert "Traceback" not in stderr
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "ck").exists()


def test_more_ranks_than_users_fail_on_every_rank_before_anything_is_written(tmp_path):
    data = tmp_path / "one-user.csv"
    data.write_text("user,item\n" + "".join(f"7,{i}\n" for i in range(30)))
    done = torchrun(2, "--model", str(card(tmp_path)), "--data", str(data), "--out", str(tmp_path / "m.pt"),
                    "--checkpoint-dir", str(tmp_path / "ck"), "--valid-ratio", "0")
    assert done.returncode != 0
    lines = error_lines(done.stderr)
    assert len(lines) == 2 and all("2 ranks for 1 user: a rank would own no users" in line for line in lines), \
        done.stderr[-2000:]
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "ck").exists()


def test_a_denoised_fit_over_the_ranks_is_the_one_process_fit(tmp_path):
    """training.denoise: every fit over the ranks, every rank dropping the same rows; one rank is
    the plain path bit for bit, two drop (nearly) the same rows; with --checkpoint-dir, one line."""
    model = card(tmp_path, epochs=6)
    model.write_text(model.read_text() + "  denoise: 0.2\n")
    plain = plain_train("--model", str(model), "--data", DATA, "--out", str(tmp_path / "plain.pt"))
    one = torchrun(1, "--model", str(model), "--data", DATA, "--out", str(tmp_path / "one.pt"))
    two = torchrun(2, "--model", str(model), "--data", DATA, "--out", str(tmp_path / "two.pt"))
    assert plain.returncode == 0 and one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    expected, actual = (torch.load(tmp_path / f"{name}.pt", weights_only=True) for name in ("plain", "one"))
    for name in expected["state_dict"]:
        assert torch.equal(expected["state_dict"][name], actual["state_dict"][name]), name
    assert actual["metrics"]["denoise"] == expected["metrics"]["denoise"]
    assert expected["metrics"]["denoise"]["dropped_rows"] > 0
    both = torch.load(tmp_path / "two.pt", weights_only=True)
    assert both["metrics"]["denoise"]["dropped_rows"] == expected["metrics"]["denoise"]["dropped_rows"]
    kept = {tuple(pair) for pair in torch.stack([both["train_users"], both["train_items"]], 1).tolist()}
    wanted = {tuple(pair) for pair in torch.stack([expected["train_users"], expected["train_items"]], 1).tolist()}
    assert len(kept & wanted) >= 0.99 * len(wanted)
    refused = torchrun(1, "--model", str(model), "--data", DATA, "--out", str(tmp_path / "m.pt"),
                       "--checkpoint-dir", str(tmp_path / "ck"))
    assert refused.returncode != 0 and not (tmp_path / "m.pt").exists() and not (tmp_path / "ck").exists()
    assert error_lines(refused.stderr) == ["error: --checkpoint-dir: training.denoise=0.2 runs several fits, and a "
                                           "checkpoint directory holds one job's state"], refused.stderr[-2000:]


def test_every_kind_trains_distributed_and_a_kind_added_later_is_refused_in_one_line():
    from types import SimpleNamespace

    from edgegnn.distributed.context import DistributedError
    from edgegnn.distributed.train import DISTRIBUTED_KINDS, check_card
    from edgegnn.kinds import KINDS

    assert set(DISTRIBUTED_KINDS) == set(KINDS)          # a new kind must decide how it distributes
    with pytest.raises(DistributedError, match="model.type='future': distributed training covers lightgcn, sage, "
                                               "gat, graph-filter cards"):
        check_card(SimpleNamespace(model=SimpleNamespace(type="future")))


@pytest.mark.parametrize("missing", ["MASTER_ADDR", "WORLD_SIZE"])
def test_a_missing_rendezvous_variable_is_one_line(tmp_path, missing):
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999", "RANK": "0", "WORLD_SIZE": "1"}
    env.pop(missing)
    done = subprocess.run([str(BIN / "edgegnn"), "train", "--distributed", "--model", str(card(tmp_path)),
                           "--data", DATA, "--out", str(tmp_path / "m.pt")], capture_output=True, text=True,
                          env=env, timeout=300, cwd=REPO)
    assert done.returncode == 1
    assert error_lines(done.stderr) == [f"error: the rendezvous variable {missing} is not set"]
    assert "torchrun --standalone" in done.stderr and not (tmp_path / "m.pt").exists()


def test_a_rendezvous_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "2"}
        done = subprocess.run([str(BIN / "edgegnn"), "train", "--distributed", "--model", str(card(tmp_path)),
                               "--data", DATA, "--out", str(tmp_path / "m.pt")], capture_output=True, text=True,
                              env=env, timeout=300, cwd=REPO)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"error: rank 0 of 2 could not join the process group at "
                                                   f"127.0.0.1:{port} (") and "address already in use" in lines[0]
