"""The per-run report (self-contained HTML), run comparison, and the report in a real browser."""

import csv
import re
import shutil
import tempfile

import pytest

from aae.config import resolve
from aae.report import compare, write_report
from aae.training import Trainer

from conftest import tiny_config, toy_data


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    data = toy_data()
    base = tmp_path_factory.mktemp("report")
    runs = []
    for seed in (0, 1):  # two runs that differ in one option
        cfg = resolve(tiny_config(epochs=2, seed=seed, tsne_points=50).to_dict())
        Trainer(cfg, base / f"seed{seed}", data=data, quiet=True).fit()
        runs.append(base / f"seed{seed}")
    return runs


def test_training_writes_a_self_contained_report(two_runs):
    page = (two_runs[0] / "report.html").read_text()
    for section in ("Decoder samples over training", "Training curves", "What the model learned",
                    "Latent fit", "Configuration", "Timing and hardware"):
        assert section in page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) >= 5 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "train.tsne_points" in page  # an option that differs from the defaults is listed


def test_report_is_rewritten_with_evaluation_results(two_runs):
    import json

    (two_runs[0] / "eval.json").write_text(json.dumps({"prior_fit": {"mmd2": 0.0123}}))
    write_report(two_runs[0])
    assert "Evaluation (eval.json)" in (two_runs[0] / "report.html").read_text()
    (two_runs[0] / "eval.json").unlink()


def test_compare_shows_the_one_differing_option(two_runs, tmp_path):
    page = compare(two_runs, tmp_path / "cmp").read_text()
    assert "Differences: <b>train.seed</b>" in page
    rows = list(csv.reader((tmp_path / "cmp" / "compare.csv").open()))
    differing = [r for r in rows if r[0] == "config (differs)"]
    assert [r[1] for r in differing] == ["train.seed"] and differing[0][2:] == ["0", "1"]
    assert any(r[0] == "metric" and r[1] == "last.loss_recon" for r in rows)


def test_compare_needs_two_runs(two_runs, tmp_path):
    from aae.errors import AAEError

    with pytest.raises(AAEError, match="at least two"):
        compare(two_runs[:1], tmp_path / "x")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get "
                    "install chromium; .ci/run installs it)")
def test_report_opens_in_headless_chromium(two_runs, tmp_path):
    sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    errors: list[str] = []
    with tempfile.TemporaryDirectory() as profile, sync.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"], viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((two_runs[0] / "report.html").resolve().as_uri())
        page.wait_for_load_state("load")
        widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        ctx.close()
    assert len(widths) >= 5 and all(w > 0 for w in widths), widths
    assert errors == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
