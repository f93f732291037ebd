"""aae: adversarial autoencoders (Makhzani, Shlens, Jaitly, Goodfellow and Frey, 2015).

    from aae import AAE
    model = AAE.from_preset("unsupervised", train={"epochs": 5}).fit(images)
    samples = model.sample(16, seed=0)
    model.save("runs/mine")
"""

from .api import AAE
from .config import Config, resolve
from .errors import AAEError
from .runs import load_run
from .training import Trainer, train

__all__ = ["AAE", "AAEError", "Config", "Trainer", "load_run", "resolve", "train"]
__version__ = "0.1.0"
