"""Matrix-product FLOPs of one training step, derived from the model's layer shapes."""

from __future__ import annotations

import torch
from torch import nn


def layer_shapes(net: nn.Module, run) -> list[tuple[int, int, int]]:
    """(rows, in, out) of the matrix product behind each layer one example passes through, found
    by calling ``run()`` (a forward pass of one example through ``net``): a linear layer is one
    row; a convolution one row per output position, in = C_in x k x k (im2col); a transposed
    convolution one row per input position, out = C_out x k x k. For N stacked discriminators
    (aae.groups.StackedMLP) an example passes through one member, so its shapes count once."""
    if hasattr(net, "weights") and hasattr(net, "member"):
        return [(1, w.shape[1], w.shape[2]) for w in net.weights]
    found, hooks = [], []

    def hook(mod, inp, out):
        x = inp[0]
        if isinstance(mod, nn.Linear):
            found.append((x.numel() // x.shape[-1] // len(x), mod.in_features, mod.out_features))
        elif isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            found.append((out.shape[2] * out.shape[3], mod.in_channels * k, mod.out_channels))
        elif isinstance(mod, nn.ConvTranspose2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            found.append((x.shape[2] * x.shape[3], mod.in_channels, mod.out_channels * k))

    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return found


def model_shapes(model) -> tuple[list, list, list[list]]:
    """:func:`layer_shapes` of the encoder, the decoder and each discriminator of an AAE."""
    x = torch.zeros(1, *model.image_shape)
    was = model.training
    model.eval()
    enc = layer_shapes(model.encoder, lambda: model.encode(x))
    codes = model.prior_codes(torch.zeros(1, model.cfg.code_dim),
                              classes=torch.zeros(1, dtype=torch.long))
    dec = layer_shapes(model.decoder, lambda: model.decode(codes))
    discs = []
    for r in model.regularizers:
        z = torch.zeros(1, model.classes if r.code == "y" else model.cfg.code_dim)
        y = torch.zeros(1, dtype=torch.long) if r.num_labels else None
        discs.append(layer_shapes(r.discriminator, lambda r=r, z=z, y=y: r(z, y)))
    model.train(was)
    return enc, dec, discs


def pass_flops(shapes, forward=True, weight_grad=False, input_grad=False, first_input_grad=False):
    """FLOPs per example of the matrix products of one pass over a network (``layer_shapes``):
    forward 2*r*i*o, weight gradient 2*r*i*o, input gradient 2*r*i*o (the first layer's only if
    its input needs a gradient)."""
    total = 0
    for k, (r, i, o) in enumerate(shapes):
        mac = r * i * o
        total += 2 * mac * (forward + weight_grad + (input_grad and (k > 0 or first_input_grad)))
    return total


def step_flops(model, classify: bool | None = None, schedule: str = "paper") -> dict[str, int]:
    """Per-image FLOPs of aae.step.Step (and of the reference step, which repeats the
    encoder forward for the discriminator phase): every regularizer's discriminator, and the
    classification phase (encoder forward and backward) where the model has a y head. With
    ``schedule = "joint"`` the encoder runs once and each discriminator's forward pass over the
    codes serves both losses: its input-gradient pass replaces the paper's encoder phase. The
    warp-consistency term (``model.y_consistency``) and the interpolation term (``model.y_mixup``)
    each add an encoder pass with its backward; the VAT term (``model.y_vat``) two passes, the first
    with input gradients only (down to the image), the second with its backward."""
    enc, dec, discs = model_shapes(model)
    recon = (pass_flops(enc, weight_grad=True, input_grad=True)
             + pass_flops(dec, weight_grad=True, input_grad=True, first_input_grad=True))
    # discriminator phase: D forward on prior samples and on detached codes, weight gradients
    disc_phase = sum(2 * pass_flops(d, weight_grad=True, input_grad=True) for d in discs)
    # encoder phase: D forward (frozen) with input gradients, encoder forward + backward
    gen_phase = (sum(pass_flops(d, input_grad=True, first_input_grad=True) for d in discs)
                 + pass_flops(enc, weight_grad=True, input_grad=True))
    if schedule == "joint":
        gen_phase = sum(pass_flops(d, forward=False, input_grad=True, first_input_grad=True)
                        for d in discs)
    if model.cfg.y_consistency > 0:  # encoder forward and backward on the warped images
        gen_phase += pass_flops(enc, weight_grad=True, input_grad=True)
    if model.cfg.y_mixup > 0:  # and on the mixed images
        gen_phase += pass_flops(enc, weight_grad=True, input_grad=True)
    if model.cfg.y_vat > 0:  # VAT: a forward pass and input gradients down to the image to find
        # the direction, then forward and backward on the perturbed images
        gen_phase += (pass_flops(enc, input_grad=True, first_input_grad=True)
                      + pass_flops(enc, weight_grad=True, input_grad=True))
    if classify is None:  # the phases the model says its step has
        classify = model.caps.classify
    classify = pass_flops(enc, weight_grad=True, input_grad=True) if classify else 0
    ours = recon + disc_phase + gen_phase + classify
    reference = ours + pass_flops(enc)  # one more encoder forward (codes for the D phase)
    return {"recon": recon, "disc": disc_phase, "gen": gen_phase, "classify": classify,
            "step": ours, "reference_step": reference}
