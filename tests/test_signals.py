"""Signals after training: the post-training plots and report stop at once with a line that says
the run is saved and how to draw what was skipped; the lock is given back."""

from __future__ import annotations

import os
import signal
import time

import pytest

from aae import checkpoint as ckpt
from aae.errors import Interrupted
from aae.hooks import Hook
from aae.runs import RunLock
from aae.training import Trainer

from conftest import poison_recon_loss, tiny_config


class SignalDuringPlots(Hook):
    """Stands for a long native computation after training (the t-SNE): sends the signal to its
    own process, then works for up to 30 s; the handler must cut it short."""

    def __init__(self, signum: int):
        self.signum, self.seconds = signum, None

    def run_end(self, t) -> None:
        start = time.perf_counter()
        os.kill(os.getpid(), self.signum)
        while time.perf_counter() - start < 30:
            sum(range(1000))
        self.seconds = time.perf_counter() - start


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_after_training_stops_the_plots_at_once(tiny_data, tmp_path, signum):
    t = Trainer(tiny_config(epochs=2), tmp_path / "run", data=tiny_data, quiet=True)
    late = SignalDuringPlots(signum)
    t.hooks = [h for h in t.hooks if type(h).__name__ != "FinalArtifacts"] + [late]
    start = time.perf_counter()
    with pytest.raises(Interrupted, match="after training: the run is trained and saved") as e:
        t.fit()
    assert e.value.signum == signum and "aae report" in str(e.value)
    assert late.seconds is None and time.perf_counter() - start < 25
    _, meta = ckpt.latest(tmp_path / "run" / "checkpoints")
    assert meta["epoch"] == 2  # trained to the end and saved
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers given back
    RunLock(tmp_path / "run").release()  # the lock is free again


def test_failure_before_the_first_checkpoint_leaves_nothing(tiny_data, tmp_path, monkeypatch):
    from aae.errors import AAEError

    run = tmp_path / "run"
    real = ckpt.save

    def full_disk(*a, **kw):
        raise AAEError(f"cannot write {a[0]}: the disk is full")

    monkeypatch.setattr(ckpt, "save", full_disk)
    t = Trainer(tiny_config(epochs=1), run, data=tiny_data, quiet=True)
    assert (run / "config.toml").is_file() and (run / "tb").is_dir()
    with pytest.raises(AAEError, match="disk is full"):
        t.fit()
    assert not run.exists()  # config.toml, samples/, tb/ and the lock went with the folder
    monkeypatch.setattr(ckpt, "save", real)
    Trainer(tiny_config(epochs=1), run, data=tiny_data, quiet=True).fit()  # the retry is a new run
    assert ckpt.latest(run / "checkpoints")[1]["epoch"] == 1


def test_failure_while_building_keeps_the_users_folder(tiny_data, tmp_path, monkeypatch):
    from aae import hooks

    run = tmp_path / "mine"
    run.mkdir()  # an empty folder the user made: it stays, empty

    def broken(t):
        raise RuntimeError("tracking server down")

    monkeypatch.setattr(hooks, "default_hooks", broken)
    with pytest.raises(RuntimeError, match="server down"):
        Trainer(tiny_config(epochs=1), run, data=tiny_data, quiet=True)
    assert run.is_dir() and not any(run.iterdir())
    monkeypatch.undo()
    Trainer(tiny_config(epochs=1), run, data=tiny_data, quiet=True).fit()


def test_divergence_names_a_command_that_continues(tiny_data, tmp_path, monkeypatch, capsys):
    import shlex

    from aae.cli import main
    from aae.errors import DivergenceError

    run = tmp_path / "run"
    t = Trainer(tiny_config(epochs=3), run, data=tiny_data, quiet=True)
    poison_recon_loss(monkeypatch, t.model)
    with pytest.raises(DivergenceError, match="reconstruction loss") as e:
        t.fit()
    command = str(e.value).split("with a lower rate: ")[1]
    args = shlex.split(command)
    assert args[:3] == ["aae", "train", "--resume"] and "optim.recon.lr=0.0001" in args
    monkeypatch.undo()
    assert main([*args[1:], "--quiet"]) == 0  # the advice works: the run continues to the end
    _, meta = ckpt.latest(run / "checkpoints")
    assert meta["epoch"] == 3 and meta["config"]["optim"]["recon"]["lr"] == pytest.approx(1e-4)
    from aae.config import load_toml

    assert load_toml(run / "config.toml")["optim"]["recon"]["lr"] == pytest.approx(1e-4)
