"""What the reading commands write: a file the user already has is never replaced without
--force, for every command with an --out file."""

from __future__ import annotations

import numpy as np
import pytest

from aae import AAE
from aae.cli import main

from conftest import make_images


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    x, y = make_images(96)
    np.savez(root / "toy.npz", x=x, y=y)
    np.save(root / "codes.npy", np.zeros((4, 2), np.float32))
    AAE(model={"encoder_hidden": [16], "decoder_hidden": [16], "disc_hidden": [8],
               "code_dim": 2},
        train={"epochs": 1, "batch_size": 16, "tsne_points": 0}).fit(x, labels=y,
                                                                      out=root / "run")
    return root


@pytest.mark.parametrize("command,suffix", [("sample", ".png"), ("sample", ".npz"),
                                            ("decode", ".npy"), ("encode", ".npz"),
                                            ("score", ".csv")])
def test_existing_out_is_kept_unless_force(run, tmp_path, capsys, command, suffix):
    out = tmp_path / f"mine{suffix}"
    out.write_bytes(b"the user's file")
    extra = {"decode": ["--input", run / "codes.npy"], "encode": ["--input", run / "toy.npz"],
             "score": ["--input", run / "toy.npz"]}.get(command, ["--n", "4"])
    args = [command, str(run / "run"), *map(str, extra), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == b"the user's file"
    assert main([*args, "--force"]) == 0
    assert out.read_bytes() != b"the user's file"


def test_out_in_a_missing_folder_is_one_line(run, tmp_path, capsys):
    assert main(["sample", str(run / "run"), "--out", str(tmp_path / "no" / "s.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_out_of_range_flags_and_outputs_are_one_line(run, tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    cases = [(["sample", run / "run", "--seed", str(2**70), "--out", tmp_path / "a.png"], "--seed"),
             (["sample", run / "run", "--seed", "-1", "--out", tmp_path / "b.png"], "--seed"),
             (["sample", run / "run", "--n", str(10**9), "--out", tmp_path / "c.png"], "--n"),
             (["compare", run / "run", run / "run", "--out", tmp_path / "afile"], "not a folder")]
    for args, needle in cases:
        assert main([str(a) for a in args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    assert (tmp_path / "afile").read_text() == "mine" and len(list(tmp_path.iterdir())) == 1


def test_one_image_is_refused_before_a_run_exists(tmp_path, capsys):
    np.savez(tmp_path / "one.npz", x=np.random.rand(1, 8, 8).astype(np.float32))
    assert main(["train", "--dataset", str(tmp_path / "one.npz"), "--out", str(tmp_path / "r"),
                 "--epochs", "1", "--batch-size", "1", "--quiet"]) == 2
    assert "none for the test split" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_evaluate_all_skips_what_does_not_apply(tmp_path, capsys):
    import json

    x, _ = make_images(96)
    np.savez(tmp_path / "unlabelled.npz", x=x)
    AAE(model={"encoder_hidden": [16], "decoder_hidden": [16], "disc_hidden": [8], "code_dim": 2},
        train={"epochs": 1, "batch_size": 16, "tsne_points": 0}).fit(
        str(tmp_path / "unlabelled.npz"), out=tmp_path / "r")
    (tmp_path / "r" / "eval.json").write_text("[1, 2]")  # not a table: recomputed, not trusted
    assert main(["evaluate", str(tmp_path / "r"), "--all"]) == 0
    assert "skipped quality: --quality needs labels" in capsys.readouterr().out
    result = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert {"parzen", "prior_fit"} <= set(result) and "quality" not in result
    assert main(["evaluate", str(tmp_path / "r"), "--quality"]) == 2  # asked by name: an error
