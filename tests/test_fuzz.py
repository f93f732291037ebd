"""A fuzz test of the whole command line: hypothesis drives every command with mutated files (IDX,
.npz, images, TOML, checkpoint JSON and tensors) and flags, and asserts for each call: the exit
code is 0, 2 or 3 (argparse's usage errors exit 2 too), no exception escapes (in-process, an
uncaught one fails the test with its traceback), no file outside the call's output changed, and
a failed ``train`` leaves no run folder behind.

It runs in-process (``aae.cli.main``) so that an example costs milliseconds to a second.
``AAE_FUZZ_EXAMPLES`` sets the examples per target (default 12, about a minute in all on two
cores); ``AAE_FUZZ_EXAMPLES=500 pytest tests/test_fuzz.py`` is the long local mode.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aae.cli import main

from conftest import idx_bytes, make_images

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("AAE_FUZZ_EXAMPLES", "12"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
TINY = ["--epochs", "1", "--batch-size", "16", "--device", "cpu", "--quiet",
        "--set", "model.encoder_hidden=[16]", "--set", "model.decoder_hidden=[16]",
        "--set", "model.disc_hidden=[8]", "--set", "model.code_dim=2",
        "--set", "train.tsne_points=0", "--set", "train.sample_epochs=[]"]
EXITS = {0, 2, 3}


def call(args: list[str]) -> int:
    """``aae ARGS`` in-process: its exit code (argparse's SystemExit included), output hidden."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 2
    assert code in EXITS, (args, code, err.getvalue()[-2000:])
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return code


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def mutate(blob: bytes, data: st.DataObject) -> bytes:
    """Truncate, flip, insert or overwrite bytes: what a damaged or hand-made file looks like."""
    b = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["truncate", "flip", "insert", "set"]))
        i = data.draw(st.integers(0, max(len(b) - 1, 0)))
        if kind == "truncate":
            del b[i:]
        elif kind == "flip" and b:
            b[i] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "insert":
            b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif b:
            b[i] = data.draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
    return bytes(b)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Inputs of every kind and one trained run."""
    root = tmp_path_factory.mktemp("fuzz")
    x, y = make_images(64)
    np.savez(root / "toy.npz", x=x, y=y)
    mn = root / "data" / "mnist"
    mn.mkdir(parents=True)
    xi = (make_images(48, side=28)[0][:, 0] * 255).astype(np.uint8)
    for split, n in (("train", 32), ("t10k", 16)):
        lab = np.arange(n, dtype=np.uint8) % 10
        (mn / f"{split}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(xi[:n] if split == "train" else xi[32:])))
        (mn / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(lab)))
    from PIL import Image

    folder = root / "images" / "a"
    folder.mkdir(parents=True)
    for i in range(24):
        Image.fromarray((x[i, 0] * 255).astype(np.uint8)).save(folder / f"{i}.png")
    (root / "cfg.toml").write_text('[model]\ncode_dim = 2\nencoder_hidden = [16]\n'
                                   '[train]\nepochs = 1\nbatch_size = 16\n')
    assert call(["train", "--dataset", root / "toy.npz", "--out", root / "run", *TINY]) == 0
    np.save(root / "codes.npy", np.zeros((5, 2), np.float32))
    return root


@contextlib.contextmanager
def sandbox(world: Path):
    """A scratch copy of the inputs; yields (folder, check) where check() asserts that nothing
    but the named outputs changed."""
    tmp = Path(tempfile.mkdtemp(prefix="aae-fuzz-"))
    try:
        for name in ("toy.npz", "data", "images", "cfg.toml", "run", "codes.npy"):
            src = world / name
            (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp / name)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unchanged_but(tmp: Path, before: dict[str, str], *outputs: str) -> None:
    after = snapshot(tmp)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    stray = {k for k in changed if not any(k == o or k.startswith(o + "/") for o in outputs)}
    assert not stray, stray


def train_new(tmp: Path, *args) -> None:
    """``aae train`` into a new folder: either it completes, or nothing of it is left."""
    before = snapshot(tmp)
    code = call(["train", "--out", tmp / "new", *TINY, *args])
    if code != 0:
        assert not (tmp / "new").exists(), "a failed train left a half-written run"
    unchanged_but(tmp, before, "new")


FILES = {"npz": "toy.npz", "idx_images": "data/mnist/train-images-idx3-ubyte.gz",
         "idx_labels": "data/mnist/t10k-labels-idx1-ubyte.gz", "png": "images/a/3.png",
         "toml": "cfg.toml"}


@FUZZ
@given(data=st.data(), which=st.sampled_from(sorted(FILES)))
def test_train_on_mutated_inputs(world, data, which):
    with sandbox(world) as tmp:
        path = tmp / FILES[which]
        raw = path.read_bytes()
        if which.startswith("idx") and data.draw(st.booleans()):  # inside the gzip stream
            path.write_bytes(gzip.compress(mutate(gzip.decompress(raw), data)))
        else:
            path.write_bytes(mutate(raw, data))
        source = {"npz": ["--dataset", tmp / "toy.npz"], "png": ["--dataset", tmp / "images"],
                  "toml": ["--dataset", tmp / "toy.npz", "--config", tmp / "cfg.toml"]}.get(
            which, ["--dataset", "mnist", "--data-dir", tmp / "data"])
        train_new(tmp, *source)


KEYS = ["model.code_dim", "model.encoder_hidden", "model.arch", "model.posterior",
        "model.class_input", "model.disc_groups", "prior.kind", "prior.std", "train.seed",
        "train.batch_size", "train.epochs", "train.checkpoint_every", "data.image_size",
        "data.channels", "data.test_fraction", "data.limit", "optim.disc.lr", "train.input_noise",
        "model.output", "data.validation", "train.sample_epochs", "model.conv_widths"]
VALUES = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from(["", "x", "[]", "[0]", "[28, 28]", "[-1]", "true", '"mlp"',
                                    '"conv"', '"y"', '"gaussian"', "nan", "inf", "{a=1}",
                                    "[1e999]", "[[1]]", '"mixture"', '"swiss_roll"']))


@FUZZ
@given(sets=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=3))
def test_train_with_fuzzed_options(world, sets):
    with sandbox(world) as tmp:
        flags = [a for k, v in sets for a in ("--set", f"{k}={v}")]
        train_new(tmp, "--dataset", tmp / "toy.npz", *flags)


CKPT = ["json", "safetensors"]


@FUZZ
@given(data=st.data(), part=st.sampled_from(CKPT),
       command=st.sampled_from(["sample", "resume", "evaluate", "encode", "export"]))
def test_commands_on_a_damaged_checkpoint(world, data, part, command):
    with sandbox(world) as tmp:
        run = tmp / "run"
        newest = sorted((run / "checkpoints").glob(f"*.{part}"))[-1]
        if part == "json" and data.draw(st.booleans()):  # valid JSON, wrong values
            meta = json.loads(newest.read_text())
            key = data.draw(st.sampled_from(sorted(meta)))
            meta[key] = data.draw(st.sampled_from([None, -1, 10**30, 1e300, "x", [], {}, [[[]]]]))
            newest.write_text(json.dumps(meta))
        else:
            newest.write_bytes(mutate(newest.read_bytes(), data))
        before = snapshot(tmp)
        args = {"sample": ["sample", run, "--n", "4", "--out", tmp / "s.png"],
                "resume": ["train", "--resume", run, "--epochs", "2", "--quiet"],
                "evaluate": ["evaluate", run, "--prior-fit"],
                "encode": ["encode", run, "--input", tmp / "toy.npz", "--out", tmp / "c.npz"],
                "export": ["export", run, "--format", "pt2", "--out", tmp / "d.pt2"]}[command]
        call(args)
        outputs = {"sample": ["s.png"], "resume": ["run"], "evaluate": ["run/eval.json",
                   "run/report.html"], "encode": ["c.npz"], "export": ["d.pt2"]}[command]
        unchanged_but(tmp, before, *outputs)


FLAG_VALUES = st.sampled_from(["0", "-1", "1", "3", "99999999999999999999999", "nan", "x", "",
                               "1e3", "s.png", "s.npy", "s.npz", "s.txt", "nowhere/s.png",
                               "codes.npy", "toy.npz", "run", "images"])


@FUZZ
@given(command=st.sampled_from(["sample", "decode", "encode", "export", "score", "plot",
                                "report", "compare", "evaluate", "config", "presets"]),
       flags=st.lists(st.tuples(st.sampled_from(["--n", "--seed", "--out", "--input", "--part",
                                                 "--format", "--split", "--labels", "--preset",
                                                 "--force", "--all"]), FLAG_VALUES),
                      max_size=4))
def test_read_commands_with_fuzzed_flags(world, command, flags):
    with sandbox(world) as tmp:
        before, cwd = snapshot(tmp), os.getcwd()
        args = [command] + ([] if command in ("config", "presets") else ["run"])
        for flag, value in flags:
            args += [flag] if flag in ("--force", "--all") else [flag, value]
        os.chdir(tmp)  # relative names land in the sandbox
        try:
            call(args)
        finally:
            os.chdir(cwd)
        # what a reading command may write: a new --out (an existing one only with --force),
        # and the run's eval, report and plots, and its default sample and export names
        forced = any(f == "--force" for f, _ in flags)
        outs = [v for f, v in flags if f == "--out" and (forced or not (tmp / v).exists())] + [
            "run/eval.json", "run/report.html", "run/tsne.png", "run/latent.png",
            "run/latent.json", "run/sample_0.png", "run/sample_1.png", "run/sample_3.png"] + [
            f"run/{p}.{f}" for p in ("encoder", "decoder") for f in ("onnx", "pt2")]
        unchanged_but(tmp, before, *outs)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70)
                           | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=8)


@FUZZ
@given(data=st.data(), name=st.sampled_from(["metrics.jsonl", "latent.json", "eval.json",
                                             "config.toml"]),
       command=st.sampled_from(["report", "compare", "plot"]))
def test_reports_of_a_run_with_mutated_files(world, data, name, command):
    with sandbox(world) as tmp:
        path = tmp / "run" / name
        if path.exists() and data.draw(st.booleans()):
            path.write_bytes(mutate(path.read_bytes(), data))
        else:  # valid JSON of the wrong shape: a list, a number, a table of odd values
            path.write_text(json.dumps(data.draw(JSON_VALUES)))
        before = snapshot(tmp)
        args = {"report": ["report", tmp / "run"], "plot": ["plot", tmp / "run"],
                "compare": ["compare", tmp / "run", tmp / "run", "--out", tmp / "cmp"]}[command]
        call(args)
        unchanged_but(tmp, before, "cmp", "run/report.html", "run/tsne.png", "run/latent.png",
                      "run/latent.json", "run/latent_scatter.png", "run/manifold.png")
