import json
import signal

import pytest
import torch
import torch.nn.functional as F

from aae import checkpoint as ckpt
from aae.errors import AAEError, DivergenceError, Interrupted
from aae.fileio import read_jsonl
from aae.optim import build_optimizers
from aae.runs import load_run
from aae.training import Trainer

from conftest import poison_recon_loss, tiny_config, train_step


def _recon(model, x):
    with torch.no_grad():
        return float(model.recon_loss(model.decode_logits(model.encode(x)), x, "mse"))


def test_training_lowers_reconstruction_loss(tiny_data, tmp_path):
    t = Trainer(tiny_config(epochs=5), tmp_path / "run", data=tiny_data, quiet=True)
    before = _recon(t.model, tiny_data.train_x)
    t.fit()
    after = _recon(t.model, tiny_data.train_x)
    assert after < 0.5 * before
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2, 3, 4, 5]
    assert lines[-1]["loss_recon"] < lines[0]["loss_recon"]
    for key in ("loss_disc", "loss_gen", "disc_acc", "seconds", "images_per_s", "code_mean"):
        assert key in lines[0]
    assert len(lines[0]["code_std"]) == 2


def test_step_updates_the_right_parameters(tiny_data, tiny_cfg):
    torch.manual_seed(0)
    from aae.runs import build_model

    model = build_model(tiny_cfg, tiny_data.image_shape)
    opts = build_optimizers(model, tiny_cfg.optim)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scalars, z = train_step(model, opts, tiny_data.train_x[:16], torch.Generator().manual_seed(0))
    after = model.state_dict()
    assert scalars.shape == (6,) and z.shape == (16, 2) and torch.isfinite(scalars).all()
    for prefix in ("encoder.", "decoder.", "regularizers.0.discriminator."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))
    assert all(p.requires_grad for p in model.parameters())  # the D freeze is undone


def test_generator_phase_leaves_decoder_and_discriminator(tiny_data, tiny_cfg):
    """With the reconstruction and discriminator rates at zero only the encoder may move."""
    from aae.config import resolve
    from aae.runs import build_model

    cfg = resolve(tiny_cfg.to_dict(), None, ["optim.recon.name=sgd", "optim.disc.name=sgd",
                                             "optim.recon.lr=1e-30", "optim.disc.lr=1e-30",
                                             "optim.recon.momentum=0", "optim.disc.momentum=0"])
    torch.manual_seed(0)
    model = build_model(cfg, tiny_data.image_shape)
    opts = build_optimizers(model, cfg.optim)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_step(model, opts, tiny_data.train_x[:16], torch.Generator().manual_seed(0))
    after = model.state_dict()
    moved = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"encoder"}


@pytest.mark.slow
def test_same_seed_same_weights(tiny_data, tmp_path):
    a = Trainer(tiny_config(), tmp_path / "a", data=tiny_data, quiet=True)
    a.fit()
    b = Trainer(tiny_config(), tmp_path / "b", data=tiny_data, quiet=True)
    b.fit()
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(v, w), k


def test_saved_run_loads_back_bit_for_bit(tiny_data, tmp_path):
    t = Trainer(tiny_config(), tmp_path / "run", data=tiny_data, quiet=True)
    t.fit()
    cfg, model, meta = load_run(tmp_path / "run")
    assert meta["epoch"] == 2 and cfg == t.cfg
    z1 = t.model.encode_all(tiny_data.test_x)["z"]
    z2 = model.encode_all(tiny_data.test_x)["z"]
    assert torch.equal(z1, z2)


def _final_tensors(run):
    tensors, meta = ckpt.latest(run / "checkpoints")
    return tensors, meta


@pytest.mark.slow
def test_resume_after_epochs_is_exact(tiny_data, tmp_path):
    Trainer(tiny_config(epochs=3), tmp_path / "full", data=tiny_data, quiet=True).fit()
    Trainer(tiny_config(epochs=1), tmp_path / "cut", data=tiny_data, quiet=True).fit()
    Trainer(tiny_config(epochs=3), tmp_path / "cut", data=tiny_data, resume=True, quiet=True).fit()
    a, ma = _final_tensors(tmp_path / "full")
    b, mb = _final_tensors(tmp_path / "cut")
    assert ma["global_step"] == mb["global_step"] == 3 * (240 // 16)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [1, 2, 3]


def test_interrupt_mid_epoch_then_resume_is_exact(tiny_data, tmp_path, monkeypatch):
    Trainer(tiny_config(epochs=2), tmp_path / "full", data=tiny_data, quiet=True).fit()

    t = Trainer(tiny_config(epochs=2), tmp_path / "cut", data=tiny_data, quiet=True)
    real_step, calls = t.runner.step, []

    def step_then_signal(*a, **kw):
        out = real_step(*a, **kw)
        calls.append(1)
        if len(calls) == 20:  # during epoch 2 (15 steps per epoch)
            t._on_signal(signal.SIGTERM, None)
        return out

    monkeypatch.setattr(t.runner, "step", step_then_signal)
    with pytest.raises(Interrupted, match="aae train --resume"):
        t.fit()
    _, meta = ckpt.latest(tmp_path / "cut" / "checkpoints")
    assert (meta["epoch"], meta["step_in_epoch"]) == (1, 5)
    Trainer(tiny_config(epochs=2), tmp_path / "cut", data=tiny_data, resume=True, quiet=True).fit()
    a, _ = _final_tensors(tmp_path / "full")
    b, _ = _final_tensors(tmp_path / "cut")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_divergence_names_phase_and_keeps_checkpoint(tiny_data, tmp_path, monkeypatch):
    t = Trainer(tiny_config(epochs=3), tmp_path / "run", data=tiny_data, quiet=True)
    poison_recon_loss(monkeypatch, t.model)
    with pytest.raises(DivergenceError, match="reconstruction loss .* epoch 2, step 20"):
        t.fit()
    _, meta = ckpt.latest(tmp_path / "run" / "checkpoints")
    assert meta["epoch"] == 1  # the last good one


def test_resume_refuses_changed_config(tiny_data, tmp_path):
    from aae.errors import AAEError

    Trainer(tiny_config(epochs=1), tmp_path / "run", data=tiny_data, quiet=True).fit()
    with pytest.raises(AAEError, match="train.batch_size"):
        Trainer(tiny_config(epochs=2, batch_size=8), tmp_path / "run", data=tiny_data,
                resume=True, quiet=True)


def test_damaged_newest_checkpoint_is_skipped(tiny_data, tmp_path):
    Trainer(tiny_config(epochs=2, checkpoint_every=1), tmp_path / "run", data=tiny_data,
            quiet=True).fit()
    folder = tmp_path / "run" / "checkpoints"
    blob = bytearray((folder / "epoch_0002.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (folder / "epoch_0002.safetensors").write_bytes(bytes(blob))
    _, meta = ckpt.latest(folder)
    assert meta["epoch"] == 1


def test_learning_rate_schedule_is_a_fraction_of_the_run():
    from aae.config import OptimConfig
    from aae.optim import lr_at

    o = OptimConfig(lr=1e-3, milestones=[0.5, 0.75], gamma=0.1)
    assert [lr_at(o, e, 20) for e in (1, 10, 11, 15, 16, 20)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])


def _joint_cfg(**model):
    from aae.config import resolve

    return resolve(tiny_config().to_dict(), None, [],
                   {"train": {"schedule": "joint", "adv_weight": 0.5}, "model": model})


def test_joint_step_gradients_are_each_networks_own(tiny_data):
    """The joint schedule's two backward passes: the discriminator gets the gradient of its loss
    with the codes as constants, the encoder and decoder that of reconstruction + adv_weight x the
    adversarial loss through the (not updated) discriminator; the encoder phase's optimizer is
    not used."""
    import copy

    from aae.runs import build_model

    cfg = _joint_cfg()
    torch.manual_seed(0)
    model = build_model(cfg, tiny_data.image_shape)
    before = copy.deepcopy(model)
    opts = build_optimizers(model, cfg.optim)
    x = tiny_data.train_x[:16]
    train_step(model, opts, x, torch.Generator().manual_seed(3), schedule="joint", adv_weight=0.5)
    reg = before.regularizers[0]
    z = before.encode(x)["z"]
    zp = reg.prior.sample(16, generator=torch.Generator().manual_seed(3))
    d_real, d_fake = reg(zp), reg(z.detach())
    d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    want_d = torch.autograd.grad(d_loss, list(reg.discriminator.parameters()))
    rec = before.recon_loss(before.decode_logits({"z": z}), x, "mse")
    ae = before.autoencoder_parameters()
    want_ae = torch.autograd.grad(rec + 0.5 * F.softplus(-reg(z)).mean(), ae)
    got_d = [p.grad for p in model.regularizers[0].discriminator.parameters()]
    got_ae = [p.grad for p in model.autoencoder_parameters()]
    for got, want in zip(got_d + got_ae, list(want_d) + list(want_ae)):
        assert torch.allclose(got, want, atol=1e-6)
    assert not opts["gen"].state  # the separate encoder phase does not exist in this schedule


@pytest.mark.slow
@pytest.mark.parametrize("model", [{}, {"class_input": "y", "code_dim": 3, "y_consistency": 1.0},
                                   {"disc_groups": 4, "disc_aggregate": "median"}])
def test_joint_schedule_trains(tiny_data, tmp_path, model):
    """Unsupervised, with a y head (two regularizers), with grouped discriminators (the two-pass
    fallback): every network moves and the reconstruction improves over a short run."""
    from aae.config import resolve

    cfg = resolve(_joint_cfg(**model).to_dict(), None, ["train.epochs=6"])
    t = Trainer(cfg, tmp_path / "run", data=tiny_data, quiet=True)
    start = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.fit()
    lines = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert lines[-1]["loss_recon"] < lines[0]["loss_recon"]
    after = t.model.state_dict()
    for prefix in ("encoder.", "decoder.", "regularizers.0.discriminator."):
        assert any(not torch.equal(start[k], after[k]) for k in start if k.startswith(prefix))


def test_schedule_options_checked():
    from aae.config import resolve

    with pytest.raises(AAEError, match="train.schedule.*one of paper, joint"):
        resolve(None, None, ["train.schedule=fast"])
    with pytest.raises(AAEError, match="train.adv_weight"):
        resolve(None, None, ["train.adv_weight=0"])


def test_tensorboard_has_rates_every_grid_and_the_hyperparameters(tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(tiny_config(epochs=2), tmp_path / "run", data=tiny_data, quiet=True).fit()
    tags, images = set(), []
    for f in sorted((tmp_path / "run" / "tb").rglob("events*")):
        ea = EventAccumulator(str(f), size_guidance={"images": 0})
        ea.Reload()
        tags |= set(ea.Tags()["scalars"])
        if "samples" in ea.Tags()["images"]:
            images += [e.step for e in ea.Images("samples")]
    assert {"loss_recon", "lr/recon", "lr/disc", "lr/gen", "final/loss_recon"} <= tags
    assert images == [0, 1, 2]  # epoch 0's grid too
