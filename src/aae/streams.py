"""The named random streams of a run.

Every random draw of training comes from a stream with a name, seeded from ``train.seed`` once and
saved in every checkpoint, so that a resumed run draws what an uninterrupted one would:

* ``data``: the order of the training examples each epoch;
* ``prior``: the prior samples of the adversarial phases (on the training device);
* ``sample_noise``: the fixed prior draws that every sample grid decodes;
* ``labelled_subset``: which training examples keep their labels (``data.labelled``);
* ``shards``: the fixed shards of grouped discriminators with ``model.group_split = "shard"``;
* ``label_batches``: the labelled mini-batches of the classification phase (on the device);
* torch's global generator (weight initialisation, noise inside the step) is seeded with
  ``train.seed`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

STREAMS = {"data": 0, "prior": 1, "sample_noise": 2, "labelled_subset": 3, "shards": 4,
           "label_batches": 5}


def stream_seed(seed: int, name: str) -> int:
    """The seed of the stream ``name`` of a run seeded with ``seed``."""
    return seed + STREAMS[name]


def generator(seed: int, name: str, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(stream_seed(seed, name))


@dataclass
class Streams:
    """The streams that advance during training (the others are drawn from once)."""

    data: torch.Generator
    prior: torch.Generator
    label_batches: torch.Generator
    data_epoch: torch.Tensor  # the data stream's state at the start of the current epoch

    @classmethod
    def seeded(cls, seed: int, device: torch.device) -> Streams:
        data = generator(seed, "data")
        return cls(data, generator(seed, "prior", device), generator(seed, "label_batches", device),
                   data.get_state())

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"rng.data": self.data.get_state(), "rng.data_epoch": self.data_epoch,
                "rng.prior": self.prior.get_state(), "rng.label": self.label_batches.get_state(),
                "rng.torch": torch.get_rng_state()}

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        self.data.set_state(tensors["rng.data"])
        self.data_epoch = tensors["rng.data_epoch"]
        self.prior.set_state(tensors["rng.prior"])
        if "rng.label" in tensors:  # absent in checkpoints of runs before the semi-supervised AAE
            self.label_batches.set_state(tensors["rng.label"])
        torch.set_rng_state(tensors["rng.torch"])
