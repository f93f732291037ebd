"""aae: adversarial autoencoders (Makhzani, Shlens, Jaitly, Goodfellow and Frey, 2015).

    from aae import Config, train, load_run
    cfg = Config.from_dict({"data": {"dataset": "digits"}, "train": {"epochs": 2}}).validate()
    train(cfg, "runs/quick")
    cfg, model, meta = load_run("runs/quick")
"""

from .config import Config, resolve
from .errors import AAEError
from .runs import load_run
from .training import Trainer, train

__all__ = ["AAEError", "Config", "Trainer", "load_run", "resolve", "train"]
__version__ = "0.1.0"
