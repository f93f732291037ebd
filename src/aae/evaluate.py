"""``aae evaluate``: every number computed from a saved run alone, merged into ``RUN/eval.json``.

* Parzen-window log-likelihood of the test set (paper table 1; the protocol of Goodfellow et al.'s
  GAN paper): a Gaussian kernel on 10 000 decoder samples, its width chosen on a validation set.
  The estimator is unreliable in high dimension (Theis et al. 2016): report it for comparison with
  the table, never alone.
* prior fit: MMD^2 with a permutation p-value and per-dimension Kolmogorov-Smirnov statistics of
  the test codes against the prior.
* sample quality: a Frechet distance and classifier-confidence scores in the feature space of a
  small classifier trained once on the run's dataset (see :mod:`aae.classifier`).

Each metric is a function here; :data:`METRICS` maps its name to it, so later variants
(classification, clustering) add an entry rather than a branch.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from . import data as data_mod
from .errors import AAEError, NotApplicable
from .fileio import atomic_write_json
from .metrics import latent_fit, mmd2_test

PARZEN_SIGMAS = np.logspace(-1, 0, 10).tolist()  # the GAN paper's grid (Goodfellow et al. 2014)


def parzen_log_likelihood(x: torch.Tensor, samples: torch.Tensor, sigmas: list[float],
                          chunk: int = 1000) -> torch.Tensor:
    """log p(x) under Gaussian kernels of width sigma centred on ``samples``, for every sigma.

    Exact log-sum-exp; squared distances as |x|^2 + |s|^2 - 2 x.s so the work is one matrix product
    per chunk, shared by all widths. Returns (len(sigmas), len(x)) in float64.
    """
    x, s = x.flatten(1).float(), samples.flatten(1).float()
    m, d = s.shape
    s_sq = s.pow(2).sum(1)
    sig = torch.tensor(sigmas, dtype=torch.float64)
    const = (-math.log(m) - 0.5 * d * torch.log(2 * math.pi * sig**2)).to(torch.float64)
    out = torch.empty(len(sigmas), len(x), dtype=torch.float64)
    buf = torch.empty(min(chunk, len(x)), m)
    for i in range(0, len(x), chunk):
        xc = x[i:i + chunk]
        # d2 - min_j d2 >= 0 once per chunk, then per width one in-place scale, exp and row sum:
        # log sum_j exp(-d2_j / 2s^2) = -min/2s^2 + log sum_j exp(-(d2_j - min) / 2s^2). Two passes
        # over the chunk per width instead of torch.logsumexp's four (max, subtract, exp, sum),
        # and no temporaries: this loop is most of the evaluation's time.
        d2 = torch.addmm(xc.pow(2).sum(1, keepdim=True) + s_sq, xc, s.T, alpha=-2).clamp_min_(0)
        dmin = d2.min(1, keepdim=True).values
        d2.sub_(dmin)
        b = buf[:len(xc)]
        for j, sg in enumerate(sigmas):
            a = -0.5 / sg**2
            torch.mul(d2, a, out=b).exp_()
            out[j, i:i + chunk] = (b.sum(1).log() + dmin.squeeze(1) * a).double() + const[j]
    return out


def parzen(samples: torch.Tensor, val: torch.Tensor, test: torch.Tensor,
           sigmas: list[float] | None = None) -> dict[str, Any]:
    """Choose sigma by the validation log-likelihood, then report the test mean and its standard
    error (std / sqrt(n)), as the paper's table 1 does."""
    sigmas = sigmas or PARZEN_SIGMAS
    t0 = time.perf_counter()
    val_ll = parzen_log_likelihood(val, samples, sigmas).mean(1)
    best = int(torch.argmax(val_ll))
    ll = parzen_log_likelihood(test, samples, [sigmas[best]])[0]
    return {"log_likelihood": float(ll.mean()), "std_error": float(ll.std() / math.sqrt(len(ll))),
            "sigma": sigmas[best], "validation_ll": dict(zip(map(str, sigmas), val_ll.tolist())),
            "n_samples": len(samples), "n_validation": len(val), "n_test": len(test),
            "seconds": round(time.perf_counter() - t0, 2)}


class Context:
    """What every metric may need, computed once: the run, its data, samples and codes."""

    def __init__(self, run: Path, data_dir: str | None = None, n_samples: int = 10000,
                 seed: int = 0):
        from .runs import check_images, load_run

        self.run = run
        self.cfg, self.model, self.meta = load_run(run)
        self.data = data_mod.from_config(self.cfg.data, data_dir)
        check_images(self.model.image_shape, self.data.image_shape, f"dataset {self.cfg.data.dataset}")
        self.n_samples, self.seed = n_samples, seed
        self._samples: torch.Tensor | None = None
        self._codes: torch.Tensor | None = None

    @property
    def prior(self):
        return self.model.regularizers[0].prior

    def samples(self) -> torch.Tensor:
        if self._samples is None:
            g = torch.Generator().manual_seed(self.seed)
            z = self.prior.sample(self.n_samples, generator=g)
            with torch.no_grad():
                self._samples = torch.cat([self.model.decode(self.model.prior_codes(z[i:i + 2000], g))
                                           for i in range(0, len(z), 2000)])
        return self._samples

    def test_codes(self) -> torch.Tensor:
        if self._codes is None:
            reg = self.model.regularizers[0]
            self._codes = self.model.encode_all(self.data.test_x)[reg.code]
        return self._codes

    def validation(self) -> tuple[torch.Tensor, str]:
        """The held-out validation split, or (if the run has none) the last 10 000 training images,
        which the model has seen: said so in the result."""
        if self.data.val_x is not None:
            return self.data.val_x, "held out of training (data.validation)"
        n = min(10000, len(self.data.train_x) // 6 or 1)  # MNIST: 10 000 of 60 000, as the paper
        return self.data.train_x[-n:], "last training images (seen in training; no validation split)"


def eval_parzen(ctx: Context) -> dict[str, Any]:
    val, where = ctx.validation()
    out = parzen(ctx.samples(), val, ctx.data.test_x)
    out["validation"] = where
    return out


def eval_prior_fit(ctx: Context) -> dict[str, Any]:
    codes = ctx.test_codes()
    fit = latent_fit(codes, ctx.prior, seed=ctx.seed)
    g = torch.Generator().manual_seed(ctx.seed)
    sub = codes[torch.randperm(len(codes), generator=g)[:1000]]
    fit["mmd_test"] = mmd2_test(sub, ctx.prior.sample(len(sub), generator=g), seed=ctx.seed)
    return fit


def eval_quality(ctx: Context) -> dict[str, Any]:
    from .classifier import frechet_distance, get_classifier

    if ctx.data.train_y is None or ctx.data.test_y is None:
        raise NotApplicable(f"--quality needs labels to train its feature classifier; dataset "
                       f"{ctx.cfg.data.dataset} has none")
    clf, info = get_classifier(ctx.data)
    feats_real, _ = clf.features(ctx.data.test_x)
    feats_fake, probs = clf.features(ctx.samples())
    p_y = probs.mean(0)
    kl = (probs * (probs.clamp_min(1e-12).log() - p_y.clamp_min(1e-12).log())).sum(1)
    return {
        "frechet_distance": frechet_distance(feats_real.double().numpy(), feats_fake.double().numpy()),
        "confidence": float(probs.max(1).values.mean()),
        "classifier_score": float(torch.exp(kl.mean())),
        "class_histogram": torch.bincount(probs.argmax(1), minlength=probs.shape[1]).tolist(),
        "classifier": info, "n_samples": len(probs), "n_real": len(feats_real),
    }


def classification_error(pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of examples whose predicted class differs from the label."""
    if len(pred) != len(labels) or not len(labels):
        raise ValueError("predictions and labels must be non-empty and of equal length")
    return float((pred.cpu() != labels.cpu()).float().mean())


def eval_classify(ctx: Context) -> dict[str, Any]:
    """Validation and test error of q(y|x), for the newest checkpoint and, where the run kept one,
    the weights with the best validation error (RUN/best/, the paper's model selection)."""
    from . import checkpoint as ckpt
    from .runs import load_weights

    if not ctx.model.caps.y_head:
        raise NotApplicable(f"--classify: run {ctx.run} has no q(y|x) head (see model.class_input: y)")
    if not ctx.model.caps.classify:
        raise NotApplicable(f"--classify: run {ctx.run} was trained without labels (data.labelled = 0): "
                       "its y is a cluster, not a class; use --cluster")
    if ctx.data.test_y is None:
        raise NotApplicable(f"--classify needs test labels; dataset {ctx.cfg.data.dataset} has none")

    def errors(model) -> dict[str, Any]:
        pred = model.predict(ctx.data.test_x)
        out = {"test_error": classification_error(pred, ctx.data.test_y)}
        if ctx.data.val_x is not None and ctx.data.val_y is not None:
            out["val_error"] = classification_error(model.predict(ctx.data.val_x), ctx.data.val_y)
        k = ctx.model.classes
        conf = torch.bincount(ctx.data.test_y.cpu() * k + pred.cpu(), minlength=k * k).view(k, k)
        out["confusion"] = conf.tolist()  # rows: true class, columns: predicted
        return out

    result = {"last": {"epoch": ctx.meta["epoch"], **errors(ctx.model)},
              "labelled": ctx.cfg.data.labelled, "n_test": len(ctx.data.test_y)}
    best_dir = ctx.run / "best"
    if (best_dir / "best.json").is_file():
        import copy

        tensors, meta = ckpt.load(best_dir / "best.json")
        best = copy.deepcopy(ctx.model)
        load_weights(best, tensors, str(best_dir / "best.safetensors"))
        result["best"] = {"epoch": meta["epoch"], **errors(best.eval())}
    return result


class ClusterScores(NamedTuple):
    """Clustering scores of a y head and what they were computed from."""

    scores: dict[str, Any]  # aae.clustering.cluster_scores, plus where the mapping was chosen
    map_x: torch.Tensor  # the images the cluster-to-class mapping was chosen on, their labels
    map_y: torch.Tensor
    map_scores: np.ndarray  # their log-odds (N, K)
    test_assigned: np.ndarray  # each test image's cluster


def cluster_error(model, data) -> ClusterScores | None:
    """The clustering error of a model with a y head (paper section 6): the paper's
    one-example-per-cluster rule and majority vote, mappings chosen on the validation split (or,
    without one, the last 10 000 training images), errors on the test split; NMI and ARI. None
    when the data lacks the labels to score with. Used by ``aae evaluate --cluster`` and after
    every epoch of a clustering run."""
    from .clustering import cluster_scores, log_odds

    if data.test_y is None:
        return None
    map_x, map_y, where = data.val_x, data.val_y, "validation split"
    if map_x is None or map_y is None:  # no held-out split: choose the mapping on training images
        if data.train_y is None:
            return None
        map_x, map_y, where = data.train_x[-10000:], data.train_y[-10000:], "last training images"
    # log-odds, not q(y|x): q rounds to 1.0 (clustering.paper_rule_mapping)
    scores = [log_odds(model.encode_all(x)["y_logits"].float().cpu().numpy())
              for x in (map_x, data.test_x)]
    out = cluster_scores(scores[0], map_y.cpu().numpy(), scores[1], data.test_y.cpu().numpy())
    out["mapping_chosen_on"] = where
    return ClusterScores(out, map_x, map_y.cpu(), scores[0], scores[1].argmax(1))


def eval_cluster(ctx: Context) -> dict[str, Any]:
    """:func:`cluster_error`, the paper's rule's spread over bootstrap resamples of the mapping
    split; for a dimensionality-reduction run also the 5-nearest-neighbour test error in the
    reduced representation (neighbours from up to 10 000 training images). Draws each cluster's
    most confident held-out images, from which the paper's rule names it
    (clusters_confident.png)."""
    from sklearn.neighbors import KNeighborsClassifier

    from .artifacts import write_confident
    from .clustering import paper_rule_spread

    if not ctx.model.caps.y_head:
        raise NotApplicable(f"--cluster: run {ctx.run} has no y head (see model.class_input: "
                       "y or heads)")
    d = ctx.data
    c = cluster_error(ctx.model, d) if d.train_y is not None else None
    if c is None:
        raise NotApplicable(f"--cluster needs labels to score clusters; dataset {ctx.cfg.data.dataset} "
                       "has none")
    out = c.scores
    out["paper_error_bootstrap"] = paper_rule_spread(c.map_scores, c.map_y.numpy(),
                                                     c.test_assigned, d.test_y.numpy())
    write_confident(ctx.run, c.map_x, c.map_y.numpy(), c.map_scores,
                    (out["paper_mapping"], out["majority_mapping"]))
    if ctx.model.caps.representation == "r":
        tr = ctx.model.encode_all(d.train_x[:10000])["r"].numpy()
        te = ctx.model.encode_all(d.test_x)["r"].numpy()
        knn = KNeighborsClassifier(n_neighbors=5).fit(tr, d.train_y[:10000].numpy())
        out["knn_error"] = float((knn.predict(te) != d.test_y.numpy()).mean())
        out["representation_dim"] = int(tr.shape[1])
    return out


METRICS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "parzen": eval_parzen, "prior_fit": eval_prior_fit, "quality": eval_quality,
    "classify": eval_classify, "cluster": eval_cluster,
}


def evaluate(run: str | Path, metrics: list[str], data_dir: str | None = None,
             command: str = "", skip: dict[str, str] | None = None) -> dict[str, Any]:
    """Compute ``metrics`` for a run and merge them into ``RUN/eval.json``. With ``skip`` (a
    dict), a metric that does not apply to the run (:class:`NotApplicable`) is left out and its
    reason put there by name, instead of raised."""
    import json

    run = Path(run)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise AAEError(f"unknown metric {unknown[0]!r}; expected one of {', '.join(METRICS)}")
    ctx = Context(run, data_dir)
    path = run / "eval.json"
    result: dict[str, Any] = {}
    if path.is_file():
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError, UnicodeDecodeError):
            result = {}  # a damaged eval.json is recomputed, not trusted
        result = result if isinstance(result, dict) else {}
    for name in metrics:
        t0 = time.perf_counter()
        try:
            out = METRICS[name](ctx)
        except NotApplicable as e:
            if skip is None:
                raise
            skip[name] = str(e)
            continue
        out["seconds_total"] = round(time.perf_counter() - t0, 2)
        out["command"] = command
        out["checkpoint"] = {"epoch": ctx.meta["epoch"], "file": ctx.meta["tensors"]}
        out["versions"] = {"python": platform.python_version(), "torch": torch.__version__,
                           "numpy": np.__version__, "aae": _version()}
        result[name] = out
        atomic_write_json(path, result)
    return result


def _version() -> str:
    from . import __version__

    return __version__


def summary(result: dict[str, Any]) -> str:
    lines = []
    if "parzen" in result:
        p = result["parzen"]
        lines.append(f"Parzen log-likelihood {p['log_likelihood']:.1f} +- {p['std_error']:.1f} nats "
                     f"(sigma {p['sigma']:.3f}, {p['seconds']:.1f} s)")
    if "prior_fit" in result:
        f = result["prior_fit"]
        lines.append(f"prior fit: MMD^2 {f['mmd_test']['mmd2']:.4f} (p = {f['mmd_test']['p_value']:.3f}), "
                     f"max KS {max(k for k in f['ks'] if k is not None):.3f}")
    if "quality" in result:
        q = result["quality"]
        lines.append(f"sample quality: Frechet distance {q['frechet_distance']:.2f}, confidence "
                     f"{q['confidence']:.3f}, classifier score {q['classifier_score']:.2f} "
                     f"(classifier test accuracy {q['classifier']['test_accuracy']:.4f})")
    if "cluster" in result:
        c = result["cluster"]
        knn = f", 5-NN error {100 * c['knn_error']:.2f}%" if "knn_error" in c else ""
        b = c.get("paper_error_bootstrap")  # absent in eval.json files of earlier versions
        spread = "" if b is None else (f" [{100 * b['p05']:.1f} to {100 * b['p95']:.1f}% over "
                                       "validation resamples]")
        lines.append(f"clustering ({c['clusters']} clusters): error {100 * c['paper_error']:.2f}% "
                     f"(paper's rule){spread}, {100 * c['majority_error']:.2f}% (majority vote), "
                     f"NMI {c['nmi']:.3f}, ARI {c['ari']:.3f}{knn}")
    if "classify" in result:
        c = result["classify"]
        for which in ("last", "best"):
            if which in c:
                r = c[which]
                val = f", validation {100 * r['val_error']:.2f}%" if "val_error" in r else ""
                lines.append(f"classification ({which}, epoch {r['epoch']}): test error "
                             f"{100 * r['test_error']:.2f}%{val}")
    return "\n".join(lines)


__all__ = ["evaluate", "parzen", "parzen_log_likelihood", "METRICS", "summary"]
