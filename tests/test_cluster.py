"""Unsupervised clustering and dimensionality reduction (paper sections 6 and 7)."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from aae.clustering import (
    cluster_scores,
    log_odds,
    majority_mapping,
    mapped_error,
    paper_rule_mapping,
    paper_rule_spread,
)
from aae.config import resolve
from aae.runs import build_model
from aae.training import Trainer

from conftest import tiny_config, train_toy_cli


def test_cluster_to_label_rules_on_a_toy_assignment():
    # 3 clusters over labels {0, 1}; cluster 2's most confident member is an exception
    probs = np.array([[.9, .1, 0], [.8, .2, 0], [.1, .9, 0], [.2, .8, 0],
                      [0, .1, .9], [0, .3, .7], [0, .4, .6]])
    labels = np.array([0, 0, 1, 1, 0, 1, 1])
    assigned = probs.argmax(1)
    assert paper_rule_mapping(probs, labels).tolist() == [0, 1, 0]  # label of the argmax example
    assert majority_mapping(assigned, labels, 3).tolist() == [0, 1, 1]
    assert mapped_error(assigned, labels, [0, 1, 0]) == pytest.approx(2 / 7)
    assert mapped_error(assigned, labels, [0, 1, 1]) == pytest.approx(1 / 7)
    assert majority_mapping(np.array([0, 0]), np.array([1, 1]), 3).tolist() == [1, -1, -1]
    sc = cluster_scores(probs, labels, probs, labels)
    assert sc["paper_error"] == pytest.approx(2 / 7) and sc["majority_error"] == pytest.approx(1 / 7)
    assert sc["nmi"] == pytest.approx(normalized_mutual_info_score(labels, assigned))
    assert sc["ari"] == pytest.approx(adjusted_rand_score(labels, assigned))
    assert sc["sizes"] == [2, 2, 3]
    # float32 rounds both of cluster 0's top probabilities to 1.0 (and their logs to 0.0); their
    # log-odds still tell that the second example (label 1) is the more confident
    logits = torch.tensor([[30.0, 0.0, 1.0], [40.0, 0.0, 1.0], [0.0, 30.0, 1.0]])
    assert (torch.softmax(logits, 1)[:2, 0] == 1.0).all()
    assert (torch.log_softmax(logits, 1)[:2, 0] == 0.0).all()
    odds = log_odds(logits.numpy())
    q = torch.softmax(logits.double(), 1).numpy()
    assert np.allclose(odds[2], np.log(q[2] / (1 - q[2])))  # log(q / (1 - q)) where q is not 1
    assert (odds.argmax(1) == q.argmax(1)).all()
    assert paper_rule_mapping(odds, np.array([0, 1, 1])).tolist()[:2] == [1, 1]


def test_paper_rule_spread_over_validation_resamples():
    # cluster 0: label 0 everywhere; cluster 1: label 1, but its single most confident example
    # is a 0. The rule names cluster 1 "0" when that example is drawn, "1" when it is left out.
    scores = np.array([[5.0, 0], [4, 0], [3, 0], [0, 9], [0, 2], [0, 1.5], [0, 1]])
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    test_assigned, test_labels = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])
    assert paper_rule_mapping(scores, labels).tolist() == [0, 0]
    b = paper_rule_spread(scores, labels, test_assigned, test_labels, draws=400, seed=1)
    assert b["draws"] == 400 and b["p05"] == 0.0 and b["p95"] == 0.5  # the two possible errors
    # the exception is left out of a resample of 7 with probability (6/7)^7 = 0.34
    assert b["mean"] == pytest.approx(0.5 * (1 - (6 / 7) ** 7), abs=0.05)
    assert b["same_mapping"] == pytest.approx(1 - (6 / 7) ** 7, abs=0.05)
    # without the exception a resample misnames a cluster only when it holds none of its
    # examples ((1/2)^6 per cluster)
    clean = paper_rule_spread(scores[[0, 1, 2, 4, 5, 6]], labels[[0, 1, 2, 4, 5, 6]],
                              test_assigned, test_labels, draws=400, seed=1)
    assert clean["p95"] == 0.0 and clean["same_mapping"] == pytest.approx(1 - 2 / 64, abs=0.03)


def _heads_model(k=4, eta=2.0):
    d = tiny_config().to_dict()
    d["model"].update(class_input="heads", classes=k, head_eta=eta)
    torch.manual_seed(0)
    return build_model(resolve(d), (1, 8, 8))


def test_head_penalty_is_zero_beyond_eta_and_pushes_close_heads_apart():
    m = _heads_model(k=3, eta=2.0)
    with torch.no_grad():
        m.heads.copy_(torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]))
    assert m.head_penalty().item() == 0.0
    with torch.no_grad():
        m.heads.copy_(torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 3.0]]))
    assert m.head_penalty().item() == pytest.approx(1.5)  # only the close pair: 2 - 0.5
    opt = torch.optim.SGD([m.heads], lr=0.1)
    before = torch.dist(m.heads[0], m.heads[1]).item()
    opt.zero_grad()
    m.head_penalty().backward()
    opt.step()
    assert torch.dist(m.heads[0], m.heads[1]).item() > before
    assert m.heads.grad[2].abs().sum() == 0  # the far head feels nothing


def test_representation_is_heads_plus_style():
    m = _heads_model(k=4)
    codes = m.encode(torch.rand(5, 1, 8, 8))
    torch.testing.assert_close(codes["r"], codes["y"] @ m.heads + codes["z"])
    assert m.decoder_inputs == ["r"] and m.decode(codes).shape == (5, 1, 8, 8)
    c = m.prior_codes(torch.zeros(4, 2), classes=torch.arange(4))
    torch.testing.assert_close(c["r"], m.heads)  # z = 0 decodes each cluster head itself


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["y", "heads"])
def test_more_clusters_than_classes_trains_and_is_scored(split_data, tmp_path, mode):
    d = tiny_config(epochs=3).to_dict()
    # 5 clusters for 3 classes, with the clustering presets' two extra terms
    d["model"].update(class_input=mode, classes=5, y_balance=1.0, y_consistency=1.0)
    d["data"].update(labelled=0)
    t = Trainer(resolve(d), tmp_path / "r", data=split_data, quiet=True)
    assert t.labelled is None and "classify" not in t.step.opts  # no classification phase
    t.fit()
    lines = [json.loads(ln) for ln in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= ln["cluster_error"] <= 1 and "cluster_error_majority" in ln for ln in lines)
    assert "loss_classify" not in lines[-1]
    assert (tmp_path / "r" / "clusters.png").stat().st_size > 0
    assert (tmp_path / "r" / "style.png").stat().st_size > 0
    if mode == "heads":
        assert (tmp_path / "r" / "latent_scatter.png").stat().st_size > 0


@pytest.mark.slow
def test_evaluate_cluster_on_a_saved_run(tmp_path):
    import subprocess
    import sys

    run = train_toy_cli(tmp_path, "--labelled", "0", "--set", "model.class_input=heads",
                        "--set", "model.classes=4", "--set", "data.validation=40",
                        "--set", "model.code_dim=2")
    aae = [sys.executable, "-m", "aae"]
    r = subprocess.run([*aae, "evaluate", str(run), "--cluster"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    c = json.loads((run / "eval.json").read_text())["cluster"]
    assert c["clusters"] == 4 and sum(c["sizes"]) == 40  # the test tenth of 400 images
    assert 0 <= c["paper_error"] <= 1 and 0 <= c["knn_error"] <= 1 and c["representation_dim"] == 2
    b = c["paper_error_bootstrap"]
    assert b["draws"] == 200 and 0 <= b["p05"] <= b["p95"] <= 1
    assert b["p05"] - 1e-9 <= b["mean"] <= b["p95"] + 1e-9  # (a mean of equal errors may round)
    assert "paper's rule" in r.stdout and "over validation resamples" in r.stdout
    assert (run / "clusters_confident.png").stat().st_size > 0
    r = subprocess.run([*aae, "evaluate", str(run), "--classify"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "use --cluster" in r.stderr


def test_balance_term_is_zero_when_balanced_and_revives_an_empty_cluster():
    from aae.regularizers import balance_kl

    k = 4
    assert float(balance_kl(torch.eye(k).repeat(3, 1))) == pytest.approx(0.0, abs=1e-6)
    assert float(balance_kl(torch.eye(k)[[0] * 6])) == pytest.approx(np.log(k), rel=1e-5)
    # a batch that never uses cluster 3: the term's gradient raises every example's logit of 3
    logits = torch.tensor([[5.0, 0, 0, -5], [0, 5.0, 0, -5], [0, 0, 5.0, -5]], requires_grad=True)
    balance_kl(torch.softmax(logits, 1)).backward()
    assert (logits.grad[:, 3] < 0).all()  # gradient descent moves them up
    # the encoder's adversarial loss of the y regularizer includes it with model.y_balance
    d = tiny_config().to_dict()
    d["model"].update(class_input="y", classes=k)
    torch.manual_seed(0)
    plain = build_model(resolve(d), (1, 8, 8))
    d["model"]["y_balance"] = 2.0
    torch.manual_seed(0)
    balanced = build_model(resolve(d), (1, 8, 8))
    y = torch.softmax(logits.detach(), 1)
    ry, ry2 = plain.regularizers[1], balanced.regularizers[1]
    z = torch.zeros(3, d["model"]["code_dim"])
    with torch.no_grad():
        gap = float(ry2.gen_loss(y) - ry.gen_loss(y))
        z_gap = float(balanced.regularizers[0].gen_loss(z) - plain.regularizers[0].gen_loss(z))
    assert gap == pytest.approx(2.0 * float(balance_kl(y)), rel=1e-5)
    assert z_gap == 0.0  # the Gaussian regularizer is untouched
    d["model"]["y_balance"] = -1.0
    with pytest.raises(Exception, match="model.y_balance"):
        resolve(d)


def test_random_warp_is_the_identity_at_zero_and_moves_images_by_at_most_its_shift():
    from aae.model import random_warp

    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0  # a square in the middle
    assert torch.allclose(random_warp(x, 0.0, 0.0, 0.0), x, atol=1e-5)
    torch.manual_seed(1)
    w = random_warp(x, 2.0, 0.0, 0.0)
    torch.manual_seed(1)
    assert torch.equal(random_warp(x, 2.0, 0.0, 0.0), w)  # torch's generator drives it
    grid = torch.arange(16.0)

    def com(t):  # centre of mass (row, column) of each image, in pixels
        mass = t.sum((2, 3)).unsqueeze(-1)
        return torch.stack([(t.sum(3) * grid).sum(2), (t.sum(2) * grid).sum(2)], -1) / mass

    moved = (com(w) - com(x)).squeeze(1)
    assert moved.abs().max() <= 2.0 + 1e-4  # no more than 2 pixels along either axis
    assert moved.abs().max() > 1.0 and moved.std(0).min() > 0.3  # and each image its own shift
    assert torch.allclose(w.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=1e-4)  # a shift keeps ink
    turned = random_warp(x, 0.0, 45.0, 0.0)
    assert not torch.allclose(turned, x, atol=1e-2) and torch.allclose(com(turned), com(x), atol=1e-3)


def _kl(p: torch.Tensor, q: torch.Tensor) -> float:
    """Mean over rows of KL(p || q), computed by hand."""
    return float((p * (p.log() - q.log())).sum(1).mean().detach())


def _assert_gradient_skips_the_target(m, x, codes):
    """q(y|x) of ``codes`` is a fixed target: the term's gradient reaches the encoder only
    through its other pass."""
    logits = codes["y_logits"]
    logits.retain_grad()
    m.consistency_loss(x, codes).backward()
    assert logits.grad is None or float(logits.grad.abs().sum()) == 0.0
    assert m.encoder[0].weight.grad.abs().sum() > 0


def test_consistency_term_is_the_kl_to_the_warped_image_and_trains_only_the_warped_branch():
    from aae.model import random_warp

    d = tiny_config().to_dict()
    d["model"].update(class_input="y", classes=4, y_consistency=3.0)
    torch.manual_seed(0)
    m = build_model(resolve(d), (1, 8, 8))
    x = torch.rand(10, 1, 8, 8)
    codes = m.encode(x)
    torch.manual_seed(5)
    loss = m.consistency_loss(x, codes)
    torch.manual_seed(5)
    c = m.cfg
    q = torch.softmax(m.encode(random_warp(x, c.warp_shift, c.warp_degrees, c.warp_scale))["y_logits"], 1)
    assert loss.item() == pytest.approx(3.0 * _kl(codes["y"], q), rel=1e-4) and loss.item() > 0
    _assert_gradient_skips_the_target(m, x, codes)  # only the warped image's pass
    # an encoder whose y ignores the image scores zero; the term is off by default
    with torch.no_grad():
        m.encoder[-1].weight[m.z_out:] = 0
    assert m.consistency_loss(x, m.encode(x)).item() == pytest.approx(0.0, abs=1e-6)
    d["model"]["y_consistency"] = 0.0
    assert float(build_model(resolve(d), (1, 8, 8)).consistency_loss(x, codes)) == 0.0
    d["model"].update(class_input="none", y_consistency=1.0)
    with pytest.raises(Exception, match="model.y_consistency"):
        resolve(d)


def test_confident_images_are_ranked_per_cluster_and_flagged(tmp_path, monkeypatch):
    from PIL import Image

    from aae import artifacts, plots

    images = torch.rand(6, 1, 8, 8)
    labels = np.array([0, 1, 1, 0, 1, 0])
    scores = np.array([[3.0, 0], [2, 1], [1, 5], [0, 4], [-1, 3], [-2, -1]])
    seen = {}
    real = plots.ranked_rows_png

    def spy(rows, titles, captions, flags, row_flags, title=""):
        seen.update(rows=rows, titles=titles, captions=captions, flags=flags, row_flags=row_flags)
        return real(rows, titles, captions, flags, row_flags, title)

    monkeypatch.setattr(plots, "ranked_rows_png", spy)
    artifacts.write_confident(tmp_path, images, labels, scores, ([0, 1], [0, 0]), top=3)
    # cluster 0 ranks images 0, 1, 2; cluster 1 ranks 2, 3, 4
    assert np.array_equal(seen["rows"][0], images[[0, 1, 2]].numpy())
    assert np.array_equal(seen["rows"][1], images[[2, 3, 4]].numpy())
    assert seen["captions"] == [["0", "1", "1"], ["1", "0", "1"]]
    assert seen["flags"] == [[False, True, True], [True, False, True]]  # against majority 0
    assert seen["row_flags"] == [False, True] and "rule 1, majority 0" in seen["titles"][1]
    png = Image.open(tmp_path / "clusters_confident.png")
    assert png.size[0] > png.size[1] > 0  # two rows of three, wider than tall


def _sharp_cluster_model(**model) -> tuple[dict, object, torch.Tensor, dict]:
    """(config dict, model, ten 8x8 images, their codes) for a 4-cluster model with ``model``
    settings whose q(y|x) tells the images apart (a freshly built head is near uniform)."""
    d = tiny_config().to_dict()
    d["model"].update(class_input="y", classes=4, **model)
    torch.manual_seed(0)
    m = build_model(resolve(d), (1, 8, 8))
    with torch.no_grad():
        m.encoder[-1].weight[m.z_out:] *= 30
    x = torch.rand(10, 1, 8, 8)
    return d, m, x, m.encode(x)


def test_mixup_term_is_the_kl_from_mixed_predictions_to_the_prediction_of_the_mixed_image():
    d, m, x, codes = _sharp_cluster_model(y_mixup=2.0)
    torch.manual_seed(7)
    loss = m.consistency_loss(x, codes)
    torch.manual_seed(7)
    perm = torch.randperm(10)
    lam = torch.rand(10, 1)
    mixed = lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x[perm]
    q = torch.softmax(m.encode(mixed)["y_logits"], 1)
    p = lam * codes["y"] + (1 - lam) * codes["y"][perm]
    assert loss.item() == pytest.approx(2.0 * _kl(p, q), rel=1e-4) and loss.item() > 0
    _assert_gradient_skips_the_target(m, x, codes)  # only the mixed images' pass
    # a batch of one image repeated mixes to itself: nothing to match
    same = x[:1].repeat(10, 1, 1, 1)
    assert m.consistency_loss(same, m.encode(same)).item() == pytest.approx(0.0, abs=1e-6)
    d["model"].update(class_input="none", y_mixup=1.0)
    with pytest.raises(Exception, match="model.y_mixup"):
        resolve(d)


def test_vat_term_is_the_kl_to_the_most_sensitive_perturbation():
    d, m, x, codes = _sharp_cluster_model(y_vat=2.0, vat_eps=0.5)
    torch.manual_seed(3)
    loss = m.consistency_loss(x, codes)
    torch.manual_seed(3)
    r = m.vat_perturbation(x, codes["y"])
    assert torch.allclose(r.flatten(1).norm(dim=1), torch.full((10,), 0.5))
    q = torch.softmax(m.encode(x + r)["y_logits"], 1)
    assert loss.item() == pytest.approx(2.0 * _kl(codes["y"], q), rel=1e-4) and loss.item() > 0
    # the direction found moves q(y|x) more than any of 20 random directions of the same norm
    rand = [torch.randn_like(x) for _ in range(20)]
    rand = [0.5 * v / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1) for v in rand]
    worst = max(_kl(codes["y"], torch.softmax(m.encode(x + v)["y_logits"], 1)) for v in rand)
    assert _kl(codes["y"], q) > 2 * worst
    assert m.encoder[0].weight.grad is None  # finding r leaves the weights' gradients alone
    _assert_gradient_skips_the_target(m, x, codes)  # only the perturbed images' pass
    for bad in ({"vat_eps": 0.0}, {"class_input": "none"}, {"y_vat": -1.0}):
        d["model"].update({"class_input": "y", "y_vat": 1.0, "vat_eps": 1.0, **bad})
        with pytest.raises(Exception, match="model.y_vat|model.vat_eps"):
            resolve(d)
