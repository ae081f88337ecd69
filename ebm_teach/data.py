"""Data: synthetic 2-D sets made from a seed, sklearn's bundled 8x8 digits, and binarized MNIST (shipped).

Everything is generated on the CPU from its seed and then moved to ``device``, so the same seed gives the
same data on a laptop and on a GPU. Nothing is downloaded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from .core import check_int, check_positive, check_probability, check_tensor, make_generator

__all__ = [
    "TOY_DATASETS",
    "toy_data",
    "toy_data_labelled",
    "toy_distribution",
    "GaussianMixture",
    "ring_of_gaussians",
    "load_digits",
    "train_test_split",
    "load_binarized_mnist",
    "load_mnist_rbm",
    "load_mnist_labelled",
]


# --------------------------------------------------------------------------------------------- Gaussian mixture
@dataclass
class GaussianMixture:
    """A mixture of K Gaussians with known weights: p(x) = sum_k w_k N(x; m_k, C_k).

    means: (K, d), covs: (K, d, d) positive definite, weights: (K,) summing to 1.
    Gives exact ``log_prob`` and ``score`` (used to check samplers and score models), exact sampling, and
    ``convolve(sigma)``: the law of x + sigma*z, z ~ N(0, I), which is the mixture with C_k + sigma^2 I.
    """

    means: torch.Tensor
    covs: torch.Tensor
    weights: torch.Tensor

    def __post_init__(self):
        self.means = check_tensor(self.means, "means", ndim=2)
        k, d = self.means.shape
        self.covs = check_tensor(self.covs, "covs", shape=(k, d, d), like=self.means)
        self.weights = check_tensor(self.weights, "weights", shape=(k,), like=self.means)
        if bool((self.weights < 0).any()) or abs(float(self.weights.sum()) - 1.0) > 1e-5:
            raise ValueError(f"weights must be non-negative and sum to 1; got {self.weights.tolist()}.")
        try:
            torch.linalg.cholesky(self.covs)
        except RuntimeError as err:
            raise ValueError("every covariance in covs must be symmetric positive definite.") from err

    @classmethod
    def isotropic(cls, means, stds, weights=None) -> "GaussianMixture":
        """Components N(m_k, s_k^2 I). means: (K, d); stds: scalar or (K,); weights default to uniform."""
        means = check_tensor(means, "means", ndim=2)
        k, d = means.shape
        stds = torch.as_tensor(stds, dtype=means.dtype).expand(k)
        if bool((stds <= 0).any()):
            raise ValueError(f"stds must be > 0; got {stds.tolist()}.")
        eye = torch.eye(d, dtype=means.dtype, device=means.device)
        covs = stds[:, None, None] ** 2 * eye
        if weights is None:
            weights = torch.full((k,), 1.0 / k, dtype=means.dtype)
        return cls(means, covs, torch.as_tensor(weights, dtype=means.dtype))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def to(self, device=None, dtype=None) -> "GaussianMixture":
        return GaussianMixture(*(t.to(device=device, dtype=dtype) for t in (self.means, self.covs, self.weights)))

    def _components(self, x: torch.Tensor):
        return torch.distributions.MultivariateNormal(
            self.means.to(x), covariance_matrix=self.covs.to(x)
        )

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) for x: (batch, d) -> (batch,)."""
        x = check_tensor(x, "x", shape=(None, self.dim))
        comp = self._components(x).log_prob(x[:, None, :])  # (batch, K)
        return torch.logsumexp(comp + self.weights.to(x).log(), dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The score grad_x log p(x) for x: (batch, d) -> (batch, d), computed in closed form.

        grad log p = sum_k r_k(x) * C_k^{-1} (m_k - x), with responsibilities r_k(x) = p(k | x).
        """
        x = check_tensor(x, "x", shape=(None, self.dim))
        comp = self._components(x).log_prob(x[:, None, :]) + self.weights.to(x).log()
        resp = torch.softmax(comp, dim=1)  # (batch, K)
        prec = torch.linalg.inv(self.covs.to(x))  # (K, d, d)
        diff = self.means.to(x)[None] - x[:, None, :]  # (batch, K, d)
        return torch.einsum("bk,kij,bkj->bi", resp, prec, diff)

    def sample(self, n: int, generator: Optional[torch.Generator] = None, return_labels: bool = False):
        """n exact samples (n, d), drawn on the device of ``generator`` (CPU when None)."""
        n = check_int(n, "n", minimum=1)
        device = generator.device if generator is not None else torch.device("cpu")
        w = self.weights.to(device)
        labels = torch.multinomial(w, n, replacement=True, generator=generator)
        chol = torch.linalg.cholesky(self.covs.to(device))
        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=self.means.dtype)
        x = self.means.to(device)[labels] + torch.einsum("nij,nj->ni", chol[labels], z)
        return (x, labels) if return_labels else x

    def convolve(self, sigma: float) -> "GaussianMixture":
        """The mixture of x + sigma * z (z ~ N(0, I)): every covariance gains sigma^2 I."""
        sigma = check_positive(sigma, "sigma")
        eye = torch.eye(self.dim, dtype=self.covs.dtype, device=self.covs.device)
        return GaussianMixture(self.means, self.covs + sigma**2 * eye, self.weights)


def ring_of_gaussians(n_modes: int = 8, radius: float = 4.0, std: float = 0.5) -> GaussianMixture:
    """n_modes equal-weight isotropic Gaussians evenly spaced on a circle of ``radius``."""
    n_modes = check_int(n_modes, "n_modes", minimum=1)
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return GaussianMixture.isotropic(means, std)


# --------------------------------------------------------------------------------------------- toy 2-D sets
def _ring8(n, g):
    x, y = ring_of_gaussians(8, 4.0, 0.5).sample(n, generator=g, return_labels=True)
    return x, y


def _mixture_law() -> GaussianMixture:
    return GaussianMixture.isotropic(
        torch.tensor([[-2.0, -2.0], [2.0, 2.0], [2.0, -2.0]], dtype=torch.float64), 0.6, [0.5, 0.3, 0.2]
    )


def _mixture(n, g):
    return _mixture_law().sample(n, generator=g, return_labels=True)


def _moons(n, g, noise=0.1):
    y = torch.randint(0, 2, (n,), generator=g)
    t = torch.rand(n, generator=g, dtype=torch.float64) * math.pi
    upper = torch.stack([t.cos(), t.sin()], 1)
    lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], 1)
    x = torch.where(y[:, None] == 0, upper, lower)
    x = x + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return (x - torch.tensor([0.5, 0.25], dtype=torch.float64)) * 2.0, y


def _rings(n, g, noise=0.08):
    y = torch.randint(0, 2, (n,), generator=g)
    radius = torch.where(y == 0, 1.0, 2.5).to(torch.float64)
    t = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    x = radius[:, None] * torch.stack([t.cos(), t.sin()], 1)
    return x + noise * torch.randn(n, 2, generator=g, dtype=torch.float64), y


def _checkerboard(n, g):
    # 4x4 board on [-4, 4]^2; points lie uniformly in the 8 dark squares.
    cell = torch.randint(0, 8, (n,), generator=g)
    row = cell // 2
    col = 2 * (cell % 2) + (row % 2)
    u = torch.rand(n, 2, generator=g, dtype=torch.float64)
    x = torch.stack([col + u[:, 0], row + u[:, 1]], 1) * 2.0 - 4.0
    return x, cell


def _swiss_roll(n, g, noise=0.25):
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g, dtype=torch.float64))
    x = torch.stack([t * t.cos(), t * t.sin()], 1) / 3.0
    y = (t > 3 * math.pi).long()
    return x + noise * torch.randn(n, 2, generator=g, dtype=torch.float64), y


_TOY = {
    "ring8": _ring8,
    "moons": _moons,
    "rings": _rings,
    "checkerboard": _checkerboard,
    "swiss_roll": _swiss_roll,
    "mixture": _mixture,
}
TOY_DATASETS = tuple(_TOY)


def toy_data_labelled(
    name: str, n: int, seed: int = 0, device=None, dtype: torch.dtype = torch.float32
) -> Tuple[torch.Tensor, torch.Tensor]:
    """A labelled 2-D toy set: x (n, 2) and integer labels y (n,) (mode, moon, ring or square index).

    name: one of ``TOY_DATASETS`` = ring8 (8 Gaussians on a circle of radius 4, std 0.5), moons, rings
    (two concentric circles), checkerboard, swiss_roll, mixture (weights 0.5/0.3/0.2 at (-2,-2), (2,2),
    (2,-2), std 0.6). Generated on the CPU from ``seed``, then moved to ``device``.
    """
    if name not in _TOY:
        raise ValueError(f"unknown toy data set {name!r}; choose one of {', '.join(TOY_DATASETS)}.")
    n = check_int(n, "n", minimum=1)
    g = make_generator(seed)
    x, y = _TOY[name](n, g)
    return x.to(device=device, dtype=dtype), y.to(device=device)


def toy_data(name: str, n: int, seed: int = 0, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A 2-D toy set, (n, 2); see :func:`toy_data_labelled` for the names."""
    return toy_data_labelled(name, n, seed=seed, device=device, dtype=dtype)[0]


_LAWS = {"ring8": lambda: ring_of_gaussians(8, 4.0, 0.5), "mixture": _mixture_law}


def toy_distribution(name: str) -> GaussianMixture:
    """The exact law that :func:`toy_data` samples the set ``name`` from, as a float64 :class:`GaussianMixture`.

    Defined for the Gaussian mixtures among the toy sets, "ring8" and "mixture"; it gives their exact
    log-density (so exact test log-likelihoods and energies E = -log p) without restating their constants.
    The other sets (moons, rings, checkerboard, swiss_roll) have no closed-form density here.
    """
    if name not in _LAWS:
        closed = ", ".join(_LAWS)
        raise ValueError(
            f"toy_distribution knows the exact law of {closed} only; got {name!r}. "
            + ("It has no closed-form density here." if name in _TOY else f"Toy sets: {', '.join(TOY_DATASETS)}.")
        )
    return _LAWS[name]()


# --------------------------------------------------------------------------------------------- digits
def load_digits(
    binarize: bool = False,
    threshold: float = 0.5,
    return_labels: bool = False,
    device=None,
    dtype: torch.dtype = torch.float32,
):
    """sklearn's bundled 8x8 digits (1797 images) as (1797, 64) in [0, 1], or {0, 1} with ``binarize``.

    Pixels are the original 0..16 counts divided by 16; ``binarize`` keeps pixels > threshold.
    Reshape to (n, 8, 8) for display. With ``return_labels`` also returns the digit labels (1797,).
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    threshold = check_probability(threshold, "threshold")
    bunch = _sk_load_digits()
    x = torch.as_tensor(bunch.data / 16.0, dtype=torch.float64)
    if binarize:
        x = (x > threshold).to(torch.float64)
    x = x.to(device=device, dtype=dtype)
    if return_labels:
        return x, torch.as_tensor(bunch.target, dtype=torch.long, device=device)
    return x


def train_test_split(*arrays: torch.Tensor, test_fraction: float = 0.2, seed: int = 0):
    """Split tensors with the same first dimension into train and test parts by one seeded permutation.

    Returns (a_train, a_test, b_train, b_test, ...) like scikit-learn's function of the same name.
    """
    if not arrays:
        raise ValueError("pass at least one tensor to split.")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"all tensors must have the same length; got {[len(a) for a in arrays]}.")
    test_fraction = check_probability(test_fraction, "test_fraction", allow_zero=False, allow_one=False)
    perm = torch.randperm(n, generator=make_generator(seed))
    n_test = max(1, int(round(test_fraction * n)))
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    out = []
    for a in arrays:
        out += [a[train_idx.to(a.device)], a[test_idx.to(a.device)]]
    return tuple(out)


# --------------------------------------------------------------------------------------------- MNIST
#: The data that ships inside the package (see ebm_teach/datasets/README.md for provenance and licence).
DATASETS = Path(__file__).resolve().parent / "datasets"
_SHA256 = {
    "binarized_mnist.npz": "50de2c8299a5a297789293ab2c30f6fc3cb8c359a15e5e88d5501aa18ebb8fa5",
    "rbm_mnist_15hidden.npz": "71daad659a79e50244594340e528d9c734a708fcbd131a8b1d20625edcb09b1b",
}


def _unpack(packed: np.ndarray, key: str, path: Path) -> np.ndarray:
    if packed.ndim != 2 or packed.dtype != np.uint8 or packed.shape[1] != 98:
        raise ValueError(
            f"{path}:{key} should hold rows of np.packbits of 784 pixels (uint8, 98 bytes each); "
            f"got dtype {packed.dtype} and shape {packed.shape}."
        )
    return np.unpackbits(packed, axis=1, count=784)


def _open_npz(path, shipped: str) -> Tuple[Path, "np.lib.npyio.NpzFile"]:
    """Open ``path`` (or the shipped file named ``shipped`` when path is None), naming the file on any failure."""
    if path is None:
        path = DATASETS / shipped
        if not path.is_file():
            raise FileNotFoundError(
                f"the shipped data file {path} is missing: reinstall ebm_teach (pip install -e .) from a complete "
                "clone, or pass path= to a copy of the file."
            )
        import hashlib

        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != _SHA256[shipped]:
            raise ValueError(
                f"the shipped data file {path} is corrupt (SHA-256 {digest[:12]}…, expected "
                f"{_SHA256[shipped][:12]}…): restore it with git checkout -- {path.name}, or reinstall."
            )
    path = Path(path)
    if not path.is_file():
        hint = f"; leave path=None to use the copy of {shipped} shipped with ebm_teach" if shipped else ""
        raise FileNotFoundError(f"no file at {path}{hint}.")
    try:
        return path, np.load(path)
    except Exception as err:  # BadZipFile, EOFError, pickle refusal, ...: all mean "not a usable .npz"
        raise ValueError(f"{path} is not a readable .npz file ({type(err).__name__}: {err}).") from err


def _split_arg(split) -> str:
    if isinstance(split, Path) or (isinstance(split, str) and split.endswith(".npz")):
        raise TypeError(f"the first argument is the split ('train', 'valid' or 'test'); pass a file as path={split!r}.")
    return split


def load_binarized_mnist(split: str = "train", path=None, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Binarized MNIST, (n, 784) in {0, 1}: 50,000 train / 10,000 valid / 10,000 test images.

    The fixed binarization used in the likelihood literature (Salakhutdinov & Murray 2008), shipped with the
    package (provenance and licence: ``ebm_teach/datasets/README.md``). ``path``: another ``.npz`` of packed
    rows with keys train/valid/test. Decoded on the CPU, then moved to ``device`` as ``dtype``.
    """
    split = _split_arg(split)
    path, npz = _open_npz(path, "binarized_mnist.npz")
    if split not in npz.files:
        raise ValueError(f"split {split!r} is not in {path}; it has {sorted(npz.files)}.")
    x = _unpack(npz[split], split, path)
    return torch.as_tensor(x).to(device=device, dtype=dtype)


def load_mnist_rbm(path=None) -> dict:
    """The trained 784 x 15 MNIST RBM shipped with the package: ``{"W": (784, 15), "b": (784,), "c": (15,)}``.

    NumPy float64 arrays (pylearn2's test RBM ``mnistvh``, BSD-3-Clause); build the model with
    ``BernoulliRBM.from_arrays(d["W"], d["b"], d["c"])``. Its exact log Z is 215.1384 (2^15 hidden states).
    """
    path, npz = _open_npz(path, "rbm_mnist_15hidden.npz")
    missing = {"W", "b_visible", "c_hidden"} - set(npz.files)
    if missing:
        raise ValueError(f"{path} lacks {sorted(missing)}; it has {sorted(npz.files)}.")
    out = {"W": npz["W"], "b": npz["b_visible"], "c": npz["c_hidden"]}
    n_v, n_h = out["W"].shape
    if out["b"].shape != (n_v,) or out["c"].shape != (n_h,):
        raise ValueError(f"{path}: W is {out['W'].shape} but b is {out['b'].shape} and c is {out['c'].shape}.")
    return out


def load_mnist_labelled(path, split: str = "train", device=None, dtype: torch.dtype = torch.float32):
    """Labelled binarized MNIST from an ``.npz`` with ``{split}_data`` (packed) and ``{split}_lbl``.

    Not shipped (no chapter needs labelled MNIST): pass the path to a copy. Returns x (n, 784) in {0, 1} and
    labels y (n,) as int64.
    """
    if path is None:
        raise ValueError("labelled MNIST is not shipped with ebm_teach; pass the path to an .npz with "
                         "{split}_data and {split}_lbl.")
    path, npz = _open_npz(path, "")
    dkey, lkey = f"{split}_data", f"{split}_lbl"
    if dkey not in npz.files or lkey not in npz.files:
        raise ValueError(f"{path} has no {dkey!r}/{lkey!r}; it has {sorted(npz.files)}.")
    x = torch.as_tensor(_unpack(npz[dkey], dkey, path)).to(device=device, dtype=dtype)
    y = torch.as_tensor(npz[lkey].astype(np.int64), device=device)
    if len(y) != len(x):
        raise ValueError(f"{path}: {dkey} has {len(x)} rows but {lkey} has {len(y)} labels.")
    return x, y
