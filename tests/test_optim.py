"""aae.optim.step: torch's fused Adam kernel called directly must be opt.step() bit for bit."""

import copy

import pytest
import torch
from torch import nn

from aae import optim

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="no CUDA device"))]


def _pair(device="cpu", **adam):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).to(device)
    twin = copy.deepcopy(net)
    kw = {"lr": 1e-3, "betas": (0.5, 0.999), "weight_decay": 0.01, "fused": True, **adam}
    return net, torch.optim.Adam(net.parameters(), **kw), twin, torch.optim.Adam(twin.parameters(), **kw)


def _backward(net, x):
    net(x).square().mean().backward()


@pytest.mark.parametrize("device", DEVICES)
def test_lean_adam_step_is_torchs_step_bit_for_bit(device):
    net, opt, twin, lean = _pair(device)
    start = net[0].weight.detach().clone()
    calls = []
    for k in range(8):
        x = torch.randn(32, 6, device=device)
        for n, o in ((net, opt), (twin, lean)):
            optim.clear_grads(o)
            _backward(n, x)
            if k == 3:  # a parameter without a gradient is skipped by both
                n[2].bias.grad = None
        if k == 5:  # a learning-rate change between steps
            for o in (opt, lean):
                o.param_groups[0]["lr"] = 1e-4
        opt.step()
        if k == 1:  # from now on the lean path must not fall back to opt.step()
            lean.step = lambda *a, **kw: calls.append(1)
        optim.step(lean)
    assert not calls
    for a, b in zip(net.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    sa, sb = opt.state_dict(), lean.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for i, s in sa["state"].items():
        for key, value in s.items():
            assert torch.equal(value, sb["state"][i][key]), (i, key)
    assert float(sa["state"][3]["step"]) == 7  # the output bias sat out one step
    assert float(sa["state"][2]["step"]) == 8
    assert not torch.equal(net[0].weight, start)  # the weights moved: not untouched copies


@pytest.mark.parametrize("adam", [{"amsgrad": True}, {"fused": False}, {"maximize": True}])
def test_other_adam_options_go_through_opt_step(adam):
    net, opt, _, _ = _pair(**adam)
    _backward(net, torch.randn(4, 6))
    optim.step(opt)  # the first step creates the state
    calls = []
    opt.step = lambda *a, **kw: calls.append(1)
    optim.step(opt)
    assert calls == [1]


def test_sgd_goes_through_opt_step():
    net = nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.ones(1, 3)).sum().backward()
    before = net.weight.detach().clone()
    optim.step(opt)
    assert torch.allclose(net.weight, before - 0.1 * torch.ones(2, 3))
    optim.clear_grads(opt)
    assert all(p.grad is None for p in net.parameters())
