"""The command line: real subprocesses, exit codes, one-line errors, nothing half-written."""

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import write_idx_set

SMALL = ["--set", "model.encoder_hidden=[32]", "--set", "model.decoder_hidden=[32]",
         "--set", "model.disc_hidden=[16]", "--set", "model.code_dim=2",
         "--set", "train.tsne_points=50", "--batch-size", "32", "--device", "cpu"]


def aae(*args, env=None, cwd=None):
    e = {**os.environ, "AAE_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "aae", *map(str, args)], capture_output=True,
                          text=True, env=e, cwd=cwd, timeout=300)


def assert_one_line_error(r, *needles):
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aae"), r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_truncated_idx(tmp_path):
    folder = write_idx_set(tmp_path / "data" / "mnist")
    p = folder / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-100]))
    r = aae("train", "--data-dir", tmp_path / "data", "--out", tmp_path / "run", "--epochs", 1)
    assert_one_line_error(r, str(p), "truncated")
    assert not (tmp_path / "run").exists()


def test_no_data_and_no_network(tmp_path):
    r = aae("train", "--data-dir", tmp_path / "empty", "--out", tmp_path / "run",
            env={"AAE_DATA_DIR": str(tmp_path / "empty2"), "XDG_CACHE_HOME": str(tmp_path / "c")})
    assert_one_line_error(r, "not found in", str(tmp_path / "empty"))
    assert not (tmp_path / "run").exists()


def test_negative_epochs(tmp_path):
    r = aae("train", "--dataset", "digits", "--epochs", -1, "--out", tmp_path / "run")
    assert_one_line_error(r, "train.epochs", "-1")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, needle", [
    (["--preset", "nope"], "demo"),
    (["--dataset", "cifar-1000"], "mnist, fashion-mnist, colored-mnist, svhn, digits"),
    (["--set", "prior.name=banana"], "gaussian"),
    (["--batch-size", "0"], "train.batch_size"),
    (["--batch-size", "5000"], "larger than"),
    (["--set", "optim.recon.lr=-1"], "optim.recon.lr"),
    (["--limit", "999999"], "--limit"),
    (["--epochs", "many"], "invalid int value"),
])
def test_bad_options(tmp_path, args, needle):
    r = aae("train", "--dataset", "digits", "--out", tmp_path / "run", *args)
    assert_one_line_error(r, needle)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_sample_encode_plot(tmp_path):
    run = tmp_path / "run"
    r = aae("train", "--dataset", "digits", "--epochs", 2, "--out", run, "--quiet", *SMALL)
    assert r.returncode == 0, r.stderr
    for f in ("config.toml", "metrics.jsonl", "samples/epoch_0000.png", "samples/epoch_0001.png",
              "samples/epoch_0002.png", "samples/progress.png", "tsne.png", "latent.png",
              "latent.json"):
        assert (run / f).is_file(), f
    assert any((run / "tb").iterdir()) and any((run / "checkpoints").glob("*.safetensors"))

    # a second train into the same folder is refused, and the run is untouched
    before = (run / "metrics.jsonl").read_bytes()
    r = aae("train", "--dataset", "digits", "--epochs", 1, "--out", run, *SMALL)
    assert_one_line_error(r, "already holds a run", "--resume", "--force")
    assert (run / "metrics.jsonl").read_bytes() == before

    r = aae("sample", run, "--n", 16, "--out", tmp_path / "s.png")
    assert r.returncode == 0, r.stderr
    from PIL import Image

    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (7 * (10 * 10 + 2), 7 * (2 * 10 + 2))  # 16 8x8 digits, x7: 10 + 6

    r = aae("encode", run, "--split", "test", "--out", tmp_path / "codes.npz")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "codes.npz") as z:
        assert z["z"].shape[1] == 2 and z["labels"].shape == (z["z"].shape[0],)

    (run / "latent.json").unlink()
    r = aae("plot", run)
    assert r.returncode == 0 and (run / "latent.json").is_file(), r.stderr

    # resuming with more epochs continues the same run
    r = aae("train", "--resume", run, "--epochs", 3, "--quiet")
    assert r.returncode == 0, r.stderr
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


def test_presets_and_module_entry():
    r = aae("presets")
    assert r.returncode == 0 and "demo" in r.stdout and "seed" in r.stdout


def test_sample_of_a_non_run(tmp_path):
    r = aae("sample", tmp_path, "--out", tmp_path / "x.png")
    assert_one_line_error(r, "not a run directory")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_sample_decode_encode_inputs_and_outputs(tmp_path):
    import numpy as np

    from conftest import make_images, train_toy_cli

    run = train_toy_cli(tmp_path)
    r = aae("--version")
    assert r.returncode == 0 and r.stdout.startswith("aae ")
    r = aae("sample", run, "--n", 12)  # no --out: a default name in the run
    assert r.returncode == 0 and (run / "sample_0.png").is_file(), r.stderr
    r = aae("sample", run, "--n", 12, "--out", tmp_path / "s.npz")
    assert r.returncode == 0, r.stderr
    s = np.load(tmp_path / "s.npz")
    assert s["images"].shape == (12, 1, 8, 8) and s["z"].shape == (12, 8)
    np.save(tmp_path / "z.npy", s["z"])
    r = aae("decode", run, "--input", tmp_path / "z.npy", "--out", tmp_path / "d.npy")
    assert r.returncode == 0, r.stderr
    assert np.allclose(np.load(tmp_path / "d.npy"), s["images"], atol=1e-6)  # same codes, same images
    x, y = make_images(30, seed=9)
    np.savez(tmp_path / "new.npz", x=x, y=y)
    r = aae("encode", run, "--input", tmp_path / "new.npz", "--out", tmp_path / "c.npz")
    assert r.returncode == 0, r.stderr
    c = np.load(tmp_path / "c.npz")
    assert c["z"].shape == (30, 8) and (c["labels"] == y).all()
    for args, needle in ((["decode", run, "--input", tmp_path / "new.npz", "--out", tmp_path / "e.png"],
                          "expected finite codes shaped (N, 8)"),
                         (["sample", run, "--out", tmp_path / "x.jpg"], "ending in .png, .npy, .npz"),
                         (["encode", run, "--input", tmp_path / "none.npz", "--out", tmp_path / "f.npz"],
                          "option --input")):
        r = aae(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert needle in r.stderr, r.stderr


def test_config_lists_every_option_that_set_accepts():
    from aae.config import Config, parse_set, resolve
    from aae.report import flatten

    r = aae("config")
    assert r.returncode == 0, r.stderr
    listed = [ln.split()[0] for ln in r.stdout.splitlines()]
    assert sorted(listed) == sorted(flatten(Config().to_dict()))
    for key in listed:  # and --set takes each of them (here: its own default back)
        value = flatten(Config().to_dict())[key]
        literal = repr(value).replace("'", '"') if isinstance(value, str) else str(value).lower() \
            if isinstance(value, bool) else str(value)
        resolve(None, None, [f"{key}={literal}"])
        assert parse_set(f"{key}={literal}")
    assert all(len(ln.split(None, 3)) == 4 for ln in r.stdout.splitlines()), "a key lacks its meaning"
    r = aae("train", "--help")
    assert r.returncode == 0 and len(r.stdout.splitlines()) <= 60 and "(default: 20)" in r.stdout
