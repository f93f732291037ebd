"""Typed, validated run configuration.

A run is fully described by one :class:`Config`: defaults, then a preset, then a TOML file, then
``--set key=value`` overrides, then explicit CLI flags. The resolved config is written to
``RUN/config.toml`` and stored in every checkpoint, so a run directory describes itself.

Every value is checked here (type, range, known keys), and every fault is an :class:`AAEError` that
names the option, so nothing downstream has to re-check user input.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AAEError

AGGREGATES = ("mean", "softmax", "max", "median", "trimmed", "dropout")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


@dataclass
class DataConfig:
    # mnist | fashion-mnist | colored-mnist | svhn | cifar10 | celeba | digits | a path to .npy/.npz
    # or an image folder
    dataset: str = "mnist"
    data_dir: str = ""  # "" = the look-up order of aae.data (AAE_DATA_DIR, cache, /usr/share/datasets)
    limit: int = 0  # train on the first N training images; 0 = all
    labelled: int = -1  # label conditioning: keep labels on N class-balanced images; -1 = all
    validation: int = 0  # hold the last N training images out as a validation split
    download: bool = True  # fetch missing IDX files or CIFAR-10 from the official mirrors (MD5-verified)
    image_size: list[int] = field(default_factory=list)  # [H, W]: resize on load; [] = as stored
    channels: int = 0  # 1 or 3: convert on load (luminance / grey repeated); 0 = as stored
    test_fraction: float = 0.1  # a user's own files: the share held out as the test split


@dataclass
class ModelConfig:
    code_dim: int = 8  # d, the size of z (paper appendix A.1: 8 on MNIST)
    # the encoder and decoder family: mlp (the paper's, over flattened pixels; *_hidden below) |
    # conv (DCGAN-style stride-2 convolutions down and transposed convolutions up; conv_widths)
    arch: str = "mlp"
    conv_widths: list[int] = field(default_factory=lambda: [32, 64])  # conv: channels per stage
    # conv: fully connected layer sizes between the last feature map and the code (mirrored in
    # the decoder); [] = one linear layer each way
    conv_hidden: list[int] = field(default_factory=list)
    # your own networks: "package.module:factory" (protocol in aae.nets); "" = model.arch's
    encoder: str = ""
    decoder: str = ""  # your own decoder: "package.module:factory"; "" = model.arch's
    discriminator: str = ""  # your own discriminator on codes: "package.module:factory"; "" = an MLP
    encoder_hidden: list[int] = field(default_factory=lambda: [1000, 1000])  # mlp: hidden widths
    decoder_hidden: list[int] = field(default_factory=lambda: [1000, 1000])  # mlp: hidden widths
    disc_hidden: list[int] = field(default_factory=lambda: [1000, 1000])  # discriminators' widths
    output: str = "sigmoid"  # decoder output: sigmoid (pixels in [0, 1]) | linear
    init_std: float = 0.0  # > 0: weights ~ N(0, init_std^2) as in the paper; 0: PyTorch's default
    posterior: str = "deterministic"  # q(z|x): deterministic | gaussian | universal
    noise_dim: int = 8  # universal: size of the noise appended to the encoder's input
    eval_draws: int = 16  # universal: noise draws averaged when encoding for evaluation
    label_conditioning: bool = False  # the discriminator also sees the label (figure 3)
    # what the decoder gets beside z: none | label (supervised style/content AAE, section 4) |
    # y (a softmax head q(y|x) with a categorical prior: semi-supervised and clustering, 5-6)
    # | heads (dimensionality reduction, section 7: the decoder gets r = W y + z)
    class_input: str = "none"
    classes: int = 10  # K: classes of the label or y input (clusters for clustering)
    head_eta: float = 2.0  # heads: the penalty is zero for cluster heads farther apart than this
    head_weight: float = 1.0  # heads: weight of the head penalty in the reconstruction phase
    head_init: float = 1.0  # heads: std of the cluster heads' initial values
    # y head: weight of KL(batch mean of q(y|x) || uniform) in the encoder's adversarial phase.
    # Not in the paper: without it unsupervised clustering left most clusters empty here
    # (experiments/clustering); 0 = the paper's categorical adversary alone
    y_balance: float = 0.0
    # y head: weight of KL(q(y|x) || q(y|T(x))) in the encoder's adversarial phase, T a random
    # small affine warp of the image (shift, rotation, scale), q(y|x) held fixed. Not in the paper:
    # it makes the clusters follow what survives small warps (digit identity) rather than style
    # (IMSAT, Hu et al. 2017, with random warps for VAT; experiments/clustering); 0 = off. Like
    # y_balance it is part of the encoder's adversarial loss, so train.schedule = "joint" scales
    # it by train.adv_weight too
    y_consistency: float = 0.0
    y_mixup: float = 0.0  # KL(mix of q(y|x_i), q(y|x_j) || q(y|mix of x_i, x_j)), as in ICT
    # y head: weight of KL(q(y|x) || q(y|x + r)), r the perturbation of L2 norm vat_eps that
    # changes q(y|x) most (virtual adversarial training, Miyato et al. 2018, as IMSAT uses it for
    # clustering); two more encoder passes and one backward pass to the input; 0 = off
    y_vat: float = 0.0
    vat_eps: float = 1.5  # y_vat: L2 norm of r in pixel units (IMSAT: a quarter of the distance
    #                       to an image's 10th neighbour, about 1.5 on MNIST)
    warp_shift: float = 2.0  # y_consistency: largest shift of T, in pixels
    warp_degrees: float = 15.0  # y_consistency: largest rotation of T, in degrees
    warp_scale: float = 0.1  # y_consistency: largest relative change of scale of T
    # grouped discriminators (the original report's question; aae.groups, experiments/outliers)
    disc_groups: int = 1  # N: split each batch into N groups, one discriminator each; 1 = plain
    group_split: str = "random"  # random: fresh groups every step | shard: fixed dataset shards
    # how the encoder's adversarial loss combines the N per-group losses
    disc_aggregate: str = "mean"  # mean | softmax | max | median | trimmed | dropout
    disc_temperature: float = 1.0  # softmax: weights softmax(temperature * loss), as GMAN
    disc_trim: float = 0.25  # trimmed: drop this fraction of groups at each end, in [0, 0.5)
    disc_keep: float = 0.5  # dropout: the probability that a group's loss is kept each step
    disc_input: str = "group"  # group: discriminator k sees group k | full: every one the batch
    disc_shared: bool = False  # one discriminator for all groups (the median-of-means control)
    # total: the N discriminators together have about one discriminator's parameters (hidden
    # widths / sqrt(N)) | each: every discriminator has disc_hidden
    disc_budget: str = "total"
    reject_quantile: float = 0.0  # > 0: drop each step's least likely codes under the prior


@dataclass
class PriorConfig:
    # gaussian | uniform | mixture | swiss_roll | categorical | package.module:attribute
    name: str = "gaussian"
    std: float = 1.0  # gaussian; the original report uses N(0, I), the paper's likelihood set-up 5
    half_width: float = 1.0  # uniform: the box [-half_width, half_width]^d
    components: int = 10  # mixture components / swiss-roll segments (one per class)
    radius: float = 1.4  # mixture: distance of the component centres from the origin
    std_radial: float = 0.5  # mixture: each component's std along its radius
    std_tangential: float = 0.05  # mixture: and across it
    roll_noise: float = 0.0  # swiss_roll: std of Gaussian noise around the curve (0 = a thin curve)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | sgd
    lr: float = 1e-3  # learning rate (each phase has its own: optim.recon, disc, gen, classify)
    momentum: float = 0.9  # sgd only
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])  # adam only
    weight_decay: float = 0.0  # L2 penalty on the phase's parameters
    # fractions of train.epochs after which lr *= gamma (0.75 of a 20-epoch run: after epoch 15)
    milestones: list[float] = field(default_factory=list)
    gamma: float = 0.1  # lr *= gamma at each milestone


def _default_optim() -> dict[str, OptimConfig]:
    # Chosen by measurement (experiments/default-tuning): Adam everywhere; the discriminator 10x slower than
    # reconstruction (faster, it wins and the codes spread out); the encoder's adversarial step
    # half the reconstruction rate (at 1e-4 the discriminator slowly wins, at 1e-3 the codes
    # oscillate around the prior); every rate x0.1 for the last quarter of the run.
    return {
        "recon": OptimConfig(lr=1e-3, milestones=[0.75]),
        "disc": OptimConfig(lr=1e-4, milestones=[0.75]),
        "gen": OptimConfig(lr=5e-4, milestones=[0.75]),
        # the semi-supervised classification phase (cross-entropy of q(y|x) on labelled data)
        "classify": OptimConfig(lr=1e-3, milestones=[0.75]),
    }


@dataclass
class TrainConfig:
    epochs: int = 20  # passes over the training set
    batch_size: int = 100  # images per step (split over processes under torchrun)
    seed: int = 0  # every random stream of the run derives from it (aae.streams)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    recon_loss: str = "mse"  # mse (the paper's Euclidean cost) | bce
    sample_epochs: list[int] = field(default_factory=lambda: [0, 1, 5, 10, 50, 100, 500])
    checkpoint_every: int = 10  # keep a checkpoint every N epochs (the last one is always kept)
    tsne_points: int = 10000  # test codes in tsne.png (0 = skip the t-SNE)
    input_noise: float = 0.0  # std of Gaussian noise added to the encoder's input (paper A.2: 0.3)
    # paper: reconstruction step, then discriminator and encoder steps on the updated encoder's
    # codes (paper section 2) | joint: one encoder pass per batch; the discriminators and the
    # autoencoder step at once on it, the encoder on reconstruction + adv_weight x adversarial loss
    # (as pythae and many reimplementations do; fewer FLOPs, experiments/performance)
    schedule: str = "paper"
    adv_weight: float = 0.01  # joint: weight of the adversarial loss beside the mean pixel MSE
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    # how the step runs (not what it computes; may change on --resume):
    # fp32 | bf16: autocast of the forward passes (GPUs, and CPUs with AMX; experiments/performance)
    precision: str = "fp32"
    compile: bool = False  # torch.compile the networks (measured slower on CPU, experiments/performance)
    # on CUDA, capture the whole training step once as a CUDA graph and replay it every step: one
    # launch instead of hundreds, 5.9x the eager step on an H200 (experiments/performance); ignored on
    # the CPU and under torchrun
    cuda_graph: bool = True
    # MLflow tracking (pip install 'aae[mlflow]'): params, per-epoch metrics, sample grids and the
    # run's files go to this tracking URI, e.g. sqlite:///mlflow.db or http://host:5000 ("" = off)
    mlflow_uri: str = ""
    mlflow_experiment: str = "aae"  # the MLflow experiment the run is logged under


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: dict[str, OptimConfig] = field(default_factory=_default_optim)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> Config:
        return _build(cls, d, source)

    def validate(self) -> Config:
        _validate(self)
        return self


PHASES = ("recon", "disc", "gen", "classify")


# ---------------------------------------------------------------------------------------------
# dict <-> dataclass, with a precise error for every wrong key or value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise AAEError(f"{where}: expected a list of {_type_name(item_tp)}, got {value!r}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise AAEError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise AAEError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AAEError(f"{where}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise AAEError(f"{where}: expected a finite number, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise AAEError(f"{where}: expected a string, got {value!r}")
        return value
    raise AssertionError(f"unsupported config type {tp!r}")  # a bug in this module, not user input


def _build(cls: type, d: Any, where: str) -> Any:
    if not isinstance(d, dict):
        raise AAEError(f"{where}: expected a table of options, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise AAEError(
            f"{where}: unknown option {unknown[0]!r}; valid options: {', '.join(names)}"
        )
    kwargs = {}
    for name in names:
        if name not in d:
            continue
        tp, sub = hints[name], f"{where}.{name}" if where != "config" else name
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, d[name], sub)
        elif typing.get_origin(tp) is dict:
            kwargs[name] = _build_optim(d[name], sub)
        else:
            kwargs[name] = _coerce(d[name], tp, sub)
    return cls(**kwargs)


def _build_optim(d: Any, where: str) -> dict[str, OptimConfig]:
    if not isinstance(d, dict):
        raise AAEError(f"{where}: expected a table of phases, got {d!r}")
    unknown = sorted(set(d) - set(PHASES))
    if unknown:
        raise AAEError(f"{where}: unknown phase {unknown[0]!r}; valid phases: {', '.join(PHASES)}")
    out = _default_optim()
    for phase, sub in d.items():
        base = dataclasses.asdict(out[phase])
        if not isinstance(sub, dict):
            raise AAEError(f"{where}.{phase}: expected a table of options, got {sub!r}")
        base.update(sub)
        out[phase] = _build(OptimConfig, base, f"{where}.{phase}")
    return out


def need(ok: bool, option: str, expected: str, value: Any) -> None:
    """Raise the one-line error for ``option`` unless ``ok``."""
    if not ok:
        raise AAEError(f"option {option}: expected {expected}, got {value!r}")


def _validate(cfg: Config) -> None:
    for check in (_validate_train, _validate_model, _validate_groups, _validate_heads,
                  _validate_prior, _validate_optim):
        check(cfg)


def _validate_train(cfg: Config) -> None:
    """The train and data sections."""
    t, d = cfg.train, cfg.data
    need(not d.image_size or (len(d.image_size) == 2 and all(0 < v <= 4096 for v in d.image_size)),
         "data.image_size", "[height, width] in pixels (1 to 4096), or [] to keep the size",
         d.image_size)
    need(d.channels in (0, 1, 3), "data.channels", "1, 3, or 0 to keep the data's", d.channels)
    need(0 < d.test_fraction < 1, "data.test_fraction", "a fraction in (0, 1)", d.test_fraction)
    need(0 <= t.epochs < 2**31, "train.epochs (--epochs)", "an integer in [0, 2^31)", t.epochs)
    need(0 < t.batch_size < 2**31, "train.batch_size", "an integer in [1, 2^31)", t.batch_size)
    need(0 <= t.seed < 2**63, "train.seed", "an integer in [0, 2^63)", t.seed)
    need(not t.mlflow_uri or importlib.util.find_spec("mlflow") is not None, "train.mlflow_uri",
         "empty unless MLflow is installed (pip install 'aae[mlflow]')", t.mlflow_uri)
    need(bool(t.mlflow_experiment.strip()), "train.mlflow_experiment", "a name",
         t.mlflow_experiment)
    need(t.checkpoint_every > 0, "train.checkpoint_every", "an integer > 0", t.checkpoint_every)
    need(t.tsne_points >= 0, "train.tsne_points", "an integer >= 0", t.tsne_points)
    need(t.threads >= 0, "train.threads", "an integer >= 0", t.threads)
    need(all(e >= 0 for e in t.sample_epochs), "train.sample_epochs", "epochs >= 0", t.sample_epochs)
    need(t.precision in ("fp32", "bf16"), "train.precision (--precision)", "one of fp32, bf16",
         t.precision)
    need(t.recon_loss in ("mse", "bce"), "train.recon_loss", "one of mse, bce", t.recon_loss)
    dev = t.device
    need(dev in ("auto", "cpu", "cuda") or dev.startswith("cuda:"), "train.device (--device)",
         "one of auto, cpu, cuda, cuda:N", dev)
    need(cfg.data.limit >= 0, "data.limit (--limit)", "an integer >= 0", cfg.data.limit)
    need(cfg.data.validation >= 0, "data.validation", "an integer >= 0", cfg.data.validation)


def _validate_model(cfg: Config) -> None:
    """The networks and the posterior."""
    m = cfg.model
    need(m.arch in ("mlp", "conv"), "model.arch", "one of mlp, conv", m.arch)
    need(bool(m.conv_widths) and all(0 < c <= 2**16 for c in m.conv_widths), "model.conv_widths",
         "one or more channel counts from 1 to 65536", m.conv_widths)
    need(all(0 < c <= 2**20 for c in m.conv_hidden), "model.conv_hidden",
         "layer sizes from 1 to 2^20", m.conv_hidden)
    for part in ("encoder", "decoder", "discriminator"):
        path = getattr(m, part)
        need(not path or (":" in path and all(path.partition(":")[::2])), f"model.{part}",
             "package.module:factory, or empty", path)
    need(m.posterior != "universal" or (m.arch == "mlp" and not m.encoder), "model.posterior",
         "deterministic or gaussian unless model.arch is mlp with the built-in encoder (the "
         "universal posterior appends noise to the flattened image)", m.posterior)
    need(not m.discriminator or m.disc_groups == 1 or m.disc_shared, "model.discriminator",
         "empty when model.disc_groups > 1 (grouped discriminators are stacked MLPs; or set "
         "model.disc_shared = true)", m.discriminator)
    need(0 < m.code_dim <= 2**16, "model.code_dim", "an integer from 1 to 65536", m.code_dim)
    for name in ("encoder_hidden", "decoder_hidden", "disc_hidden"):
        sizes = getattr(m, name)
        need(all(0 < s <= 2**20 for s in sizes), f"model.{name}", "layer sizes from 1 to 2^20",
             sizes)
    need(m.output in ("sigmoid", "linear"), "model.output", "one of sigmoid, linear", m.output)
    need(m.init_std >= 0, "model.init_std", "a number >= 0", m.init_std)
    need(m.posterior in ("deterministic", "gaussian", "universal"), "model.posterior (--posterior)",
         "one of deterministic, gaussian, universal", m.posterior)
    need(0 < m.noise_dim <= 2**16, "model.noise_dim", "an integer from 1 to 65536", m.noise_dim)
    need(0 < m.eval_draws <= 10**4, "model.eval_draws", "an integer from 1 to 10000",
         m.eval_draws)
    need(cfg.data.labelled >= -1, "data.labelled (--labelled)", "an integer >= 0, or -1 for all",
         cfg.data.labelled)


def _validate_heads(cfg: Config) -> None:
    """Class inputs, heads and the terms on q(y|x)."""
    t, m = cfg.train, cfg.model
    need(m.class_input in ("none", "label", "y", "heads"), "model.class_input",
         "one of none, label, y, heads", m.class_input)
    need(m.head_eta > 0, "model.head_eta", "a number > 0", m.head_eta)
    need(m.head_weight >= 0, "model.head_weight", "a number >= 0", m.head_weight)
    need(m.head_init > 0, "model.head_init", "a number > 0", m.head_init)
    need(m.y_balance >= 0, "model.y_balance", "a number >= 0", m.y_balance)
    need(m.y_consistency >= 0, "model.y_consistency", "a number >= 0", m.y_consistency)
    need(m.y_mixup >= 0, "model.y_mixup", "a number >= 0", m.y_mixup)
    need(m.y_mixup == 0 or m.class_input in ("y", "heads"), "model.y_mixup",
         "0 unless model.class_input is y or heads (it acts on q(y|x))", m.y_mixup)
    need(m.y_vat >= 0, "model.y_vat", "a number >= 0", m.y_vat)
    need(m.y_vat == 0 or m.class_input in ("y", "heads"), "model.y_vat",
         "0 unless model.class_input is y or heads (it acts on q(y|x))", m.y_vat)
    need(m.vat_eps > 0, "model.vat_eps", "a length > 0", m.vat_eps)
    need(m.y_consistency == 0 or m.class_input in ("y", "heads"), "model.y_consistency",
         "0 unless model.class_input is y or heads (it acts on q(y|x))", m.y_consistency)
    need(m.warp_shift >= 0, "model.warp_shift", "a number of pixels >= 0", m.warp_shift)
    need(0 <= m.warp_degrees <= 180, "model.warp_degrees", "an angle in [0, 180]",
         m.warp_degrees)
    need(0 <= m.warp_scale < 1, "model.warp_scale", "a fraction in [0, 1)", m.warp_scale)
    need(m.classes >= 2, "model.classes", "an integer >= 2", m.classes)
    need(t.input_noise >= 0, "train.input_noise", "a number >= 0", t.input_noise)
    need(t.schedule in ("paper", "joint"), "train.schedule", "one of paper, joint", t.schedule)
    need(t.adv_weight > 0, "train.adv_weight", "a number > 0", t.adv_weight)


def _validate_groups(cfg: Config) -> None:
    """Grouped discriminators and likelihood rejection."""
    t, m = cfg.train, cfg.model
    need(m.disc_groups >= 1, "model.disc_groups", "an integer >= 1", m.disc_groups)
    need(m.disc_groups <= t.batch_size, "model.disc_groups",
         f"at most train.batch_size = {t.batch_size} groups (each needs an example)", m.disc_groups)
    need(m.group_split in ("random", "shard"), "model.group_split",
         "one of random, shard", m.group_split)
    need(m.group_split == "random" or t.batch_size % m.disc_groups == 0,
         "model.group_split",
         f"random, or a train.batch_size divisible by model.disc_groups = {m.disc_groups}",
         m.group_split)
    need(m.disc_aggregate in AGGREGATES, "model.disc_aggregate",
         f"one of {', '.join(AGGREGATES)}", m.disc_aggregate)
    need(m.disc_temperature >= 0, "model.disc_temperature", "a number >= 0", m.disc_temperature)
    need(0 <= m.disc_trim < 0.5, "model.disc_trim", "a fraction in [0, 0.5)", m.disc_trim)
    need(0 < m.disc_keep <= 1, "model.disc_keep", "a probability in (0, 1]", m.disc_keep)
    need(m.disc_input in ("group", "full"), "model.disc_input", "one of group, full",
         m.disc_input)
    need(m.disc_budget in ("total", "each"), "model.disc_budget", "one of total, each",
         m.disc_budget)
    need(0 <= m.reject_quantile < 1, "model.reject_quantile",
         "a fraction in [0, 1)", m.reject_quantile)


def _validate_prior(cfg: Config) -> None:
    """The prior, and the reconstruction loss against the output."""
    t, m, p = cfg.train, cfg.model, cfg.prior
    need(t.recon_loss != "bce" or m.output == "sigmoid", "train.recon_loss",
         "mse when model.output is linear (bce needs outputs in [0, 1])", t.recon_loss)
    for name in ("std", "half_width", "radius", "std_radial", "std_tangential"):
        need(getattr(p, name) > 0, f"prior.{name}", "a number > 0", getattr(p, name))
    need(p.components > 0, "prior.components", "an integer > 0", p.components)
    need(p.roll_noise >= 0, "prior.roll_noise", "a number >= 0", p.roll_noise)


def _validate_optim(cfg: Config) -> None:
    """Every phase's optimizer."""
    for phase, o in cfg.optim.items():
        key = f"optim.{phase}"
        need(o.name in ("adam", "sgd"), f"{key}.name", "one of adam, sgd", o.name)
        need(o.lr > 0, f"{key}.lr", "a learning rate > 0", o.lr)
        need(0 <= o.momentum < 1, f"{key}.momentum", "a number in [0, 1)", o.momentum)
        need(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), f"{key}.betas",
             "two numbers in [0, 1)", o.betas)
        need(o.weight_decay >= 0, f"{key}.weight_decay", "a number >= 0", o.weight_decay)
        need(all(0 < e < 1 for e in o.milestones), f"{key}.milestones",
             "fractions of the run in (0, 1)", o.milestones)
        need(0 < o.gamma <= 1, f"{key}.gamma", "a number in (0, 1]", o.gamma)


# ---------------------------------------------------------------------------------------------
# layering: defaults <- preset <- file <- --set


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base`` (tables merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise AAEError(f"config file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AAEError(f"config file {path}: cannot be read as UTF-8 text ({e})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise AAEError(f"config file {path}: not valid TOML ({e})") from None


def parse_set(item: str) -> dict[str, Any]:
    """``"optim.disc.lr=1e-4"`` -> ``{"optim": {"disc": {"lr": 1e-4}}}``; values are TOML literals,
    and a bare word is taken as a string (``--set data.dataset=digits``)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise AAEError(f"--set {item!r}: expected key=value, e.g. --set optim.disc.lr=1e-4")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def to_toml(cfg: Config) -> str:
    import tomli_w

    return tomli_w.dumps(cfg.to_dict())


def resolve(
    preset: dict[str, Any] | None = None,
    file: str | Path | None = None,
    sets: list[str] | tuple[str, ...] = (),
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Build and validate a config from its layers (later layers win)."""
    d = Config().to_dict()
    if preset:
        d = merge(d, preset)
    if file:
        d = merge(d, load_toml(file))
    for item in sets:
        d = merge(d, parse_set(item))
    if overrides:
        d = merge(d, overrides)
    return Config.from_dict(d).validate()


# ---------------------------------------------------------------------------------------------
# the reference of every option (aae config), generated from the dataclasses above


def _field_docs(cls: type) -> dict[str, str]:
    """Each field's comment in this file's source: the comment lines just above it and the one
    after it on its line (continued on the next lines as comments indented after their #)."""
    import inspect
    import re

    docs: dict[str, str] = {}
    pending: list[str] = []
    last = None
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if last is not None and stripped.startswith("#  "):  # a trailing comment, continued
                docs[last] = f"{docs[last]} {text}".strip()
            else:
                pending.append(text)
            continue
        m = re.match(r"(\w+):[^=]*=.*?(?:#\s*(.*))?$", stripped)
        if m and not stripped.startswith(("def ", "@")):
            last = m.group(1)
            docs[last] = " ".join([*pending, m.group(2) or ""]).strip()
        else:
            last = None
        pending = []
    return docs


def reference(cfg: Config | None = None) -> list[tuple[str, str, Any, str]]:
    """(key, type, value, meaning) of every option ``--set`` accepts, with ``cfg``'s values (the
    defaults without one)."""
    cfg = cfg or Config()
    rows = []
    for section in dataclasses.fields(Config):
        value = getattr(cfg, section.name)
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for phase, obj in items:
            docs = _field_docs(type(obj))
            hints = typing.get_type_hints(type(obj))
            for f in dataclasses.fields(obj):
                key = ".".join(p for p in (section.name, phase, f.name) if p)
                rows.append((key, _type_name(hints[f.name]).replace("typing.", ""),
                             getattr(obj, f.name), docs.get(f.name, "")))
    return rows
