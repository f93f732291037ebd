"""Faults: kills, full disks, hostile checkpoints, random bytes and random configs."""

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aae import checkpoint as ckpt
from aae import data, fileio
from aae.config import Config
from aae.errors import AAEError
from aae.runs import load_run
from aae.training import Trainer

from conftest import tiny_config

TRAIN = [sys.executable, "-m", "aae", "train", "--dataset", "digits", "--quiet", "--device", "cpu",
         "--set", "model.encoder_hidden=[64]", "--set", "model.decoder_hidden=[64]",
         "--set", "model.disc_hidden=[32]", "--set", "model.code_dim=2",
         "--set", "train.tsne_points=0", "--set", "train.checkpoint_every=1",
         "--set", "train.sample_epochs=[0]", "--batch-size", "16"]


def _env():
    return {**os.environ, "AAE_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _wait_for_epoch(run, epoch, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        done = [json.loads(p.read_text()).get("epoch", 0)
                for p in (run / "checkpoints").glob("epoch_*.json") if p.stat().st_size]
        if done and max(done) >= epoch:
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    raise AssertionError("training made no progress")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_bit_for_bit(tmp_path, sig):
    full, cut = tmp_path / "full", tmp_path / "cut"
    epochs = "12"
    r = subprocess.run(TRAIN + ["--epochs", epochs, "--out", str(full)], env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    p = subprocess.Popen(TRAIN + ["--epochs", epochs, "--out", str(cut)], env=_env(),
                         stderr=subprocess.PIPE, text=True)
    _wait_for_epoch(cut, 3, p)
    p.send_signal(sig)
    err = p.communicate(timeout=120)[1]
    if sig == signal.SIGTERM:
        assert p.returncode == 128 + signal.SIGTERM and "aae train --resume" in err, err
    else:
        assert p.returncode == -signal.SIGKILL
    _, meta = ckpt.latest(cut / "checkpoints")
    assert meta["epoch"] < int(epochs)  # it really was interrupted
    r = subprocess.run(TRAIN[:4] + ["--resume", str(cut), "--quiet"], env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a, ma = ckpt.latest(full / "checkpoints")
    b, mb = ckpt.latest(cut / "checkpoints")
    assert ma["global_step"] == mb["global_step"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not list((cut / "checkpoints").glob(".*.tmp"))


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['AAE_PWNED']}",))


def test_pickled_checkpoint_never_runs(tiny_data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    Trainer(tiny_config(epochs=1), run, data=tiny_data, quiet=True).fit()
    marker = tmp_path / "pwned"
    monkeypatch.setenv("AAE_PWNED", str(marker))
    evil = pickle.dumps(_Exploit())
    folder = run / "checkpoints"
    import hashlib

    # the newest tensor file replaced by a pickle, with the JSON's hash updated to match it
    newest, older = ckpt.candidates(folder)
    for i, js in enumerate((newest, older)):
        meta = json.loads(js.read_text())
        (folder / meta["tensors"]).write_bytes(evil)
        meta["sha256"] = hashlib.sha256(evil).hexdigest()
        meta["meta_sha256"] = ckpt.meta_hash(meta)  # every hash forged to match
        js.write_text(json.dumps(meta))
        (folder / "epoch_9999.pt").write_bytes(evil)  # a torch.save-style pickle beside it
        if i == 0:  # the poisoned newest one is skipped for the intact older one
            assert load_run(run)[2]["epoch"] == 0
    with pytest.raises(AAEError, match="no usable checkpoint .*not a valid safetensors"):
        load_run(run)
    assert not marker.exists()


def test_full_disk_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    fileio.atomic_write_json(target, {"v": 1})

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", no_space)
    with pytest.raises(AAEError, match="disk is full"):
        fileio.atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_full_disk_during_training_keeps_last_checkpoint(tiny_data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    t = Trainer(tiny_config(epochs=3, checkpoint_every=1), run, data=tiny_data, quiet=True)
    real, saves = ckpt.save, []

    def fail_third(*a, **kw):
        saves.append(1)
        if len(saves) == 3:  # epoch 0 and 1 saved, epoch 2 hits a full disk
            raise AAEError(f"cannot write {a[0]}: the disk is full")
        return real(*a, **kw)

    monkeypatch.setattr(ckpt, "save", fail_third)
    with pytest.raises(AAEError, match="disk is full"):
        t.fit()
    _, meta = ckpt.latest(run / "checkpoints")
    assert meta["epoch"] == 1


def test_output_dir_under_a_file(tiny_data, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(AAEError, match="--out"):
        Trainer(tiny_config(), tmp_path / "file" / "run", data=tiny_data, quiet=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_unwritable_output_dir(tiny_data, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(AAEError, match="--out"):
        Trainer(tiny_config(), ro / "run", data=tiny_data, quiet=True)


@pytest.mark.slow
def test_force_replaces_only_aae_files(tiny_data, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(epochs=1), run, data=tiny_data, quiet=True).fit()
    (run / "my_notes.txt").write_text("keep me")
    Trainer(tiny_config(epochs=1), run, data=tiny_data, force=True, quiet=True).fit()
    assert (run / "my_notes.txt").read_text() == "keep me"


def test_resume_with_images_of_another_size(tiny_data, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(epochs=1), run, data=tiny_data, quiet=True).fit()
    small = data.ImageData("toy", tiny_data.train_x[:, :, :6, :6], tiny_data.train_y,
                           tiny_data.test_x[:, :, :6, :6], tiny_data.test_y)
    with pytest.raises(AAEError, match="images are 1x6x6 .* takes 1x8x8"):
        Trainer(tiny_config(epochs=2), run, data=small, resume=True, quiet=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_idx_parser_random_bytes(blob):
    try:
        a = data.parse_idx(blob)
    except AAEError:
        return
    assert a.dtype == np.uint8


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=4, max_size=40).map(lambda b: b"\x00\x00\x08" + bytes([1 + b[0] % 3]) + b[1:]))
def test_idx_parser_near_valid_headers(blob):
    try:
        data.parse_idx(blob)
    except AAEError:
        pass


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["data", "model", "prior", "train", "optim", "x"]),
                       st.dictionaries(st.sampled_from(
                           ["epochs", "lr", "code_dim", "recon", "disc", "name", "limit", "betas",
                            "std", "batch_size", "encoder_hidden", "device", "q"]), _values,
                           max_size=4), max_size=4))
def test_config_loader_random_dicts(d):
    try:
        Config.from_dict(d).validate()
    except AAEError as e:
        assert "\n" not in str(e)


def test_optimizer_restore_keeps_the_receivers_runtime_flags():
    """A checkpoint's optimizer state loads into an optimizer built for another device: the state
    (moments, step count) comes from the checkpoint, how the optimizer runs (capturable for CUDA
    graphs, fused) stays the receiver's."""
    from aae.checkpoint import flatten_optimizer, restore_optimizer

    w = torch.nn.Parameter(torch.randn(5))
    saved = torch.optim.Adam([w], lr=0.1, foreach=True)
    w.grad = torch.ones(5)
    saved.step()
    tensors, plain = flatten_optimizer(saved, "optim.x")
    receiver = torch.optim.Adam([w], lr=0.5, capturable=True, foreach=True)
    restore_optimizer(receiver, "optim.x", tensors, plain)
    g = receiver.param_groups[0]
    assert g["capturable"] and g["lr"] == 0.1  # the flag stays, the hyper-parameters come back
    st = receiver.state[w]
    assert torch.equal(st["exp_avg"], saved.state[w]["exp_avg"]) and float(st["step"]) == 1.0


@pytest.mark.slow
def test_one_writer_per_run(tmp_path):
    """A run that another process is training is refused with one line naming that process;
    two resumes started together: exactly one trains, and every epoch is logged once."""
    import fcntl
    import json
    import os
    import subprocess
    import sys

    from conftest import train_toy_cli

    run = train_toy_cli(tmp_path)
    with open(run / ".lock", "a+") as held:  # this test process holds the run
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.seek(0)
        held.truncate()
        held.write("4242")
        held.flush()
        r = subprocess.run([sys.executable, "-m", "aae", "train", "--resume", str(run),
                            "--epochs", "3", "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "PID 4242" in r.stderr
    cmd = [sys.executable, "-m", "aae", "train", "--resume", str(run), "--epochs", "6", "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "AAE_OFFLINE": "1"}) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    assert any("is training this run" in err for _, err in results)
    epochs = [json.loads(ln)["epoch"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4, 5, 6]


def test_force_leaves_the_users_files_byte_for_byte_and_the_old_runs_pictures_go(tiny_data,
                                                                                  tmp_path):
    from aae.config import resolve

    run = tmp_path / "run"
    two_d = resolve(tiny_config(epochs=1).to_dict())  # code_dim 2: manifold.png and a scatter
    Trainer(two_d, run, data=tiny_data, quiet=True).fit()
    assert (run / "manifold.png").is_file()
    mine = {"notes.txt": b"keep me", "samples/my_pick.png": b"\x89PNG mine",
            "checkpoints/my_model.pt": b"weights of mine", "tb/mine/events.txt": b"log"}
    for name, blob in mine.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(blob)
    eight_d = resolve(tiny_config(epochs=1).to_dict(), None, ["model.code_dim=8"])
    Trainer(eight_d, run, data=tiny_data, force=True, quiet=True).fit()
    for name, blob in mine.items():
        assert (run / name).read_bytes() == blob, name
    assert not (run / "manifold.png").exists()  # the replaced 2-D run's picture went with it
    assert (run / "samples" / "epoch_0001.png").is_file()


@pytest.mark.parametrize("force", [False, True])
def test_a_folder_that_is_not_a_run_is_never_trained_into(tiny_data, tmp_path, force):
    out = tmp_path / "project"
    out.mkdir()
    (out / "config.toml").write_text('[tool]\nname = "not aae"\n')
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "model.ckpt").write_bytes(b"theirs")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(AAEError, match="not an aae run"):
        Trainer(tiny_config(epochs=1), out, data=tiny_data, force=force, quiet=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
