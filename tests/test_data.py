import math

import numpy as np
import pytest
import torch

from ebm_teach import data, make_generator
from ebm_teach.evaluate import log_partition_grid


@pytest.mark.parametrize("name", data.TOY_DATASETS)
def test_toy_data_shapes_and_determinism(name, device):
    x1, y1 = data.toy_data_labelled(name, 500, seed=3, device=device)
    x2 = data.toy_data(name, 500, seed=3, device=device)
    x3 = data.toy_data(name, 500, seed=4, device=device)
    assert x1.shape == (500, 2) and x1.dtype == torch.float32 and x1.device.type == device.type
    assert y1.shape == (500,) and y1.dtype == torch.long
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    assert bool(torch.isfinite(x1).all())


def test_toy_data_same_on_every_device():
    if not torch.cuda.is_available():
        pytest.skip("needs a second device")
    assert torch.equal(data.toy_data("moons", 100, seed=1), data.toy_data("moons", 100, seed=1, device="cuda").cpu())


def test_unknown_toy_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown toy data set 'spiral'; choose one of ring8, moons"):
        data.toy_data("spiral", 10)


def test_ring8_moments_match_the_mixture():
    # ring of 8 modes at radius 4, std 0.5: E|x|^2 = 16 + 2 * 0.25, mean 0.
    x = data.toy_data("ring8", 40000, seed=0, dtype=torch.float64)
    se = x.std(0) / math.sqrt(len(x))
    assert bool((x.mean(0).abs() < 4 * se).all())
    sq = (x**2).sum(1)
    assert abs(float(sq.mean()) - 16.5) < 4 * float(sq.std()) / math.sqrt(len(x))


def test_mixture_labels_follow_the_weights():
    _, y = data.toy_data_labelled("mixture", 30000, seed=1)
    freq = torch.bincount(y, minlength=3).double() / len(y)
    se = torch.sqrt(torch.tensor([0.5, 0.3, 0.2]) * torch.tensor([0.5, 0.7, 0.8]) / len(y)).double()
    assert bool(((freq - torch.tensor([0.5, 0.3, 0.2]).double()).abs() < 4 * se).all())


@pytest.mark.parametrize("name", ["ring8", "mixture"])
def test_toy_distribution_is_the_law_toy_data_samples(name):
    law = data.toy_distribution(name)
    assert law.means.dtype == torch.float64
    # the same generator gives the same draws: toy_data samples from exactly this law
    x, y = data.toy_data_labelled(name, 1000, seed=5, dtype=torch.float64)
    x_law, y_law = law.sample(1000, generator=make_generator(5), return_labels=True)
    assert torch.equal(x, x_law) and torch.equal(y, y_law)
    # and its moments, from the law's parameters, match 40 000 draws within 4 standard errors
    big = data.toy_data(name, 40000, seed=6, dtype=torch.float64)
    mean = law.weights @ law.means
    second = (law.weights * ((law.means**2).sum(1) + torch.diagonal(law.covs, dim1=1, dim2=2).sum(1))).sum()
    se = big.std(0) / math.sqrt(len(big))
    assert bool(((big.mean(0) - mean).abs() < 4 * se).all())
    sq = (big**2).sum(1)
    assert abs(float(sq.mean() - second)) < 4 * float(sq.std()) / math.sqrt(len(big))
    with pytest.raises(ValueError, match="knows the exact law of ring8, mixture only; got 'moons'"):
        data.toy_distribution("moons")


def test_gaussian_mixture_log_prob_is_normalised_and_score_is_its_gradient():
    gm = data.GaussianMixture(
        torch.tensor([[0.0, 0.0], [2.0, 1.0]], dtype=torch.float64),
        torch.tensor([[[1.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 0.8]]], dtype=torch.float64),
        torch.tensor([0.7, 0.3], dtype=torch.float64),
    )
    assert abs(log_partition_grid(lambda x: -gm.log_prob(x), [(-7, 9), (-7, 8)], 600)) < 1e-6
    x = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    (g,) = torch.autograd.grad(gm.log_prob(x).sum(), x)
    assert torch.allclose(gm.score(x.detach()), g, atol=1e-10)


def test_gaussian_mixture_convolve_adds_sigma_squared():
    gm = data.GaussianMixture.isotropic(torch.tensor([[1.0, 1.0]], dtype=torch.float64), 0.5)
    wide = gm.convolve(2.0)
    assert torch.allclose(wide.covs[0], (0.25 + 4.0) * torch.eye(2, dtype=torch.float64))


def test_gaussian_mixture_rejects_bad_weights():
    with pytest.raises(ValueError, match="sum to 1"):
        data.GaussianMixture.isotropic(torch.zeros(2, 2), 1.0, [0.5, 0.6])


def test_digits_shape_range_and_binarize():
    x, y = data.load_digits(return_labels=True)
    assert x.shape == (1797, 64) and y.shape == (1797,)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    xb = data.load_digits(binarize=True)
    assert set(xb.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(xb, (x > 0.5).float())
    assert set(y.tolist()) == set(range(10))


def test_train_test_split_is_a_partition():
    x = torch.arange(100.0)[:, None]
    y = torch.arange(100)
    x_tr, x_te, y_tr, y_te = data.train_test_split(x, y, test_fraction=0.25, seed=0)
    assert len(x_te) == 25 and len(x_tr) == 75
    assert sorted(torch.cat([y_tr, y_te]).tolist()) == list(range(100))
    assert torch.equal(x_tr[:, 0].long(), y_tr)


def test_mnist_loader_round_trips_a_small_file(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {k: rng.integers(0, 2, size=(n, 784), dtype=np.uint8) for k, n in [("train", 5), ("valid", 3), ("test", 2)]}
    path = tmp_path / "bm.npz"
    np.savez(path, **{k: np.packbits(v, axis=1) for k, v in pixels.items()})
    for split, v in pixels.items():
        x = data.load_binarized_mnist(split, path=path)
        assert x.shape == (len(v), 784) and torch.equal(x, torch.as_tensor(v, dtype=torch.float32))
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    lpath = tmp_path / "lab.npz"
    np.savez(lpath, train_data=np.packbits(pixels["train"], axis=1), train_lbl=labels)
    x, y = data.load_mnist_labelled(lpath, "train")
    assert torch.equal(y, torch.as_tensor(labels, dtype=torch.long)) and x.shape == (5, 784)
    with pytest.raises(ValueError, match="split 'dev' is not in"):
        data.load_binarized_mnist("dev", path=path)
    with pytest.raises(FileNotFoundError, match="no file at .*missing.npz"):
        data.load_binarized_mnist("train", path=tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="pass a file as path="):
        data.load_binarized_mnist(path)


def test_mnist_loader_names_a_corrupt_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(ValueError, match=r"bad.npz is not a readable .npz file"):
        data.load_binarized_mnist("train", path=bad)
    with pytest.raises(ValueError, match=r"bad.npz is not a readable .npz file"):
        data.load_mnist_rbm(path=bad)
    with pytest.raises(ValueError, match="labelled MNIST is not shipped"):
        data.load_mnist_labelled(None)


def test_shipped_mnist_has_the_standard_split_and_binary_pixels():
    """The static binarization: 50,000 / 10,000 / 10,000 images of 784 binary pixels, about 13 % of them on."""
    sizes = {split: data.load_binarized_mnist(split, dtype=torch.uint8) for split in ("train", "valid", "test")}
    assert {k: tuple(v.shape) for k, v in sizes.items()} == {"train": (50000, 784), "valid": (10000, 784),
                                                             "test": (10000, 784)}
    x = sizes["test"]
    assert set(torch.unique(x).tolist()) == {0, 1}
    assert 0.12 < float(x.float().mean()) < 0.14
    assert not torch.equal(sizes["train"][:10000], sizes["valid"]), "train and valid are different images"


def test_shipped_mnist_rbm_has_the_documented_shapes():
    d = data.load_mnist_rbm()
    assert d["W"].shape == (784, 15) and d["b"].shape == (784,) and d["c"].shape == (15,)
    assert d["W"].dtype == np.float64


def test_a_corrupted_shipped_file_is_detected(tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "datasets"
    shutil.copytree(data.DATASETS, copy)
    raw = bytearray((copy / "rbm_mnist_15hidden.npz").read_bytes())
    raw[-100] ^= 0xFF
    (copy / "rbm_mnist_15hidden.npz").write_bytes(bytes(raw))
    monkeypatch.setattr(data, "DATASETS", copy)
    with pytest.raises(ValueError, match="rbm_mnist_15hidden.npz is corrupt"):
        data.load_mnist_rbm()
    (copy / "binarized_mnist.npz").unlink()
    with pytest.raises(FileNotFoundError, match="binarized_mnist.npz is missing"):
        data.load_binarized_mnist()
