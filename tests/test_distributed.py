"""Data parallelism: 2 CPU processes under torchrun (gloo) against one process, same global batch."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aae import checkpoint as ckpt

ARGS = ["train", "--dataset", "digits", "--quiet", "--device", "cpu", "--epochs", "2",
        "--set", "model.encoder_hidden=[64]", "--set", "model.decoder_hidden=[64]",
        "--set", "model.disc_hidden=[32]", "--set", "model.code_dim=2",
        "--set", "train.tsne_points=0", "--set", "train.sample_epochs=[0]", "--batch-size", "32"]


def _env():
    env = {**os.environ, "AAE_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "aae", *ARGS, "--out", str(single)], env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node=2", "-m", "aae", *ARGS, "--out", str(ddp)],
                       env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(ln) for ln in (ddp / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2]
    assert all(ln["processes"] == 2 and ln["replicas_equal"] for ln in lines)
    a, ma = ckpt.latest(single / "checkpoints")
    b, mb = ckpt.latest(ddp / "checkpoints")
    assert ma["global_step"] == mb["global_step"] == 2 * (1498 // 32)
    for k in a:
        if k.startswith("model."):
            assert torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-5), k
    single_lines = [json.loads(ln) for ln in (single / "metrics.jsonl").read_text().splitlines()]
    assert abs(single_lines[-1]["loss_recon"] - lines[-1]["loss_recon"]) < 1e-4


def test_batch_must_split_over_processes(tiny_data, tmp_path, monkeypatch):
    import pytest

    from aae import distributed
    from aae.errors import AAEError
    from aae.training import Trainer

    from conftest import tiny_config

    monkeypatch.setattr(distributed, "setup", lambda device: (distributed.Shard(0, 3), device))
    with pytest.raises(AAEError, match="does not split evenly over 3 processes"):
        Trainer(tiny_config(), tmp_path / "run", data=tiny_data, quiet=True)  # batch 16
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes in /proc")
def test_interrupted_processes_resume_to_the_same_metrics(tmp_path):
    """SIGTERM to both workers mid-run: rank 0 saves every rank's partial-epoch sums, both exit
    cleanly (143, no gloo abort), and the resumed run logs exactly the uninterrupted run's epochs."""
    args = [a if a != "32" else "8" for a in ARGS]  # 187 steps per epoch: a stop lands mid-epoch
    args[args.index("--epochs") + 1] = "3"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              "-m", "aae"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    r = subprocess.run(launch + args + ["--out", str(full)], env=_env(), capture_output=True,
                       text=True, timeout=300)
    # the whole of both ranks' output on failure: one CI run saw rank 1 abort ("terminate called
    # without an active exception") in this uninterrupted run, not reproduced since
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-12000:]
    p = subprocess.Popen(launch + args + ["--out", str(cut)], env=_env(), stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    t0 = time.time()
    while not (cut / "checkpoints" / "epoch_0001.json").exists():
        assert p.poll() is None and time.time() - t0 < 120, p.stderr.read()
        time.sleep(0.05)
    workers = [int(c.name) for c in Path("/proc").iterdir() if c.name.isdigit()
               and str(cut) in _cmdline(c) and "distributed.run" not in _cmdline(c)]
    assert len(workers) == 2
    for pid in workers:
        os.kill(pid, signal.SIGTERM)
    err = p.communicate(timeout=120)[1]
    assert "SIGTERM: saved epoch" in err and "SIGABRT" not in err, err[-3000:]
    _, meta = ckpt.latest(cut / "checkpoints")
    assert meta["epoch"] < 3
    r = subprocess.run(launch + ["train", "--resume", str(cut), "--quiet"], env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    keys = ("epoch", "step", "loss_recon", "loss_disc", "loss_gen", "code_mean", "code_std")
    read = lambda run: [{k: json.loads(ln)[k] for k in keys}  # noqa: E731
                        for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert read(cut) == read(full)


def _cmdline(proc_dir) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
