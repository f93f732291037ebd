"""MLflow tracking: a hook that logs a run to an MLflow tracking server or store.

``train.mlflow_uri`` (``sqlite:///mlflow.db``, ``http://host:5000``, a folder...) turns it on. The
MLflow run is named after the run folder and gets: every config key as a parameter, each epoch's
scalar metrics (step = epoch), every sample grid as it is written (``samples/``), and after
training the run's files (config, metrics, report, plots, ``eval.json``; not the checkpoints).
A resumed run logs into the same MLflow run (its id is kept in the checkpoints).

It talks to MLflow through ``MlflowClient`` alone, so it leaves MLflow's global "active run"
to the user's own code.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AAEError
from .hooks import SCALAR_KEYS, Hook, new_grids

if TYPE_CHECKING:  # pragma: no cover
    from .training import Trainer

# the run's own files logged at the end (the checkpoints are left out: they can be large and
# hold the optimizers' state; the run folder keeps them)
RUN_FILES = ("config.toml", "metrics.jsonl", "report.html", "eval.json", "tsne.png", "latent.png",
             "latent.json", "latent_scatter.png", "manifold.png", "clusters.png",
             "clusters_confident.png", "samples/progress.png")
PARAM_MAX = 500  # MLflow's limit on a parameter value is 6000 characters; keep them readable


def flat_params(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"model.code_dim": "8", ...} (MLflow parameters are strings)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_params(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)[:PARAM_MAX]
    return out


class MLflow(Hook):
    """Logs to ``train.mlflow_uri`` (rank 0 only, as every hook)."""

    def __init__(self, t: Trainer):
        try:
            from mlflow.entities import Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise AAEError("train.mlflow_uri: MLflow is not installed "
                           "(pip install 'aae[mlflow]')") from None
        if t.quiet:  # MLflow's own INFO lines (its store's schema upgrades, say)
            logging.getLogger("mlflow").setLevel(logging.WARNING)
        cfg, extra = t.cfg.train, t.t.state.extra
        self.client = MlflowClient(tracking_uri=cfg.mlflow_uri)
        self.logged: set[int] = set()
        self.run_id = extra.get("mlflow_run_id")
        if self.run_id is None:
            exp = self.client.get_experiment_by_name(cfg.mlflow_experiment)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(
                cfg.mlflow_experiment)
            run = self.client.create_run(exp_id, run_name=t.out.name,
                                         tags={"aae.run_dir": str(t.out.resolve())})
            self.run_id = extra["mlflow_run_id"] = run.info.run_id
            params = [Param(k, v) for k, v in flat_params(t.cfg.to_dict()).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
                self.client.log_batch(self.run_id, params=params[i:i + 100])
        else:  # resumed
            self.client.update_run(self.run_id, status="RUNNING")

    def epoch_end(self, t: Trainer, line: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        epoch, now = line["epoch"], int(time.time() * 1000)
        metrics = [Metric(k, float(line[k]), now, epoch) for k in SCALAR_KEYS
                   if isinstance(line.get(k), (int, float))]
        metrics += [Metric(f"lr_{phase}", float(lr), now, epoch)
                    for phase, lr in line.get("lr", {}).items()]
        self.client.log_batch(self.run_id, metrics=metrics)
        for e, path in new_grids(t.out, self.logged, epoch):
            self.client.log_artifact(self.run_id, str(path), "samples")
            self.logged.add(e)

    def run_end(self, t: Trainer) -> None:
        for name in RUN_FILES:
            path = t.out / name
            if path.is_file():
                folder = str(Path(name).parent) if "/" in name else None
                self.client.log_artifact(self.run_id, str(path), folder)
        self.client.set_terminated(self.run_id, "FINISHED")
        self.run_id = None

    def close(self) -> None:
        if self.run_id is not None:  # stopped before the end: interrupted, diverged or failed
            self.client.set_terminated(self.run_id, "KILLED")
            self.run_id = None
