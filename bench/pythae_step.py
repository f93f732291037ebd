"""Time pythae's Adversarial_AE training at the paper's MNIST sizes (run by bench/pythae_compare.py).

Runs inside a separate virtual environment that has pythae (``pip install torch==2.13.0 pythae``);
nothing in aae imports it. Prints one JSON line: images/s of pythae's own ``AdversarialTrainer``
epoch loop (its DataLoader, its two optimizer steps per batch) over ``--images`` MNIST training
images, median of ``--repeats`` epochs after one warm-up epoch.

    /path/to/pythae-venv/bin/python bench/pythae_step.py --data ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from pythae.data.datasets import BaseDataset
from pythae.models import Adversarial_AE, Adversarial_AE_Config
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseDiscriminator, BaseEncoder
from pythae.trainers import AdversarialTrainer, AdversarialTrainerConfig
from torch import nn


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


def load_mnist(folder: Path, n: int) -> np.ndarray:
    raw = gzip.decompress((folder / "train-images-idx3-ubyte.gz").read_bytes())
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    return (x.astype(np.float32) / 255.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with the MNIST IDX .gz files")
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
    model = Adversarial_AE(cfg, encoder=Encoder(d), decoder=Decoder(d), discriminator=Discriminator(d))
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
    print(json.dumps({"impl": "pythae", "batch": a.batch_size, "images": a.images,
                      "images_per_s": a.images / statistics.median(times),
                      "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
