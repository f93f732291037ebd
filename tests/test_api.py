"""The Python object API: aae.AAE fits in-memory arrays, samples, encodes, decodes, reconstructs,
predicts, saves and loads; bad input is one AAEError and writes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aae import AAE, AAEError

from conftest import make_images

SMALL = {"model": {"encoder_hidden": [32], "decoder_hidden": [32], "disc_hidden": [16],
                   "code_dim": 2},
         "train": {"epochs": 3, "batch_size": 16, "tsne_points": 0, "device": "cpu"}}


@pytest.fixture(scope="module")
def fitted():
    x, y = make_images(240)
    return AAE(**SMALL).fit((x * 255).astype(np.uint8)[:, 0], labels=y), x


def test_fit_on_uint8_arrays_then_sample_encode_decode_reconstruct(fitted):
    model, x = fitted
    s = model.sample(12, seed=3)
    assert s.shape == (12, 1, 8, 8) and s.dtype == np.float32 and 0 <= s.min() and s.max() <= 1
    assert np.array_equal(s, model.sample(12, seed=3))  # a seed fixes the draws
    z = model.encode(x[:20])
    assert isinstance(z, np.ndarray) and z.shape == (20, 2)
    zt = model.encode(torch.from_numpy(x[:20]))
    assert isinstance(zt, torch.Tensor) and np.allclose(zt.numpy(), z)
    assert model.decode(z).shape == (20, 1, 8, 8)
    rec = model.reconstruct(x[:50])
    # trained: reconstructions are closer to their own images than to others'
    own = ((rec - x[:50]) ** 2).mean()
    other = ((rec - x[50:100]) ** 2).mean()
    assert own < other
    nhwc = np.transpose(x[:5], (0, 2, 3, 1))  # N x H x W x C is read as well
    assert np.allclose(model.encode(nhwc), z[:5], atol=1e-6)


def test_save_and_load_round_trip(fitted, tmp_path):
    model, x = fitted
    model.save(tmp_path / "saved")
    again = AAE.load(tmp_path / "saved")
    for k, v in model.module.state_dict().items():
        assert torch.equal(v, again.module.state_dict()[k]), k
    assert np.array_equal(model.encode(x[:10]), again.encode(x[:10]))
    with pytest.raises(AAEError, match="new or empty folder"):
        model.save(tmp_path / "saved")
    from aae.training import Trainer

    with pytest.raises(AAEError, match="weights only"):
        Trainer(again.config, tmp_path / "saved", resume=True, quiet=True)


def test_wrong_inputs_to_a_trained_model(fitted):
    model, _ = fitted
    with pytest.raises(AAEError, match=r"decode\(z\): expected codes shaped \(N, 2\)"):
        model.decode(np.zeros((3, 5)))
    with pytest.raises(AAEError, match="images are 1x9x9"):
        model.encode(np.zeros((2, 9, 9), np.float32))
    with pytest.raises(AAEError, match="no class head"):
        model.predict(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(AAEError, match="not trained"):
        AAE().sample(3)


@pytest.mark.parametrize("data,labels,needle", [
    (np.zeros((10, 8), np.float32), None, "expected images shaped"),  # wrong rank
    (np.full((10, 8, 8), np.nan, np.float32), None, "NaN"),
    (np.zeros((10, 8, 8), np.float32), np.zeros(7, np.int64), "7 labels for 10 images"),
    (np.zeros((0, 8, 8), np.float32), None, "expected images shaped"),  # empty
    (np.full((10, 8, 8), "a"), None, "numeric pixel values"),  # not an image dtype
])
def test_bad_fit_input_is_one_error_and_nothing_on_disk(tmp_path, data, labels, needle):
    out = tmp_path / "run"
    with pytest.raises(AAEError, match=needle) as e:
        AAE(**SMALL).fit(data, labels=labels, out=out)
    assert "\n" not in str(e.value) and not out.exists()


def test_a_torch_dataset_and_a_class_head(tmp_path):
    x, y = make_images(240)
    ds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    over = {**SMALL, "model": {**SMALL["model"], "class_input": "y", "classes": 3}}
    model = AAE(**over).fit(ds, out=tmp_path / "run")
    assert (tmp_path / "run" / "report.html").is_file()  # a run folder like aae train's
    pred = model.predict(x[:30])
    assert pred.shape == (30,) and set(pred.tolist()) <= {0, 1, 2}
    assert np.mean(pred == y[:30]) > 0.5
