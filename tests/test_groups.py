"""Grouped discriminators (the seed's question): routing, aggregation, equivalence, errors."""


import pytest
import torch
import torch.nn.functional as F

from aae.config import resolve
from aae.groups import StackedMLP, aggregate, group_means, to_groups
from aae.runs import build_model
from aae.training import Trainer

from conftest import assert_train_refuses, tiny_config, train_step, weights_after_steps


def _plain_step(model, opts, x, prior_gen):
    """The unsupervised step as the paper writes it, before grouped discriminators existed."""
    def step(opt, loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rec = F.mse_loss(model.output(model.decode_logits(model.encode(x))), x.flatten(1))
    step(opts["recon"], rec)
    reg = model.regularizers[0]
    z = model.encode(x)["z"]
    zp = reg.prior.sample(len(z), generator=prior_gen)
    d_real, d_fake = reg(torch.cat([zp, z.detach()])).chunk(2)
    step(opts["disc"], F.softplus(-d_real).mean() + F.softplus(d_fake).mean())
    for p in reg.discriminator.parameters():
        p.requires_grad_(False)
    step(opts["gen"], F.softplus(-reg(z)).mean())
    for p in reg.discriminator.parameters():
        p.requires_grad_(True)


@pytest.mark.parametrize("sets", [[], ["model.disc_groups=1", "model.disc_aggregate=median",
                                       "model.group_split=shard", "model.disc_input=full"]])
def test_one_group_is_the_plain_step_bit_for_bit(tiny_data, sets):
    cfg = resolve(tiny_config().to_dict(), None, sets)
    x = tiny_data.train_x
    models = [weights_after_steps(cfg, tiny_data, lambda m, o, i, g, step=step:
                                  step(m, o, x[16 * i:16 * (i + 1)], g))
              for step in (_plain_step, train_step)]
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])


def test_stacked_networks_are_independent():
    torch.manual_seed(0)
    net = StackedMLP(3, [2, 8, 8, 1])
    x = torch.randn(3, 5, 2)
    out = net(x)
    for k in range(3):  # row k through network k, and only network k
        torch.testing.assert_close(out[k], net.member(k)(x[k]))
    assert not torch.allclose(net.weights[0][0], net.weights[0][1])  # initialised independently


def test_to_groups_balances_and_masks():
    t = torch.arange(10.0)
    g, mask = to_groups(t, 4)
    assert g.shape == (4, 3) and mask.sum() == 10
    assert mask.sum(1).tolist() == [3, 3, 2, 2]
    assert g[1][mask[1]].tolist() == [1.0, 5.0, 9.0]  # position p goes to group p % N
    assert group_means(g, mask).tolist() == pytest.approx([4.0, 5.0, 4.0, 5.0])


def _grouped_reg(groups=4, **model):
    cfg = tiny_config().to_dict()
    cfg["model"].update(disc_groups=groups, **model)
    cfg = resolve(cfg)
    torch.manual_seed(0)
    return build_model(cfg, (1, 8, 8)).regularizers[0]


def test_discriminator_k_sees_only_group_k():
    reg = _grouped_reg(4)
    z = torch.randn(16, 2, requires_grad=True)
    gz, _ = to_groups(z, 4)
    out = reg(gz)
    for k in range(4):
        (grad,) = torch.autograd.grad(out[k].sum(), z, retain_graph=True)
        rows = grad.abs().sum(1) > 0
        assert rows.tolist() == [p % 4 == k for p in range(16)]
    # and each discriminator's parameters get gradient only from its own group
    zp = torch.randn(16, 2)
    z2 = z.detach().clone()
    z2[1::4] += 100.0  # change group 1 only
    grads = []
    for codes in (z.detach(), z2):
        reg.zero_grad()
        reg.disc_losses(zp, codes)[0].backward()
        grads.append(reg.discriminator.weights[0].grad.clone())
    changed = [(grads[0][k] != grads[1][k]).any().item() for k in range(4)]
    assert changed == [False, True, False, False]


@pytest.mark.parametrize("rule,ignored", [("median", True), ("trimmed", True), ("mean", False),
                                          ("max", False), ("softmax", False)])
def test_planted_adversarial_group(rule, ignored):
    """One group's codes far from the prior: median and trimmed mean give them no gradient."""
    reg = _grouped_reg(5, disc_aggregate=rule, disc_trim=0.2, disc_budget="each")
    w1, w2 = reg.discriminator.weights
    b1, b2 = reg.discriminator.biases
    with torch.no_grad():  # every discriminator: logit = -(|z1| + |z2|), far codes look fake
        for t in (w1, w2, b1, b2):
            t.zero_()
        w1[:, 0, 0], w1[:, 0, 1], w1[:, 1, 2], w1[:, 1, 3] = 1.0, -1.0, 1.0, -1.0
        w2[:, :4, 0] = -1.0
    for p in reg.parameters():
        p.requires_grad_(False)
    z = torch.randn(20, 2, generator=torch.Generator().manual_seed(0)) * 0.5
    z[0::5] += 30.0  # group 0 (positions 0, 5, 10, 15), planted far from the prior
    z.requires_grad_(True)
    (grad,) = torch.autograd.grad(reg.gen_loss(z), z)
    planted = grad[0::5].abs().sum().item()
    others = sum(grad[k::5].abs().sum().item() for k in range(1, 5))
    assert (planted == 0) == ignored
    assert (others == 0) == (rule == "max")  # max follows the planted group alone


def test_aggregate_rules_on_known_values():
    v = torch.tensor([1.0, 5.0, 2.0, 100.0])
    assert aggregate(v, "mean") == pytest.approx(27.0)
    assert aggregate(v, "max") == 100.0
    assert aggregate(v, "median") == pytest.approx(3.5)  # mean of the two middle values
    assert aggregate(v[:3], "median") == 2.0
    assert aggregate(v, "trimmed", trim=0.25) == pytest.approx(3.5)
    assert aggregate(v, "softmax", temperature=0.0) == pytest.approx(27.0)
    assert aggregate(v, "softmax", temperature=50.0) == pytest.approx(100.0)
    assert aggregate(v, "dropout", keep=1.0, generator=torch.Generator()) == pytest.approx(27.0)
    one = aggregate(v, "dropout", keep=1e-9, generator=torch.Generator().manual_seed(0))
    assert one.item() in v.tolist()  # never an empty subset


def test_shard_split_routes_each_shard_to_its_discriminator(tiny_data, tmp_path):
    cfg = tiny_config(batch_size=16).to_dict()
    cfg["model"].update(disc_groups=4, group_split="shard")
    t = Trainer(resolve(cfg), tmp_path / "r", data=tiny_data, quiet=True)
    seen = [set() for _ in range(4)]
    for epoch in range(1, 4):  # three epochs: the shard of an example never changes
        order, steps = t._begin_epoch(epoch)
        assert steps == 240 // 4 // 4
        for i in range(steps):
            g, _ = to_groups(order[16 * i:16 * (i + 1)], 4)
            for k in range(4):
                seen[k].update(g[k].tolist())
    assert sum(len(s) for s in seen) == 240 and len(set().union(*seen)) == 240


@pytest.mark.slow
@pytest.mark.parametrize("extra", [
    {"disc_aggregate": "median"},
    {"disc_aggregate": "dropout", "group_split": "shard"},
    {"disc_input": "full", "disc_aggregate": "softmax"},
    {"disc_shared": True, "disc_aggregate": "median"},
    {"reject_quantile": 0.1},
    {"disc_aggregate": "trimmed", "disc_budget": "each"},
])
def test_grouped_variants_train_and_resume_exactly(tiny_data, tmp_path, extra):
    """Every arm trains to finite losses, and an interrupted run resumes bit for bit."""
    def cfg(epochs):
        d = tiny_config(epochs=epochs).to_dict()
        d["model"].update({"disc_groups": 4, **extra})
        if "reject_quantile" in extra:
            d["model"]["disc_groups"] = 1
        return resolve(d)

    full = Trainer(cfg(2), tmp_path / "a", data=tiny_data, quiet=True)
    line = full.fit()
    assert all(torch.isfinite(torch.tensor(line[k])) for k in ("loss_disc", "loss_gen"))
    Trainer(cfg(1), tmp_path / "b", data=tiny_data, quiet=True).fit()
    resumed = Trainer(cfg(2), tmp_path / "b", data=tiny_data, quiet=True, resume=True)
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_label_conditioning_composes_with_groups(tiny_data, tmp_path):
    d = tiny_config(epochs=1).to_dict()
    d["model"].update(disc_groups=4, label_conditioning=True, disc_aggregate="median")
    d["prior"] = {"name": "mixture", "components": 3}
    t = Trainer(resolve(d), tmp_path / "r", data=tiny_data, quiet=True)
    assert t.model.regularizers[0].discriminator.weights[0].shape == (4, 2 + 4, 8)
    assert torch.isfinite(torch.tensor(t.fit()["loss_gen"]))


def test_total_budget_keeps_parameters_of_one_discriminator():
    def count(n, **kw):  # two hidden layers, as the paper's discriminator
        reg = _grouped_reg(n, disc_hidden=[32, 32], **kw)
        return sum(p.numel() for p in reg.discriminator.parameters())

    one, four, each = count(1), count(4), count(4, disc_budget="each")
    assert each == 4 * one and four < 1.5 * one


@pytest.mark.parametrize("args,needle", [
    (["--set", "model.disc_groups=17"], "model.disc_groups"),
    (["--set", "model.disc_aggregate=mode"], "model.disc_aggregate"),
    (["--set", "model.disc_trim=0.5"], "model.disc_trim"),
    (["--set", "model.disc_trim=-0.1"], "model.disc_trim"),
    (["--set", "model.disc_groups=3", "--set", "model.group_split=shard"], "model.group_split"),
    (["--set", "model.reject_quantile=1.5"], "model.reject_quantile"),
    (["--set", "model.reject_quantile=0.1", "--prior", "swiss_roll", "--set", "model.code_dim=2"],
     "model.reject_quantile"),
])
def test_bad_group_options_are_one_line_errors(tmp_path, args, needle):
    assert_train_refuses(tmp_path, args, needle)
