"""The ``aae`` command: a thin layer over the Python API.

User errors (:class:`AAEError`) print one line and exit with status 2; a diverged run exits 3; an
interrupted run saves itself and exits 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
from pathlib import Path

from .errors import AAEError, DivergenceError, Interrupted


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="aae", description="Adversarial autoencoders (Makhzani et al. 2015).")
    p.add_argument("--version", action="version", version=f"aae {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    sub.add_parser("presets", help="list the presets")
    cf = sub.add_parser("config", help="every option --set accepts: type, value, meaning")
    cf.add_argument("--preset", help="show this preset's values instead of the defaults")
    d = sub.add_parser("demo", help="the demo run: MNIST if found or fetched, else sklearn digits")
    d.add_argument("--out", default="runs/demo", metavar="RUN_DIR")
    _add_run_commands(sub)
    _add_export(sub)
    return p


def _add_train(sub) -> None:
    from .config import Config

    c = Config()  # the defaults each flag overrides, shown in the help
    t = sub.add_parser("train", help="train a run", description="Train a run. Flags override "
                       "the config (defaults < --preset < --config < --set < flags); every option "
                       "is listed by: aae config.")
    g = t.add_argument_group("configuration")
    g.add_argument("--preset", help="a named configuration (list: aae presets)")
    g.add_argument("--config", metavar="FILE.toml", help="a TOML config file")
    g.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override one option, e.g. --set optim.disc.lr=1e-4 (repeatable)")
    g = t.add_argument_group("data")
    g.add_argument("--dataset", help="mnist | fashion-mnist | colored-mnist | svhn | cifar10 | "
                   f"celeba | digits | PATH (.npy/.npz or folder) (default: {c.data.dataset})")
    g.add_argument("--data-dir", metavar="DIR", help="where the IDX files are (default: "
                   "$AAE_DATA_DIR, then ~/.cache/aae)")
    g.add_argument("--limit", type=int, metavar="N", help="train on the first N training images "
                   "(default: all)")
    g.add_argument("--labelled", type=int, metavar="N", help="keep labels on N class-balanced "
                   "images, -1: all (default: -1)")
    g = t.add_argument_group("model")
    g.add_argument("--prior", help="gaussian | uniform | mixture | swiss_roll | "
                   f"package.module:attr (default: {c.prior.name})")
    g.add_argument("--posterior", help="q(z|x): deterministic | gaussian | universal "
                   f"(default: {c.model.posterior})")
    g = t.add_argument_group("training")
    g.add_argument("--epochs", type=int, help=f"(default: {c.train.epochs})")
    g.add_argument("--seed", type=int, help=f"(default: {c.train.seed})")
    g.add_argument("--batch-size", type=int, help=f"(default: {c.train.batch_size})")
    g.add_argument("--device", help=f"auto | cpu | cuda | cuda:N (default: {c.train.device})")
    g.add_argument("--precision", help="fp32 | bf16 autocast, which pays on GPUs and CPUs with "
                   f"AMX (default: {c.train.precision})")
    g.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_const", const=False,
                   default=None, help="on CUDA, step eagerly instead of replaying one captured "
                   "CUDA graph (default: the graph)")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    g = t.add_argument_group("output")
    g.add_argument("--out", metavar="RUN_DIR", help="the run folder (default: runs/<preset>)")
    g.add_argument("--force", action="store_true", help="replace the run already in --out")
    g.add_argument("--quiet", action="store_true", help="no progress bar, epoch lines or warnings")


def _add_run_commands(sub) -> None:
    """The commands that read a trained run."""
    s = sub.add_parser("sample", help="decode prior samples of a trained run: a grid or arrays")
    s.add_argument("run", metavar="RUN_DIR")
    s.add_argument("--n", type=int, default=100, help="how many samples (default 100)")
    s.add_argument("--seed", type=int, default=0, help="the draws' seed (default 0)")
    s.add_argument("--out", metavar="FILE", help=".png (a grid), .npy (the images, N x C x H x W "
                   "in [0, 1]) or .npz (images and codes); default RUN_DIR/sample_SEED.png")
    s.add_argument("--force", action="store_true", help="replace an existing --out file")

    dc = sub.add_parser("decode", help="decode codes from a .npy/.npz file into images")
    dc.add_argument("run", metavar="RUN_DIR")
    dc.add_argument("--input", required=True, metavar="CODES", help=".npy (N x code_dim) or .npz "
                    "with an array z (and, for a class-conditional decoder, classes)")
    dc.add_argument("--out", required=True, metavar="FILE", help=".png, .npy or .npz")
    dc.add_argument("--force", action="store_true", help="replace an existing --out file")

    e = sub.add_parser("encode", help="write the codes of a dataset split or of new images")
    e.add_argument("run", metavar="RUN_DIR")
    e.add_argument("--split", choices=["train", "test"], default="test",
                   help="which split of the run's dataset (default test)")
    e.add_argument("--input", metavar="FILE_OR_DIR",
                   help="encode these images instead: .npy/.npz or an image folder")
    e.add_argument("--data-dir", metavar="DIR")
    e.add_argument("--out", required=True, metavar="FILE.npz")
    e.add_argument("--force", action="store_true", help="replace an existing --out file")

    ev = sub.add_parser("evaluate", help="compute metrics of a run into RUN/eval.json")
    ev.add_argument("run", metavar="RUN_DIR")
    ev.add_argument("--parzen", action="store_true", help="Parzen-window test log-likelihood")
    ev.add_argument("--prior-fit", action="store_true", help="MMD^2 test and KS of test codes")
    ev.add_argument("--quality", action="store_true", help="Frechet distance, classifier scores")
    ev.add_argument("--classify", action="store_true",
                    help="validation and test error of q(y|x) (semi-supervised runs)")
    ev.add_argument("--cluster", action="store_true",
                    help="clustering error (paper's rule, majority vote), NMI, ARI (y-head runs)")
    ev.add_argument("--all", action="store_true", help="every metric above that applies")
    ev.add_argument("--data-dir", metavar="DIR")

    sc = sub.add_parser("score", help="per-image outlier scores of a trained run, as CSV")
    sc.add_argument("run", metavar="RUN_DIR")
    sc.add_argument("--input", required=True, metavar="FILE_OR_DIR",
                    help=".npy/.npz images (an is_outlier array optional) or an image folder "
                         "(a sub-folder named outliers marks outliers)")
    sc.add_argument("--labels", metavar="FILE", help="0/1 per image (.npy or one per line): "
                                                     "which images are outliers; adds AUROC")
    sc.add_argument("--out", required=True, metavar="FILE.csv")
    sc.add_argument("--force", action="store_true", help="replace an existing --out file")

    rp = sub.add_parser("report", help="(re)write RUN/report.html, a self-contained page")
    rp.add_argument("run", metavar="RUN_DIR")

    cp = sub.add_parser("compare", help="runs side by side: DIR/compare.html and compare.csv")
    cp.add_argument("runs", nargs="+", metavar="RUN_DIR")
    cp.add_argument("--out", required=True, metavar="DIR")

    pl = sub.add_parser("plot", help="redraw tsne.png, latent.png and latent.json from a run")
    pl.add_argument("run", metavar="RUN_DIR")
    pl.add_argument("--data-dir", metavar="DIR")


def _add_export(sub) -> None:
    ex = sub.add_parser("export", help="the encoder or decoder as an ONNX or torch.export file")
    ex.add_argument("run", metavar="RUN_DIR")
    ex.add_argument("--part", choices=["encoder", "decoder"], default="decoder",
                    help="which network (default decoder)")
    ex.add_argument("--format", choices=["onnx", "pt2"], help="default: from --out's suffix, "
                    "else onnx")
    ex.add_argument("--out", metavar="FILE", help="default RUN_DIR/PART.FORMAT")
    ex.add_argument("--force", action="store_true", help="replace an existing --out file")


def _overrides(a: argparse.Namespace) -> dict:
    o: dict = {}
    for key, section, name in (("epochs", "train", "epochs"), ("seed", "train", "seed"),
                               ("batch_size", "train", "batch_size"), ("device", "train", "device"),
                               ("dataset", "data", "dataset"), ("data_dir", "data", "data_dir"),
                               ("limit", "data", "limit"), ("prior", "prior", "name"),
                               ("posterior", "model", "posterior"), ("labelled", "data", "labelled"),
                               ("precision", "train", "precision"),
                               ("cuda_graph", "train", "cuda_graph")):
        v = getattr(a, key, None)
        if v is not None:
            o.setdefault(section, {})[name] = v
    return o


def cmd_train(a: argparse.Namespace) -> int:
    from . import presets
    from .config import resolve
    from .training import Trainer

    if a.resume:
        from .runs import load_config

        if a.out and Path(a.out) != Path(a.resume):
            raise AAEError("--resume RUN_DIR continues RUN_DIR in place; drop --out")
        if a.force or a.preset or a.config:
            raise AAEError("--resume takes the run's saved config; drop --force, --preset, --config")
        # the saved config plus what was given explicitly (only epochs and device may change)
        cfg = resolve(load_config(Path(a.resume)).to_dict(), None, a.sets, _overrides(a))
        out = a.resume
    else:
        preset = presets.get(a.preset).overrides if a.preset else None
        cfg = resolve(preset, a.config, a.sets, _overrides(a))
        out = a.out or f"runs/{a.preset or 'default'}"
    Trainer(cfg, out, resume=bool(a.resume), force=a.force, quiet=a.quiet).fit()
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    """Train the demo preset on MNIST; with no MNIST to be had, say so in one line and train the
    same demo on scikit-learn's bundled digits instead, so that a machine with no network and no
    data still sees every artifact. An existing demo run in --out is replaced."""
    from . import data as data_mod
    from . import presets
    from .config import resolve
    from .training import Trainer

    try:
        data = data_mod.load("mnist")
        name = "demo"
    except AAEError as e:
        print(f"aae demo: MNIST unavailable ({e}); running the demo on scikit-learn's digits",
              file=sys.stderr)
        data, name = data_mod.load("digits"), "demo-digits"
    cfg = resolve(presets.get(name).overrides)
    Trainer(cfg, a.out, data=data, force=True).fit()
    print(f"demo run written to {a.out}: samples/progress.png, tsne.png, latent.png")
    return 0


def cmd_presets(a: argparse.Namespace) -> int:  # noqa: ARG001
    from .presets import PRESETS

    width, twidth = max(map(len, PRESETS)), max(len(p.time_cpu) for p in PRESETS.values())
    print(f"{'preset':<{width}}  {'2 CPU cores':<{twidth}}  description")
    for name, p in PRESETS.items():
        print(f"{name:<{width}}  {p.time_cpu:<{twidth}}  {p.description}")
    from .presets import ALIASES

    for old, new in ALIASES.items():
        print(f"(--preset {old} still means {new}; the old name goes in the next release)")
    return 0


IMAGE_OUTPUTS = (".png", ".npy", ".npz")
MAX_SAMPLES = 10**6  # aae sample --n: a million 28x28 images are 3 GB


def _new_file(out: str, force: bool, suffixes: tuple[str, ...]) -> None:
    """``--out`` names a file of one of ``suffixes`` that does not exist yet (or --force), in a
    folder that does: nothing a user made is overwritten by accident."""
    if not out.endswith(suffixes):
        raise AAEError(f"option --out {out}: expected a file name ending in {', '.join(suffixes)}")
    path = Path(out)
    if path.is_dir() or (path.exists() and not force):
        raise AAEError(f"option --out {out}: already exists; choose another name or pass --force "
                       "to replace it")
    if not path.parent.is_dir():
        raise AAEError(f"option --out {out}: the folder {path.parent} does not exist")


def _check_out(out: str, force: bool = False) -> None:
    _new_file(out, force, IMAGE_OUTPUTS)


def _write_images(out: str, images, codes: dict | None = None) -> None:
    """A grid (.png), the images (.npy) or images and codes (.npz), written atomically."""
    import numpy as np

    from . import plots
    from .fileio import atomic_write_bytes

    buf = io.BytesIO()
    if out.endswith(".png"):
        atomic_write_bytes(out, plots.grid_png(images, nrow=min(10, len(images))))
        return
    if out.endswith(".npy"):
        np.save(buf, images)
    else:
        np.savez(buf, images=images, **{k: v.cpu().numpy() for k, v in (codes or {}).items()})
    atomic_write_bytes(out, buf.getvalue())


def cmd_config(a: argparse.Namespace) -> int:
    from .config import reference, resolve

    cfg = None
    if a.preset:
        from . import presets

        cfg = resolve(presets.get(a.preset).overrides)
    rows = reference(cfg)
    kw = max(len(k) for k, *_ in rows)
    tw = max(len(t) for _, t, *_ in rows)
    for key, tp, value, doc in rows:
        shown = repr(value) if isinstance(value, str) else str(value).lower() \
            if isinstance(value, bool) else str(value)
        first = re.split(r"\.\s+(?=[A-Z])", doc)[0]  # one line: the first sentence
        print(f"{key:<{kw}}  {tp:<{tw}}  {shown:<14}  {first}".rstrip())
    return 0


def cmd_sample(a: argparse.Namespace) -> int:
    import torch

    from .runs import load_run

    if not 0 < a.n <= MAX_SAMPLES:
        raise AAEError(f"option --n: expected an integer from 1 to {MAX_SAMPLES}, got {a.n}")
    if not 0 <= a.seed < 2**63:
        raise AAEError(f"option --seed: expected an integer from 0 to 2^63 - 1, got {a.seed}")
    out = a.out or str(Path(a.run) / f"sample_{a.seed}.png")
    _check_out(out, a.force)
    _, model, _ = load_run(a.run)
    with torch.no_grad():
        g = torch.Generator().manual_seed(a.seed)
        codes = model.prior_codes(model.prior.sample(a.n, generator=g), g)
        images = model.decode(codes).numpy()
    _write_images(out, images, codes)
    print(out)
    return 0


def _read_codes(path: Path, dim: int):
    """z (and classes, if given) from a .npy or .npz file of codes."""
    import numpy as np
    import torch

    try:
        obj = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise AAEError(f"option --input {path}: not a readable .npy/.npz file ({e})") from None
    z, classes = (obj, None) if isinstance(obj, np.ndarray) else (
        obj["z"] if "z" in obj.files else None, obj["classes"] if "classes" in obj.files else None)
    if z is None or z.ndim != 2 or z.shape[1] != dim or not np.issubdtype(z.dtype, np.number) \
            or not np.isfinite(z).all():
        got = "no array z" if z is None else f"{z.dtype} {z.shape}"
        raise AAEError(f"option --input {path}: expected finite codes shaped (N, {dim}), got {got}")
    cls = None if classes is None else torch.as_tensor(np.asarray(classes, dtype=np.int64))
    return torch.as_tensor(z, dtype=torch.float32), cls


def cmd_decode(a: argparse.Namespace) -> int:
    import torch

    from .runs import load_run

    _check_out(a.out, a.force)
    _, model, _ = load_run(a.run)
    z, classes = _read_codes(Path(a.input), model.cfg.code_dim)
    if classes is not None and (len(classes) != len(z) or not model.caps.class_conditional
                                or int(classes.min()) < 0 or int(classes.max()) >= model.classes):
        raise AAEError(f"option --input {a.input}: classes must be {len(z)} integers in "
                       f"[0, {max(model.classes - 1, 0)}] for a class-conditional decoder")
    with torch.no_grad():
        codes = model.prior_codes(z, classes=classes)
        images = model.decode(codes).numpy()
    _write_images(a.out, images, codes)
    print(a.out)
    return 0


def _run_data(model, cfg, data_dir: str | None):
    from . import data as data_mod
    from .runs import check_images

    data = data_mod.from_config(cfg.data, data_dir)
    check_images(model.image_shape, data.image_shape, f"dataset {cfg.data.dataset}")
    return data


def cmd_encode(a: argparse.Namespace) -> int:
    import numpy as np

    from .fileio import atomic_write_bytes
    from .runs import load_run

    _new_file(a.out, a.force, (".npz",))
    cfg, model, _ = load_run(a.run)
    if a.input:
        x, y = _input_images(Path(a.input), model)
    else:
        data = _run_data(model, cfg, a.data_dir)
        x = data.train_x if a.split == "train" else data.test_x
        y = data.train_y if a.split == "train" else data.test_y
    codes = model.encode_all(x)
    arrays = {k: v.numpy() for k, v in codes.items()}
    if y is not None:
        arrays["labels"] = y.numpy()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(a.out, buf.getvalue())
    print(a.out)
    return 0


def _input_images(src: Path, model):
    """Images (and labels, where the source has them) of a user's file or folder, checked
    against the size the run's model takes."""
    from . import data as data_mod
    from .runs import check_images

    if src.is_dir():
        x, y, _, _ = data_mod.read_folder(src)
    elif src.suffix in (".npy", ".npz") and src.is_file():
        x, y, _ = data_mod.read_array(src)
    else:
        raise AAEError(f"option --input {src}: expected a .npy/.npz file or a folder of images")
    check_images(model.image_shape, tuple(x.shape[1:]), f"option --input {src}")
    return x, y


def cmd_plot(a: argparse.Namespace) -> int:
    from . import artifacts
    from .metrics import summarize_fit
    from .runs import load_run

    cfg, model, _ = load_run(a.run)
    data = _run_data(model, cfg, a.data_dir)
    fit = artifacts.write_latent(Path(a.run), model, data, cfg.train.seed, cfg.train.tsne_points)
    print(f"test codes vs prior: {summarize_fit(fit)}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .evaluate import METRICS, evaluate, summary

    chosen = [m for m in METRICS if getattr(a, m)]
    if a.all:
        from .model import Capabilities
        from .runs import load_config

        rc = load_config(Path(a.run))
        caps = Capabilities.of(rc.model, rc.data.labelled)
        chosen = [m for m in METRICS if (m != "classify" or caps.classify)
                  and (m != "cluster" or caps.y_head)]
    if not chosen:
        raise AAEError("aae evaluate: choose metrics: --parzen, --prior-fit, --quality, "
                       "--classify, --cluster or --all")
    skipped: dict[str, str] | None = {} if a.all else None
    result = evaluate(a.run, chosen, a.data_dir, command=" ".join(["aae", *sys.argv[1:]]),
                      skip=skipped)
    for name, why in (skipped or {}).items():
        print(f"skipped {name}: {why}")
    print(summary({k: result[k] for k in chosen if k not in (skipped or {})}))
    from .report import write_report

    print(f"report: {write_report(a.run)}")  # the report shows eval.json: keep it current
    return 0


def _outlier_labels(a: argparse.Namespace, n: int, found):
    import numpy as np

    if a.labels:
        path = Path(a.labels)
        try:
            raw = np.load(path, allow_pickle=False) if path.suffix == ".npy" else np.loadtxt(path)
        except (OSError, ValueError) as e:
            raise AAEError(f"option --labels {path}: not a readable .npy or text file ({e})") from None
        found = np.asarray(raw).ravel()
    if found is None:
        return None
    found = np.asarray(found).ravel()
    if len(found) != n or not np.isin(found, (0, 1)).all():
        raise AAEError(f"option --labels: expected {n} values of 0 or 1 (one per image), got "
                       f"{len(found)} values {sorted(set(found.tolist()))[:5]}")
    return found.astype(bool)


def cmd_score(a: argparse.Namespace) -> int:
    from . import data as data_mod
    from .runs import check_images, load_run
    from .score import auroc, score_images, write_scores

    _new_file(a.out, a.force, (".csv",))
    src = Path(a.input)
    _, model, _ = load_run(a.run)
    found = None
    if src.is_dir():
        x, y, classes, files = data_mod.read_folder(src)
        names = [str(f.relative_to(src)) for f in files]
        if classes and any(c.lower() in ("outlier", "outliers") for c in classes):
            k = next(i for i, c in enumerate(classes) if c.lower() in ("outlier", "outliers"))
            found = (y == k).numpy()
    elif src.suffix in (".npy", ".npz"):
        x, _, extra = data_mod.read_array(src, ("is_outlier",))
        names = [str(i) for i in range(len(x))]
        found = extra.get("is_outlier")
    else:
        raise AAEError(f"option --input {src}: expected a .npy/.npz file or a folder of images")
    check_images(model.image_shape, tuple(x.shape[1:]), f"option --input {src}")
    is_out = _outlier_labels(a, len(x), found)
    scores = score_images(model, x)
    write_scores(Path(a.out), names, scores, is_out)
    print(f"{a.out}: {len(x)} images, scores {', '.join(scores)}")
    if is_out is not None:
        for k, v in auroc(scores, is_out).items():
            print(f"AUROC {k}: {v:.3f}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .api import AAE

    fmt = a.format or (a.out.rsplit(".", 1)[-1] if a.out and a.out.endswith((".onnx", ".pt2"))
                       else "onnx")
    out = Path(a.out) if a.out else Path(a.run) / f"{a.part}.{fmt}"
    print(AAE.load(a.run).export(out, a.part, fmt, force=a.force))
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from .report import write_report

    print(write_report(a.run))
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from .report import compare

    print(compare(a.runs, a.out))
    return 0


COMMANDS = {"train": cmd_train, "demo": cmd_demo, "presets": cmd_presets, "sample": cmd_sample,
            "decode": cmd_decode, "config": cmd_config,
            "encode": cmd_encode, "evaluate": cmd_evaluate, "plot": cmd_plot, "score": cmd_score,
            "export": cmd_export, "report": cmd_report, "compare": cmd_compare}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "quiet", False):  # third-party warnings (openTSNE's, say) too
        import warnings

        warnings.filterwarnings("ignore")

    try:
        return COMMANDS[args.command](args)
    except DivergenceError as e:
        print(f"aae: error: {e}", file=sys.stderr)
        return 3
    except AAEError as e:
        print(f"aae: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"aae: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("aae: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output was piped into a command that stopped reading (head)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (no flush error at exit)
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
