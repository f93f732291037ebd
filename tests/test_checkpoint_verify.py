"""Every checkpoint is verified before it is trusted: its JSON is hashed too, a damaged newest one
is named and kept aside (by the run's writer), a hostile JSON is skipped, and --resume refuses a
config.toml that disagrees with the checkpoint's config."""

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from aae import checkpoint as ckpt
from aae.config import load_toml, resolve, to_toml
from aae.errors import AAEError
from aae.runs import FOLDERS, remove_run_files, resume_config
from aae.training import Trainer

from conftest import ROOT, tiny_config, toy_data

OLD_RUN = ROOT / "tests" / "fixtures" / "old_run"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A 2-epoch toy run with checkpoints epoch_0000, epoch_0001 and epoch_0002."""
    run = tmp_path_factory.mktemp("base") / "run"
    Trainer(_cfg(2), run, data=toy_data(), quiet=True).fit()
    return run


@pytest.fixture
def run(base_run, tmp_path) -> Path:
    """A fresh copy of the base run."""
    return Path(shutil.copytree(base_run, tmp_path / "run"))


def _canonical_sha256(meta: dict) -> str:
    rest = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _hand_made(text: str) -> str:
    """``text``, a checkpoint JSON without meta_sha256, given one that matches what it parses
    to, put in front so that every other byte of ``text`` stays as it is."""
    digest = _canonical_sha256(json.loads(text))
    return f'{{"meta_sha256": "{digest}", ' + text.lstrip()[1:]


def _cfg(epochs: int):
    """The base run's config with ``epochs``."""
    return tiny_config(epochs=epochs, checkpoint_every=1)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _only_warning(caught) -> str:
    found = [str(w.message) for w in caught if issubclass(w.category, ckpt.CheckpointWarning)]
    assert len(found) == 1, found
    assert "\n" not in found[0]
    return found[0]


# -- 1: the JSON is hashed ----------------------------------------------------------------------

def test_the_json_carries_the_sha256_of_its_canonical_fields(base_run):
    for p in (base_run / "checkpoints").glob("*.json"):
        meta = json.loads(p.read_text())
        assert meta["format"] == 2
        assert meta["meta_sha256"] == _canonical_sha256(meta), p.name


def test_a_one_byte_edit_of_the_epoch_makes_the_checkpoint_damaged(run):
    folder = run / "checkpoints"
    p = folder / "epoch_0002.json"
    text = p.read_text()
    assert text.count('"epoch": 2,') == 1
    p.write_text(text.replace('"epoch": 2,', '"epoch": 3,'))  # one byte
    with pytest.raises(ckpt.Damaged, match="epoch_0002.json: its fields do not match their SHA-256"):
        ckpt.load(p)
    assert ckpt.candidates(folder) == [folder / "epoch_0001.json", folder / "epoch_0000.json"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, meta = ckpt.latest(folder)
    assert meta["epoch"] == 1
    msg = _only_warning(caught)
    assert str(p) in msg and "meta_sha256" in msg and "using epoch_0001.json" in msg


def test_a_format_2_json_without_its_hash_is_damaged(run):
    p = run / "checkpoints" / "epoch_0002.json"
    meta = json.loads(p.read_text())
    del meta["meta_sha256"]
    p.write_text(json.dumps(meta))
    with pytest.raises(ckpt.Damaged, match="meta_sha256"):
        ckpt.load(p)


def test_a_format_1_checkpoint_loads_without_the_field():
    folder = OLD_RUN / "checkpoints"
    metas = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    assert metas and all(m["format"] == 1 and "meta_sha256" not in m for m in metas)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing about it is reported as damaged
        _, meta = ckpt.latest(folder)
    assert (meta["epoch"], meta["step_in_epoch"]) == (1, 2)


def test_a_format_1_checkpoint_still_resumes(tmp_path):
    run = Path(shutil.copytree(OLD_RUN, tmp_path / "run"))
    from aae.runs import load_config

    given = load_config(run)
    cfg, (_, meta) = resume_config(run, given)
    assert meta["format"] == 1 and cfg.to_dict() == given.to_dict()


# -- 2: a damaged newest checkpoint ---------------------------------------------------------------

def _damage_tensors(folder: Path, stem: str = "epoch_0002") -> bytes:
    p = folder / f"{stem}.safetensors"
    blob = bytearray(p.read_bytes())
    blob[-1] ^= 0xFF
    p.write_bytes(bytes(blob))
    return bytes(blob)


def test_the_writer_keeps_a_damaged_newest_checkpoint_aside_and_resumes_from_the_previous(run,
                                                                                        capsys):
    folder = run / "checkpoints"
    # a copy kept aside by an earlier resume: never overwritten
    (folder / "epoch_0002.damaged.json").write_text("earlier json")
    (folder / "epoch_0002.damaged.safetensors").write_bytes(b"earlier tensors")
    damaged_json = (folder / "epoch_0002.json").read_bytes()
    damaged_tensors = _damage_tensors(folder)
    t = Trainer(_cfg(3), run, data=toy_data(), resume=True)  # the trainer's log says it
    warned = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warned) == 1
    msg = warned[0]
    assert f"{folder / 'epoch_0002.json'} is damaged (epoch_0002.safetensors: SHA-256" in msg
    assert "kept aside as epoch_0002.damaged.2.json" in msg and "using epoch_0001.json" in msg
    assert t.t.state.epoch == 1
    t.fit()
    assert (folder / "epoch_0002.damaged.json").read_text() == "earlier json"
    assert (folder / "epoch_0002.damaged.safetensors").read_bytes() == b"earlier tensors"
    assert (folder / "epoch_0002.damaged.2.json").read_bytes() == damaged_json
    assert (folder / "epoch_0002.damaged.2.safetensors").read_bytes() == damaged_tensors
    # training wrote a new epoch 2 beside the kept copies, and went on to epoch 3
    assert [p.name for p in ckpt.candidates(folder)][:2] == ["epoch_0003.json", "epoch_0002.json"]
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2, 3]


def test_a_reader_skips_a_damaged_checkpoint_and_renames_nothing(run):
    from aae.runs import load_config, load_run

    folder = run / "checkpoints"
    _damage_tensors(folder)
    before = _names(folder)
    with pytest.warns(ckpt.CheckpointWarning, match="epoch_0002.json is damaged"):
        assert load_run(run)[2]["epoch"] == 1
    # resume_config in a process that does not hold the run's lock (another rank, say) reads only
    with pytest.warns(ckpt.CheckpointWarning, match="epoch_0002.json is damaged"):
        assert resume_config(run, load_config(run))[1][1]["epoch"] == 1
    assert _names(folder) == before


def test_kept_aside_pairs_are_no_candidates_and_prune_leaves_them(run):
    folder = run / "checkpoints"
    kept = ckpt.keep_aside(folder / "epoch_0002.json")
    assert kept.name == "epoch_0002.damaged.json"
    assert (folder / "epoch_0002.damaged.safetensors").is_file()
    assert ckpt.candidates(folder) == [folder / "epoch_0001.json", folder / "epoch_0000.json"]
    (folder / "notes.json").write_text("{}")  # a file of another name: not aae's to delete
    ckpt.prune(folder, keep={"epoch_0001"})
    assert _names(folder) == ["epoch_0001.json", "epoch_0001.safetensors", "epoch_0002.damaged.json",
                              "epoch_0002.damaged.safetensors", "notes.json"]


def test_force_removes_the_kept_aside_pairs_as_run_made_files(run):
    folder = run / "checkpoints"
    ckpt.keep_aside(folder / "epoch_0002.json")
    (folder / "epoch_0001.json").rename(folder / "epoch_0001.damaged.3.json")
    (folder / "mine.safetensors").write_bytes(b"mine")
    for name in ("epoch_0002.damaged.json", "epoch_0001.damaged.3.json",
                 "epoch_0002.damaged.12.safetensors"):
        assert FOLDERS["checkpoints"].fullmatch(name), name
    assert not FOLDERS["checkpoints"].fullmatch("epoch_0002.damagedx.json")
    remove_run_files(run)
    assert _names(folder) == ["mine.safetensors"]


def test_the_cli_warns_in_one_line_and_quiet_silences_it(run, tmp_path):
    folder = run / "checkpoints"
    _damage_tensors(folder)
    env = {**os.environ, "AAE_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "aae"]
    r = subprocess.run([*cmd, "sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "CheckpointWarning" in lines[0], r.stderr
    assert "epoch_0002.json is damaged" in lines[0] and "using epoch_0001.json" in lines[0]
    assert not (folder / "epoch_0002.damaged.json").exists()  # a reader renames nothing
    r = subprocess.run([*cmd, "train", "--resume", str(run), "--epochs", "2", "--quiet"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert (folder / "epoch_0002.damaged.json").is_file()
    assert json.loads((folder / "epoch_0002.json").read_text())["epoch"] == 2  # trained again


def test_the_warning_goes_to_the_given_callable(run):
    _damage_tensors(run / "checkpoints")
    got = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", ckpt.CheckpointWarning)  # no Python warning besides
        assert ckpt.latest(run / "checkpoints", warn=got.append)[1]["epoch"] == 1
    assert len(got) == 1 and "epoch_0002.json is damaged" in got[0]


def test_a_checkpoint_pruned_while_a_reader_reads_it_is_not_called_damaged(run, monkeypatch):
    folder = run / "checkpoints"
    real = ckpt.load

    def pruned_meanwhile(p):
        if p.name == "epoch_0002.json":  # a training run beside the reader prunes it now
            ckpt.prune(folder, keep={"epoch_0000", "epoch_0001"})
        return real(p)

    monkeypatch.setattr(ckpt, "load", pruned_meanwhile)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ckpt.CheckpointWarning)
        assert ckpt.latest(folder)[1]["epoch"] == 1


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_whose_hashes_all_match_is_refused_and_never_run(run, tmp_path):
    folder, marker = run / "checkpoints", tmp_path / "pwned"
    evil = pickle.dumps(_Exploit(marker))
    for p in folder.glob("*.json"):
        meta = json.loads(p.read_text())
        del meta["meta_sha256"]
        (folder / meta["tensors"]).write_bytes(evil)
        meta["sha256"] = hashlib.sha256(evil).hexdigest()
        p.write_text(_hand_made(json.dumps(meta)))
        assert ckpt.read_meta(p)["sha256"] == meta["sha256"]  # the JSON itself verifies
    with pytest.raises(AAEError, match="no usable checkpoint .*not a valid safetensors"):
        ckpt.latest(folder)
    assert not marker.exists()


# -- 3: hostile JSON ------------------------------------------------------------------------------

def _set(path, value):
    """A mutation of the meta: the value at ``path`` (keys and indices) becomes ``value``."""
    def apply(meta):
        d = meta
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return apply


def _nested(depth: int):
    v = 0
    for _ in range(depth):
        v = [v]
    return v


RAW = "@RAW@"  # replaced by the literal text that json.dumps cannot write
HOSTILE_FIELDS = {
    "null epoch": (_set(["epoch"], None), None, "field epoch: expected a whole number"),
    "huge epoch": (_set(["epoch"], 10**30), None, "field epoch"),
    "epoch 1e400": (_set(["epoch"], RAW), "1e400", "field epoch"),
    "global_step as a string": (_set(["global_step"], "30"), None, "field global_step"),
    "elapsed 1e400": (_set(["elapsed"], RAW), "1e400", "field elapsed"),
    "step_in_epoch negative": (_set(["step_in_epoch"], -1), None, "field step_in_epoch"),
    "global_step missing": (lambda m: m.pop("global_step"), None, "field global_step is missing"),
    "an epoch of 5000 digits": (_set(["epoch"], RAW), "9" * 5000, "not readable JSON"),
    "image_shape of two": (_set(["image_shape"], [8, 8]), None, "field image_shape"),
    "config not a table": (_set(["config"], [1, 2]), None, "field config"),
    "rng index out of range": (_set(["rng", "python", 1, 624], 10**30), None, "field rng"),
    "rng null": (_set(["rng", "numpy"], None), None, "field rng"),
    "numpy generator renamed": (_set(["rng", "numpy", 0], "PCG64"), None, "field rng"),
    "learning rate as a string": (_set(["optim", "recon", "param_groups", 0, "lr"], "fast"), None,
                                  "field optim"),
    "betas of three": (_set(["optim", "gen", "param_groups", 0, "betas"], [0.5, 0.9, 0.1]), None,
                       "field optim"),
    "optimizer state keyed by a name": (_set(["optim", "disc", "state"], {"x": {}}), None,
                                        "field optim"),
    "recent accuracies as a string": (_set(["extra", "recent_disc_acc"], "high"), None,
                                      "field extra"),
    "deep nesting in extra": (_set(["extra", "x"], _nested(40)), None, "nested more than 32"),
    "tensor file elsewhere": (_set(["tensors"], "../x.safetensors"), None, "field tensors"),
}
HOSTILE_TEXT = {
    "100000 nested lists": ("[" * 100_000 + "]" * 100_000, "not readable JSON"),
    "null": ("null", "not an aae checkpoint"),
    "a list": ("[1, 2]", "not an aae checkpoint"),
    "a string": ('"epoch"', "not an aae checkpoint"),
    "format as a bool": ('{"format": true}', "not an aae checkpoint"),
    "not UTF-8": ("\udcff", "not readable JSON"),
    "empty": ("", "not readable JSON"),
}


def _hostile(folder: Path, case: str) -> None:
    p = folder / "epoch_0002.json"
    if case in HOSTILE_TEXT:
        text = HOSTILE_TEXT[case][0]
        p.write_bytes(text.encode("utf-8", "surrogateescape"))
        return
    mutate, raw, _ = HOSTILE_FIELDS[case]
    meta = json.loads(p.read_text())
    del meta["meta_sha256"]
    mutate(meta)
    text = json.dumps(meta, indent=1, sort_keys=True)
    if raw is not None:
        text = text.replace(f'"{RAW}"', raw)
    try:
        text = _hand_made(text)  # a hand-made file whose hash matches: the fields are checked
    except ValueError:
        pass  # not JSON Python reads at all (an int of 5000 digits)
    p.write_text(text)


@pytest.mark.parametrize("case", [*HOSTILE_FIELDS, *HOSTILE_TEXT])
def test_a_hostile_json_is_skipped_never_a_traceback(run, case, capsys):
    folder = run / "checkpoints"
    _hostile(folder, case)
    p = folder / "epoch_0002.json"
    needle = HOSTILE_TEXT[case][1] if case in HOSTILE_TEXT else HOSTILE_FIELDS[case][2]
    with pytest.raises(ckpt.Damaged) as err:
        ckpt.load(p)
    assert needle in str(err.value) and str(p) in str(err.value) and "\n" not in str(err.value)
    assert ckpt.candidates(folder) == [folder / "epoch_0001.json", folder / "epoch_0000.json"]
    with pytest.warns(ckpt.CheckpointWarning) as caught:
        assert ckpt.latest(folder)[1]["epoch"] == 1
    assert needle in _only_warning(caught)
    capsys.readouterr()
    t = Trainer(_cfg(2), run, data=toy_data(), resume=True)
    assert "warning: checkpoint" in capsys.readouterr().err and t.t.state.epoch == 1
    assert (folder / "epoch_0002.damaged.json").is_file() and not p.exists()
    t.release()


def test_only_hostile_jsons_everywhere_is_one_error_line(run):
    folder = run / "checkpoints"
    for p in folder.glob("*.json"):
        p.write_text("[" * 100_000)
    with pytest.raises(AAEError, match="no usable checkpoint") as err:
        ckpt.latest(folder)
    assert "\n" not in str(err.value)


def test_restore_refuses_an_optimizer_state_that_does_not_fit(run):
    p = run / "checkpoints" / "epoch_0002.json"
    meta = json.loads(p.read_text())
    del meta["meta_sha256"]
    groups = meta["optim"]["recon"]["param_groups"]
    groups.append(dict(groups[0]))  # two groups: valid JSON, but not this optimizer's
    p.write_text(_hand_made(json.dumps(meta)))
    with pytest.raises(AAEError, match="epoch_0002.safetensors: optim.recon: 2 parameter groups"):
        Trainer(_cfg(2), run, data=toy_data(), resume=True, quiet=True)


def test_restore_refuses_a_checkpoint_without_a_training_state(run, tmp_path):
    from aae.checkpoint import Checkpoints

    t = Trainer(tiny_config(epochs=2), tmp_path / "fresh", data=toy_data(), quiet=True)
    tensors, meta = ckpt.load(run / "checkpoints" / "epoch_0002.json")
    for field in ("optim", "rng"):
        meta2 = {k: v for k, v in meta.items() if k != field}
        with pytest.raises(AAEError, match="epoch_0002.json: "):
            Checkpoints(run / "checkpoints", 1).restore(t.t, tensors, meta2)
    with pytest.raises(AAEError, match="lacks the tensor sample_noise"):
        Checkpoints(run / "checkpoints", 1).restore(
            t.t, {k: v for k, v in tensors.items() if k != "sample_noise"}, meta)
    t.release()


# -- 4: config.toml is a view of the checkpoint's config ------------------------------------------

def _edit_toml(run: Path, **sets) -> None:
    d = load_toml(run / "config.toml")
    for key, v in sets.items():
        section, name = key.split("__")
        d[section][name] = v
    (run / "config.toml").write_text(to_toml(resolve(d)))


def test_resume_refuses_an_edited_config_toml(run):
    from aae.runs import load_config

    gen = _cfg(2).to_dict()["optim"]["gen"]
    wd = gen["weight_decay"]  # (learning rates may change on resume; other options not)
    _edit_toml(run, optim__gen={**gen, "weight_decay": 0.5})
    given = load_config(run)  # what aae train --resume starts from
    with pytest.raises(AAEError) as err:
        Trainer(given, run, data=toy_data(), resume=True, quiet=True)
    msg = str(err.value)
    assert msg == (f"run {run}: config.toml differs from the checkpoint's config at "
                   f"optim.gen.weight_decay (0.5 in config.toml, {wd!r} in epoch_0002.json); "
                   "restore config.toml or start a new run")


def test_resume_refuses_an_edited_config_toml_on_the_command_line(run, capsys):
    from aae.cli import main

    _edit_toml(run, model__init_std=0.5)
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.toml differs from the checkpoint's config at " \
                              "model.init_std (0.5 in config.toml" in err[0], err


def test_resume_takes_the_runtime_options_from_config_toml_and_the_flags(run):
    from aae.runs import load_config

    _edit_toml(run, train__threads=1, train__epochs=7, train__device="auto")
    given = resolve(load_config(run).to_dict(), None, ["train.epochs=3"])
    cfg, (_, meta) = resume_config(run, given)
    assert meta["epoch"] == 2 and cfg.train.epochs == 3 and cfg.train.threads == 1
    t = Trainer(given, run, data=toy_data(), resume=True, quiet=True)
    t.fit()
    assert ckpt.latest(run / "checkpoints")[1]["epoch"] == 3


def test_resume_still_refuses_a_changed_option_given(run):
    from aae.runs import load_config

    given = resolve(load_config(run).to_dict(), None, ["train.batch_size=8"])
    with pytest.raises(AAEError, match="option train.batch_size is 16 in the saved run but 8"):
        Trainer(given, run, data=toy_data(), resume=True, quiet=True)
