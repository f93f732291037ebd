"""Matrix-product FLOPs of one training step, derived from the model's layer shapes."""

from __future__ import annotations

from torch import nn


def linear_shapes(net: nn.Module) -> list[tuple[int, int]]:
    """(in, out) of each layer an example passes through; for N stacked discriminators
    (aae.groups.StackedMLP) an example passes through one member, so its shapes count once."""
    if hasattr(net, "weights") and hasattr(net, "member"):
        return [(w.shape[1], w.shape[2]) for w in net.weights]
    return [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, nn.Linear)]


def pass_flops(shapes, forward=True, weight_grad=False, input_grad=False, first_input_grad=False):
    """FLOPs per example of the matrix products of one pass over an MLP: forward 2*i*o, weight
    gradient 2*i*o, input gradient 2*i*o (the first layer's only if its input needs a gradient)."""
    total = 0
    for k, (i, o) in enumerate(shapes):
        mac = i * o
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
    enc, dec = linear_shapes(model.encoder), linear_shapes(model.decoder)
    discs = [linear_shapes(r.discriminator) for r in model.regularizers]
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
