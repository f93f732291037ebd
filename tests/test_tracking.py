"""MLflow tracking, for real: a run logs into an empty SQLite store and MLflow's own client reads
back the params, both epochs' metrics and the sample grids; a resumed run logs into the same
MLflow run."""

from __future__ import annotations

import numpy as np
import pytest

from aae import AAE
from aae.cli import main

from conftest import make_images

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")

SMALL = {"model": {"encoder_hidden": [32], "decoder_hidden": [32], "disc_hidden": [16],
                   "code_dim": 2},
         "train": {"epochs": 2, "batch_size": 16, "tsne_points": 0, "device": "cpu",
                   "sample_epochs": [0, 1]}}


def test_mlflow_sqlite_store_gets_params_metrics_and_samples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is relative to the directory
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    x, y = make_images(160)
    train = {**SMALL["train"], "mlflow_uri": uri, "mlflow_experiment": "toys"}
    AAE(model=SMALL["model"], train=train).fit(x, labels=y, out=tmp_path / "run")

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("toys")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["model.code_dim"] == "2" and run.data.params["train.epochs"] == "2"
    history = client.get_metric_history(run.info.run_id, "loss_recon")
    assert [m.step for m in history] == [1, 2]
    lines = [__import__("json").loads(s) for s in (tmp_path / "run/metrics.jsonl").open()]
    assert [m.value for m in history] == pytest.approx([ln["loss_recon"] for ln in lines])
    names = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert {"samples/epoch_0000.png", "samples/epoch_0001.png"} <= names
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.toml", "metrics.jsonl", "report.html"} <= files
    local = client.download_artifacts(run.info.run_id, "samples/epoch_0001.png", str(tmp_path))
    assert open(local, "rb").read() == (tmp_path / "run/samples/epoch_0001.png").read_bytes()


def test_resumed_run_logs_into_the_same_mlflow_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    x, y = make_images(160)
    np.savez(tmp_path / "toy.npz", x=x, y=y)
    common = ["--dataset", str(tmp_path / "toy.npz"), "--batch-size", "16", "--quiet",
              "--set", "model.encoder_hidden=[32]", "--set", "model.decoder_hidden=[32]",
              "--set", "model.disc_hidden=[16]", "--set", "train.tsne_points=0",
              "--set", f"train.mlflow_uri={uri!r}".replace("'", '"')]
    run = str(tmp_path / "run")
    assert main(["train", *common, "--epochs", "1", "--out", run]) == 0
    assert main(["train", "--resume", run, "--epochs", "3", "--quiet"]) == 0
    client = mlflow.MlflowClient(tracking_uri=uri)
    (r,) = client.search_runs([client.get_experiment_by_name("aae").experiment_id])
    assert [m.step for m in client.get_metric_history(r.info.run_id, "loss_recon")] == [1, 2, 3]
    assert r.info.status == "FINISHED"


def test_mlflow_uri_without_mlflow_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    from aae import AAEError

    with pytest.raises(AAEError, match="train.mlflow_uri"):
        AAE(train={"mlflow_uri": "sqlite:///x.db"})
    assert not list(tmp_path.iterdir())
