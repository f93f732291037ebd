import pytest

from aae.config import Config, parse_set, resolve, to_toml
from aae.errors import AAEError


def test_defaults_are_the_paper_sizes():
    c = Config()
    assert c.model.encoder_hidden == [1000, 1000] and c.model.code_dim == 8
    assert c.train.batch_size == 100 and c.prior.std == 1.0


def test_layers_and_set():
    c = resolve({"train": {"epochs": 3}}, None, ["optim.disc.lr=2e-4", "data.dataset=digits",
                                                 "model.encoder_hidden=[64, 32]"], {"train": {"seed": 7}})
    assert c.train.epochs == 3 and c.train.seed == 7
    assert c.optim["disc"].lr == 2e-4 and c.optim["recon"].lr == Config().optim["recon"].lr
    assert c.data.dataset == "digits" and c.model.encoder_hidden == [64, 32]


def test_toml_roundtrip(tmp_path):
    c = resolve(None, None, ["optim.gen.name=sgd", "train.sample_epochs=[0, 3]"])
    p = tmp_path / "c.toml"
    p.write_text(to_toml(c))
    assert resolve(None, p) == c


@pytest.mark.parametrize("sets, message", [
    (["train.epochs=-1"], "train.epochs"),
    (["train.batch_size=0"], "train.batch_size"),
    (["optim.disc.lr=-0.1"], "optim.disc.lr"),
    (["train.epochz=3"], "unknown option 'epochz'"),
    (["optim.critic.lr=1"], "unknown phase 'critic'"),
    (["train.epochs=2.5"], "expected an integer"),
    (["model.encoder_hidden=5"], "expected a list"),
    (["train.recon_loss=l1"], "one of mse, bce"),
    (["train.device=tpu"], "train.device"),
    (["prior.std=0"], "prior.std"),
    (["nonsense"], "expected key=value"),
    (["train.lr=nan"], "unknown option"),
    (["model.posterior=flow"], "deterministic, gaussian, universal"),
    (["data.labelled=-2"], "data.labelled"),
])
def test_bad_values_name_the_option(sets, message):
    with pytest.raises(AAEError, match=message) as e:
        resolve(None, None, sets)
    assert "\n" not in str(e.value)


def test_bad_toml_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[train\nepochs = 3")
    with pytest.raises(AAEError, match="not valid TOML"):
        resolve(None, p)
    with pytest.raises(AAEError, match="not found"):
        resolve(None, tmp_path / "missing.toml")


def test_parse_set_bare_word_is_string():
    assert parse_set("data.dataset=fashion-mnist") == {"data": {"dataset": "fashion-mnist"}}


def test_every_preset_resolves():
    from aae.presets import PRESETS

    for name, p in PRESETS.items():
        cfg = resolve(p.overrides)
        assert cfg.train.epochs > 0, name
        assert p.description and p.time_cpu, name
