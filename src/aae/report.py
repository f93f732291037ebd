"""``RUN/report.html`` and ``aae compare``: runs explained in a browser, from their files alone.

A report is one self-contained HTML file (every picture inlined as a PNG data URI, no script, no
network), written from what a run directory already holds: ``config.toml``, ``metrics.jsonl``,
``eval.json``, ``latent.json``, the sample grids and plots, the newest checkpoint's metadata. The
curves are drawn with matplotlib (:mod:`aae.plots`). ``aae train`` writes it at the end of every
run; ``aae report RUN`` rewrites it (after ``aae evaluate``, say).

``aae compare RUN RUN ... --out DIR`` writes ``DIR/compare.html`` (configs side by side with the
differences marked, curves overlaid, metrics in one table) and ``DIR/compare.csv``.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import math
import platform
import re
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from . import plots
from .config import Config, load_toml
from .errors import AAEError
from .fileio import atomic_write_text, read_jsonl

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 4px}
h2{font-size:1.2em;margin:28px 0 10px;border-bottom:1px solid #d8dce3;padding-bottom:4px}
.sub{color:#5b6475;margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:1.25em} .card span{color:#5b6475;font-size:.85em}
figure{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:10px;margin:0 0 14px;
display:inline-block;vertical-align:top}
figure img{max-width:100%;height:auto;display:block} figcaption{color:#5b6475;font-size:.85em;margin-top:6px}
table{border-collapse:collapse;background:#fff;font-size:.9em;margin-bottom:12px}
td,th{border:1px solid #e1e4ea;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4} tr.diff td{background:#fff4d6} code{font-size:.9em}
.timeline{display:flex;gap:10px;overflow-x:auto} .timeline figure{flex:0 0 auto;max-width:360px}
.skipped{background:#fff4d6;border:1px solid #e8d9a8;border-radius:8px;padding:4px 14px;margin:0 0 14px}
"""


def _img(png: bytes, alt: str, caption: str = "") -> str:
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{html.escape(alt)}">{cap}</figure>'


def _file_img(path: Path, caption: str) -> str:
    return _img(path.read_bytes(), path.name, caption) if path.is_file() else ""


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body><main>{body}</main></body></html>\n")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    if isinstance(v, list) and len(v) > 12:
        return f"[{len(v)} values]"
    return str(v)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists are kept as values."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


def read_metrics(run: Path) -> list[dict[str, Any]]:
    return read_jsonl(run / "metrics.jsonl")


def _json(path: Path) -> dict[str, Any]:
    """A JSON table the run wrote ({} where it is missing, unreadable or not a table)."""
    try:
        d = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):  # JSONDecodeError is one
        return {}
    return d if isinstance(d, dict) else {}


def _config(run: Path) -> dict[str, Any]:
    if not (run / "config.toml").is_file():
        raise AAEError(f"{run}: not a run directory (no config.toml)")
    return load_toml(run / "config.toml")


def _series(lines: list[dict[str, Any]], key: str, x: str = "epoch") -> tuple[list, list]:
    pts = [(ln[x], ln[key]) for ln in lines if isinstance(ln.get(key), (int, float))
           and isinstance(ln.get(x), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


CURVES = [  # (title, y label, metrics keys)
    ("losses", "loss", ("loss_recon", "loss_disc", "loss_gen", "loss_classify")),
    ("discriminator accuracy", "accuracy", ("disc_acc_prior", "disc_acc_code")),
    ("errors", "error", ("val_error", "test_error", "cluster_error", "cluster_error_majority")),
    ("throughput", "images/s", ("images_per_s",)),
]


def _curve_panels(runs: dict[str, list[dict[str, Any]]], x: str) -> list:
    """One panel per key (several runs overlaid) when comparing; one per group for one run."""
    if len(runs) == 1:
        (lines,) = runs.values()
        return [(t, yl, {k: _series(lines, k, x) for k in keys}) for t, yl, keys in CURVES]
    panels = []
    for _, yl, keys in CURVES:
        for k in keys:
            panels.append((k, yl, {name: _series(lines, k, x) for name, lines in runs.items()}))
    return panels


def _table(rows: list[tuple[str, Any]], head: tuple[str, str] = ("", "")) -> str:
    body = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(_fmt(v))}</td></tr>"
                   for k, v in rows)
    th = f"<tr><th>{html.escape(head[0])}</th><th>{html.escape(head[1])}</th></tr>" if any(head) else ""
    return f"<table>{th}{body}</table>"


def config_diff(cfg: dict[str, Any]) -> list[tuple[str, Any]]:
    """The options that differ from aae's defaults, flattened."""
    base = flatten(Config().to_dict())
    return [(k, v) for k, v in flatten(cfg).items() if base.get(k, object()) != v]


def _cards(items: list[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>'
        for k, v in items) + "</div>"


def _variant(cfg: dict) -> str:
    """What kind of AAE a run's config describes, as its model states it."""
    from .config import Config
    from .errors import AAEError
    from .model import Capabilities

    try:
        c = Config.from_dict(cfg)
    except AAEError:
        return "AAE"
    return Capabilities.of(c.model, c.data.labelled).description


PICTURES = [("tsne.png", "t-SNE of the test codes, coloured by class"),
            ("latent.png", "per-dimension mean, std and histogram of the test codes against the "
                           "prior"),
            ("latent_scatter.png", "2-D test codes (or representations) by class"),
            ("manifold.png", "the decoder over the prior's support"),
            ("style.png", "style grid: each row one z, each column one class"),
            ("clusters.png", "clusters: the decoded cluster, then test images assigned to it"),
            ("clusters_confident.png", "each cluster's most confident held-out images, the first "
                                       "of which names it by the paper's rule (aae evaluate "
                                       "--cluster)")]


def _summary(run: Path, cfg: dict, lines: list[dict], latent: dict) -> list[str]:
    """The page's title, one line of what the run is, and its headline numbers."""
    last = lines[-1] if lines else {}
    t = cfg.get("train", {})
    cards = [("epochs trained", f"{last.get('epoch', 0)} / {t.get('epochs', '?')}"),
             ("training time", f"{last.get('elapsed', 0) / 60:.1f} min"),
             ("images/s (last epoch)", f"{last.get('images_per_s', 0):.0f}")]
    if "loss_recon" in last:
        cards.append(("reconstruction loss", f"{last['loss_recon']:.4f}"))
    if "mmd2" in latent:
        cards.append(("MMD² test codes vs prior", f"{latent['mmd2']:.4f}"))
    for key, label in (("test_error", "test error"), ("cluster_error", "cluster error")):
        if key in last:
            cards.append((label, f"{100 * last[key]:.2f}%"))
    dataset = html.escape(str(cfg.get("data", {}).get("dataset")))
    prior = html.escape(str(cfg.get("prior", {}).get("name")))
    return [f"<h1>{html.escape(run.resolve().name)}</h1>",
            f'<div class="sub">{html.escape(_variant(cfg))} on {dataset}, code dimension '
            f"{cfg.get('model', {}).get('code_dim')}, prior {prior}; report written "
            f"{_dt.datetime.now().isoformat(timespec='seconds')}</div>",
            _cards(cards)]


def _skipped(latent: dict) -> str:
    """The pictures the run left out and why (``latent.json``'s ``skipped``), as a list."""
    skipped = latent.get("skipped") or {}
    if not isinstance(skipped, dict) or not skipped:
        return ""
    items = "".join(f"<li><code>{html.escape(str(f))}</code>: {html.escape(str(why))}</li>"
                    for f, why in skipped.items())
    return f'<div class="skipped"><p>Not drawn:</p><ul>{items}</ul></div>'


def _pictures(run: Path, lines: list[dict], latent: dict | None = None) -> list[str]:
    """Sample grids over training, curves, every picture the run has, and the ones it left out
    with the reason."""
    body = []
    name = run.resolve().name
    grids = sorted((int(mt.group(1)), p) for p in (run / "samples").glob("epoch_*.png")
                   if (mt := re.fullmatch(r"epoch_(\d+)\.png", p.name)))
    if grids:
        body.append("<h2>Decoder samples over training</h2><p>The same prior draws decoded at each "
                    "epoch (the original report's epoch 0 / 100 / 500 table).</p>"
                    "<div class=\"timeline\">")
        body += [_file_img(p, f"epoch {e}") for e, p in grids]
        body.append("</div>")
    if lines:
        body.append("<h2>Training curves</h2>")
        body.append(_img(plots.curves_png(_curve_panels({name: lines}, "epoch"), "epoch"),
                         "curves over epochs", "over epochs"))
        body.append(_img(plots.curves_png(_curve_panels({name: lines}, "elapsed"),
                                          "training seconds"), "curves over time",
                         "over wall-clock training time"))
    present = [(f, c) for f, c in PICTURES if (run / f).is_file()]
    left_out = _skipped(latent or {})
    if present or left_out:
        body.append("<h2>What the model learned</h2>")
        body += [_file_img(run / f, c) for f, c in present]
        body += [left_out] if left_out else []
    return body


def _numbers(run: Path, cfg: dict, lines: list[dict], latent: dict) -> list[str]:
    """Latent fit, evaluation, configuration, timing and hardware tables."""
    body = []
    if latent:
        rows = [(k, v) for k, v in flatten(latent).items()
                if (not isinstance(v, list) or len(v) <= 12) and not k.startswith("skipped.")]
        body.append("<h2>Latent fit (latent.json)</h2>" + _table(rows))
    ev = _json(run / "eval.json")
    if ev:
        body.append("<h2>Evaluation (eval.json)</h2>")
        for metric, res in ev.items():
            rows = [(k, v) for k, v in flatten(res).items()
                    if not k.startswith(("versions", "validation_ll", "classifier."))
                    and (not isinstance(v, list) or len(v) <= 12)]
            body.append(f"<h3>{html.escape(metric)}</h3>" + _table(rows))
    body.append("<h2>Configuration</h2><p>Options that differ from aae's defaults "
                "(the full config is <code>config.toml</code>):</p>"
                + _table(config_diff(cfg), ("option", "value")))
    ck = ckpt.candidates(run / "checkpoints") if (run / "checkpoints").is_dir() else []
    meta = _json(ck[0]) if ck else {}
    last, t = (lines[-1] if lines else {}), cfg.get("train", {})
    body.append("<h2>Timing and hardware</h2>" + _table([
        ("training seconds", last.get("elapsed")), ("mean seconds per epoch",
         sum(ln.get("seconds", 0) for ln in lines) / max(len(lines), 1)),
        ("torch", meta.get("torch_version", "")), ("device", t.get("device")),
        ("threads", t.get("threads") or "torch default"),
        ("machine", f"{platform.machine()} {platform.processor()}".strip()),
        ("python", platform.python_version())]))
    return body


def build_report(run: str | Path) -> str:
    """The HTML text of a run's report."""
    run = Path(run)
    cfg = _config(run)
    lines = read_metrics(run)
    latent = _json(run / "latent.json")
    body = [*_summary(run, cfg, lines, latent), *_pictures(run, lines, latent),
            *_numbers(run, cfg, lines, latent)]
    return _page(f"aae run {run.resolve().name}", "\n".join(body))


def write_report(run: str | Path) -> Path:
    run = Path(run)
    text = build_report(run)
    atomic_write_text(run / "report.html", text)
    return run / "report.html"


def compare(runs: list[str | Path], out: str | Path) -> Path:
    """``out/compare.html`` and ``out/compare.csv`` for two or more runs."""
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise AAEError("aae compare: give at least two run directories")
    names = []
    for r in runs:  # unique, readable names: the folder, with its parent where folders clash
        n = r.resolve().name
        names.append(n if [p.resolve().name for p in runs].count(n) == 1 else
                     f"{r.resolve().parent.name}/{n}")
    cfgs = {n: flatten(_config(r)) for n, r in zip(names, runs)}
    metrics = {n: read_metrics(r) for n, r in zip(names, runs)}
    finals: dict[str, dict[str, Any]] = {}
    for n, r in zip(names, runs):
        last = metrics[n][-1] if metrics[n] else {}
        f = {f"last.{k}": v for k, v in last.items() if isinstance(v, (int, float))}
        f.update({f"eval.{k}": v for k, v in flatten(_json(r / "eval.json")).items()
                  if isinstance(v, (int, float)) and not k.startswith("versions")})
        f.update({f"latent.{k}": v for k, v in flatten(_json(r / "latent.json")).items()
                  if isinstance(v, (int, float))})
        finals[n] = f
    keys = sorted(set().union(*cfgs.values()))
    differing = [k for k in keys if len({json.dumps(cfgs[n].get(k)) for n in names}) > 1]
    head = "<tr><th>option</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    rows = "".join(
        f'<tr class="{"diff" if k in differing else ""}"><td><code>{html.escape(k)}</code></td>'
        + "".join(f"<td>{html.escape(_fmt(cfgs[n].get(k, '')))}</td>" for n in names) + "</tr>"
        for k in differing + [k for k in keys if k not in differing])
    mkeys = sorted(set().union(*finals.values()))
    mrows = "".join(f"<tr><td><code>{html.escape(k)}</code></td>"
                    + "".join(f"<td>{html.escape(_fmt(finals[n].get(k, '')))}</td>" for n in names)
                    + "</tr>" for k in mkeys)
    diff_text = ", ".join(differing) or "none: the configs are identical"
    body = [f"<h1>Comparing {len(runs)} runs</h1>",
            f'<div class="sub">Differences: <b>{html.escape(diff_text)}</b></div>',
            "<h2>Curves</h2>",
            _img(plots.curves_png(_curve_panels(metrics, "epoch"), "epoch"), "curves over epochs"),
            _img(plots.curves_png(_curve_panels(metrics, "elapsed"), "training seconds"),
                 "curves over time"),
            "<h2>Metrics</h2><table>" + head.replace("option", "metric") + mrows + "</table>",
            "<h2>Configurations</h2><p>Rows that differ come first and are marked.</p>"
            f"<table>{head}{rows}</table>"]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AAEError(f"option --out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AAEError(f"option --out {out}: cannot create the folder ({e.strerror or e})") from None
    atomic_write_text(out / "compare.html", _page("aae compare", "\n".join(body)))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["kind", "key", *names])
    for k in differing + [k for k in keys if k not in differing]:
        w.writerow(["config" + (" (differs)" if k in differing else ""), k,
                    *(json.dumps(cfgs[n].get(k)) for n in names)])
    for k in mkeys:
        w.writerow(["metric", k, *(finals[n].get(k, "") for n in names)])
    atomic_write_text(out / "compare.csv", buf.getvalue())
    return out / "compare.html"
