"""The optimizers of the training phases, and their step with less Python around torch's fused
Adam kernel.

A paper-sized step on 2 CPU cores runs three optimizer steps in 30 to 45 ms. ``Adam.step()``
wraps its one fused kernel call in Python bookkeeping (a profiler record, the state lookup of
every parameter, grouping the tensors by device and dtype), and ``zero_grad`` in another record:
0.2 to 0.7 ms per training step, about 2% of it (``bench/step_overhead.py``, experiments/performance).
Hand-rolled because torch has no leaner public entry to its fused kernel. :func:`step` calls
the same kernel (``torch._fused_adam_``, what ``Adam(fused=True).step()`` calls) on the
optimizer's own state tensors, so the update, the state and its ``state_dict`` are bit for bit
those of ``opt.step()`` (tests/test_optim.py); every other optimizer, and any Adam option this
path does not reproduce, goes through ``opt.step()``.
"""

from __future__ import annotations

import importlib

import torch

from .config import OptimConfig

# the module that holds the global step hooks (not an attribute of torch.optim in every release)
_HOOKS = importlib.import_module("torch.optim.optimizer")
_LEAN_OFF = {"capturable", "amsgrad", "maximize", "differentiable", "decoupled_weight_decay"}


def _lean(opt: torch.optim.Optimizer) -> bool:
    """Whether :func:`step` may call the fused kernel itself: a plain fused Adam with one group of
    real parameters on one device in one dtype, a float learning rate, no step hooks (its own or
    global), no option that changes the kernel call."""
    if type(opt) is not torch.optim.Adam or len(opt.param_groups) != 1:
        return False
    g = opt.param_groups[0]
    hooks = (getattr(opt, "_optimizer_step_pre_hooks", None),
             getattr(opt, "_optimizer_step_post_hooks", None),
             getattr(_HOOKS, "_global_optimizer_pre_hooks", None),
             getattr(_HOOKS, "_global_optimizer_post_hooks", None))
    kinds = {(p.device, p.dtype) for p in g["params"]}
    return (bool(g.get("fused")) and not any(g.get(k) for k in _LEAN_OFF)
            and isinstance(g["lr"], float) and hasattr(torch, "_fused_adam_")
            and all(h is not None and not h for h in hooks)
            and len(kinds) == 1 and next(iter(kinds))[1].is_floating_point)


def clear_grads(opt: torch.optim.Optimizer) -> None:
    """``opt.zero_grad(set_to_none=True)`` without its profiler record."""
    for g in opt.param_groups:
        for p in g["params"]:
            p.grad = None


def step(opt: torch.optim.Optimizer) -> None:
    """``opt.step()``; for a plain fused Adam, torch's fused kernel called directly. The first
    step (it creates the state) and a step where a parameter without state has a gradient go
    through ``opt.step()``; parameters without a gradient are skipped, as ``opt.step()`` does."""
    if not _lean(opt):
        opt.step()
        return
    group, state = opt.param_groups[0], opt.state
    params = [p for p in group["params"] if p.grad is not None]
    if not params or any(p not in state for p in params):
        opt.step()
        return
    states = [state[p] for p in params]
    steps = [s["step"] for s in states]
    beta1, beta2 = group["betas"]
    torch._foreach_add_(steps, 1)
    torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                       [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False,
                       lr=group["lr"], beta1=beta1, beta2=beta2,
                       weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)


def build_optimizer(params: list[torch.nn.Parameter], o: OptimConfig,
                    capturable: bool = False) -> torch.optim.Optimizer:
    """Adam or SGD, fused (one kernel over all parameters) where torch has it for the device:
    on 2 CPU cores fused Adam steps the 3.6 M autoencoder parameters in 1.4 ms against 8.5 ms for
    the multi-tensor version (experiments/performance). ``capturable``: Adam keeps its step count on
    the device, so that a CUDA graph can hold the optimizer step."""
    kind, kw = (torch.optim.Adam, {"betas": tuple(o.betas)}) if o.name == "adam" else (
        torch.optim.SGD, {"momentum": o.momentum})
    if capturable and o.name == "adam":
        kw["capturable"] = True
    try:
        return kind(params, lr=o.lr, weight_decay=o.weight_decay, fused=True, **kw)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device or dtype
        return kind(params, lr=o.lr, weight_decay=o.weight_decay, foreach=True, **kw)


def build_optimizers(model, optims: dict[str, OptimConfig],
                     capturable: bool = False) -> dict[str, torch.optim.Optimizer]:
    """One optimizer per phase the model's step has (``model.caps.phases``), over that phase's
    parameters; ``capturable`` for a step captured as a CUDA graph."""
    return {ph: build_optimizer(model.phase_parameters(ph), optims[ph], capturable)
            for ph in model.caps.phases}


def lr_at(o: OptimConfig, epoch: int, epochs: int) -> float:
    """The learning rate during ``epoch`` (1-based) of ``epochs``: multiplied by gamma once per
    milestone passed (milestones are fractions of the run: 0.75 of 20 epochs is epoch 15)."""
    return o.lr * o.gamma ** sum(epoch > round(m * epochs) for m in o.milestones)
