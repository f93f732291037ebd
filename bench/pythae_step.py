"""Time pythae's Adversarial_AE training on MNIST (run by bench/pythae_compare.py).

Runs inside a separate virtual environment that has pythae (``pip install torch==2.13.0 pythae``);
nothing in aae imports it. Prints one JSON line: images/s of pythae's own ``AdversarialTrainer``
epoch loop (its DataLoader, its two optimizer steps per batch) over ``--images`` MNIST training
images, median of ``--repeats`` epochs after one warm-up epoch, and the matrix-product FLOPs per
image of that step (counted as bench/flops.py counts aae's: from the layer shapes, convolutions as
their im2col products) with the GFLOP/s they make.

``--arch mlp``: the paper's MNIST sizes (784-1000-1000-8 encoder, its mirror as decoder).
``--arch conv``: pythae's own MNIST convolutional networks, ``Encoder_Conv_AE_MNIST`` (four
stride-2 kernel-4 convolutions, 128-256-512-1024 channels, batch norm, then a linear layer to the
code) and ``Decoder_Conv_AE_MNIST`` (a linear layer to 1024x4x4, three kernel-3 transposed
convolutions with batch norm, a sigmoid). Both use the same discriminator, the paper's
8-1000-1000-1 MLP on the codes.

    /path/to/pythae-venv/bin/python bench/pythae_step.py --data ../shared/data/mnist [--arch conv]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from pythae.data.datasets import BaseDataset
from pythae.models import Adversarial_AE, Adversarial_AE_Config
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseDiscriminator, BaseEncoder
from pythae.models.nn.benchmarks.mnist import Decoder_Conv_AE_MNIST, Encoder_Conv_AE_MNIST
from pythae.trainers import AdversarialTrainer, AdversarialTrainerConfig
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flops import layer_shapes, pass_flops  # noqa: E402  (torch only: no aae import)


def mlp(sizes: list[int]) -> nn.Sequential:
    """aae.model.mlp without its init option: this file runs in pythae's venv, where aae is not
    installed, so it cannot import it."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Encoder(BaseEncoder):  # 784-1000-1000-8, the paper's MNIST encoder
    def __init__(self, d: int):
        super().__init__()
        self.net = mlp([784, 1000, 1000, d])

    def forward(self, x):
        z = self.net(x.flatten(1))
        # pythae's Adversarial_AE reads a log-variance even with deterministic_posterior (it
        # multiplies the std by 0): zeros, the cheapest way to give it one
        return ModelOutput(embedding=z, log_covariance=torch.zeros_like(z))


class ConvEncoder(Encoder_Conv_AE_MNIST):
    """pythae's MNIST convolutional encoder, unchanged, plus the zero log-variance its
    Adversarial_AE reads (the encoder returns only the embedding)."""

    def forward(self, x):
        out = super().forward(x)
        out["log_covariance"] = torch.zeros_like(out.embedding)
        return out


class Decoder(BaseDecoder):  # 8-1000-1000-784, sigmoid output
    def __init__(self, d: int):
        super().__init__()
        self.net = mlp([d, 1000, 1000, 784])

    def forward(self, z):
        return ModelOutput(reconstruction=torch.sigmoid(self.net(z)).view(-1, 1, 28, 28))


class Discriminator(BaseDiscriminator):  # 8-1000-1000-1; pythae's loss wants probabilities
    def __init__(self, d: int):
        super().__init__()
        self.net = mlp([d, 1000, 1000, 1])

    def forward(self, z):
        return ModelOutput(embedding=torch.sigmoid(self.net(z)))


def step_flops(model: Adversarial_AE) -> int:
    """Matrix-product FLOPs per image of one step of pythae's Adversarial_AE with its
    AdversarialTrainer: encoder, decoder and three discriminator passes forward (on the codes, on
    the prior samples, on the detached codes); ``autoencoder_loss.backward()`` through the decoder
    (down to the codes), the encoder (not to the image) and the discriminator on the codes (its
    weight gradients too: they are computed, then zeroed); ``discriminator_loss.backward()`` through
    the discriminator on the prior samples (which require a gradient: down to them too) and on
    the detached codes. Batch norm, activations and losses are not matrix products."""
    d = model.latent_dim
    was = model.training
    model.eval()  # batch norm on one example
    x, z = torch.zeros(1, 1, 28, 28), torch.zeros(1, d)
    enc = layer_shapes(model.encoder, lambda: model.encoder(x))
    dec = layer_shapes(model.decoder, lambda: model.decoder(z))
    disc = layer_shapes(model.discriminator, lambda: model.discriminator(z))
    model.train(was)
    return (pass_flops(enc, weight_grad=True, input_grad=True)
            + pass_flops(dec, weight_grad=True, input_grad=True, first_input_grad=True)
            + 2 * pass_flops(disc, weight_grad=True, input_grad=True, first_input_grad=True)
            + pass_flops(disc, weight_grad=True, input_grad=True))


def load_mnist(folder: Path, n: int) -> np.ndarray:
    raw = gzip.decompress((folder / "train-images-idx3-ubyte.gz").read_bytes())
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    return (x.astype(np.float32) / 255.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with the MNIST IDX .gz files")
    ap.add_argument("--arch", choices=("mlp", "conv"), default="mlp",
                    help="mlp: the paper's sizes; conv: pythae's MNIST convolutional networks")
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d = 8
    cfg = Adversarial_AE_Config(input_dim=(1, 28, 28), latent_dim=d, reconstruction_loss="mse",
                                deterministic_posterior=True)
    if a.arch == "conv":  # pythae's networks take the model config (input_dim, latent_dim)
        encoder, decoder = ConvEncoder(cfg), Decoder_Conv_AE_MNIST(cfg)
    else:
        encoder, decoder = Encoder(d), Decoder(d)
    model = Adversarial_AE(cfg, encoder=encoder, decoder=decoder, discriminator=Discriminator(d))
    flops = step_flops(model)
    tcfg = AdversarialTrainerConfig(
        output_dir="/tmp/pythae_bench", per_device_train_batch_size=a.batch_size, num_epochs=1,
        autoencoder_optimizer_cls="Adam", autoencoder_learning_rate=1e-3,
        discriminator_optimizer_cls="Adam", discriminator_learning_rate=1e-4, no_cuda=True)
    x = torch.from_numpy(load_mnist(a.data, a.images))
    x = BaseDataset(x, torch.zeros(len(x)))  # what pythae's pipelines build from an array
    trainer = AdversarialTrainer(model=model, train_dataset=x, training_config=tcfg)
    trainer.prepare_training()  # what trainer.train() does first: optimizers, callbacks
    trainer.train_step(0)  # warm-up
    times = []
    for epoch in range(1, a.repeats + 1):
        t0 = time.perf_counter()
        trainer.train_step(epoch)
        times.append(time.perf_counter() - t0)
    rate = a.images / statistics.median(times)
    print(json.dumps({"impl": "pythae", "arch": a.arch, "batch": a.batch_size, "images": a.images,
                      "images_per_s": rate, "mflop_per_image": round(flops / 1e6, 1),
                      "gflop_per_s": round(rate * flops / 1e9, 1),
                      "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
