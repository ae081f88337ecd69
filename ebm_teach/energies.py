"""Energy functions E(x): the Gaussian EBM with an exact partition function, and neural energy networks.

An energy maps a batch x: (batch, d) to energies (batch,); the model is p(x) = exp(-E(x)) / Z.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .core import check_int, check_tensor

__all__ = ["quadratic_energy", "GaussianEBM", "product_of_experts", "MLPEnergy", "ConvEnergy", "SILU_LIPSCHITZ"]

#: The SiLU's largest slope, max_t d/dt [t sigmoid(t)] = 1.0998... (at t = 2.3994): its Lipschitz constant.
SILU_LIPSCHITZ = 1.0998393201


# --------------------------------------------------------------------------------------------- Gaussian EBM
def quadratic_energy(x: torch.Tensor, mu: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """E(x) = 1/2 (x - mu)^T Lambda (x - mu) for x: (batch, d), mu: (d,), precision Lambda: (d, d) -> (batch,).

    A pure function of (mu, Lambda), so autograd can differentiate with respect to Lambda itself
    (chapter 1 checks dE/dLambda = 1/2 (x - mu)(x - mu)^T this way).
    """
    diff = x - mu
    return 0.5 * torch.einsum("bi,ij,bj->b", diff, precision, diff)


def _check_precision(precision: torch.Tensor, d: int) -> torch.Tensor:
    precision = check_tensor(precision, "precision", shape=(d, d))
    if not torch.allclose(precision, precision.T, atol=1e-6 * (1 + float(precision.abs().max()))):
        raise ValueError("precision must be symmetric; symmetrise it with (P + P.T) / 2.")
    eig = torch.linalg.eigvalsh(precision.double())
    if float(eig.min()) <= 0:
        raise ValueError(
            f"precision must be positive definite (its smallest eigenvalue is {float(eig.min()):.3g}); "
            "a non-positive-definite quadratic energy has no finite partition function."
        )
    return precision


class GaussianEBM(nn.Module):
    """The Gaussian EBM E(x) = 1/2 (x - mu)^T Lambda (x - mu) with learnable mu and precision Lambda.

    Lambda = L L^T with L lower triangular and a positive diagonal (stored as its log), so Lambda stays
    positive definite under any gradient step. Everything is exact:
        log Z = d/2 log(2 pi) - 1/2 log det Lambda = d/2 log(2 pi) - sum_i log L_ii,
        log p(x) = -E(x) - log Z,   score(x) = -grad_x E(x) = -Lambda (x - mu),
        samples: x = mu + L^{-T} z, z ~ N(0, I)  (covariance L^{-T} L^{-1} = Lambda^{-1}).
    mu: (d,), precision: (d, d) symmetric positive definite. The log Z is the Gaussian integral (complete the
    square); chapter 1 derives it.
    """

    def __init__(self, mu, precision):
        super().__init__()
        mu = check_tensor(mu, "mu", ndim=1)
        d = mu.shape[0]
        precision = _check_precision(check_tensor(precision, "precision", like=mu), d)
        chol = torch.linalg.cholesky(precision)
        self.mu = nn.Parameter(mu.clone())
        self.L_lower = nn.Parameter(torch.tril(chol, diagonal=-1).clone())
        self.log_diag = nn.Parameter(torch.diagonal(chol).log().clone())

    @classmethod
    def standard(cls, d: int, dtype=torch.float64, device=None) -> "GaussianEBM":
        """N(0, I) in d dimensions."""
        d = check_int(d, "d", minimum=1)
        return cls(torch.zeros(d, dtype=dtype, device=device), torch.eye(d, dtype=dtype, device=device))

    @classmethod
    def from_moments(cls, mean, cov) -> "GaussianEBM":
        """The Gaussian EBM with mean ``mean`` (d,) and covariance ``cov`` (d, d): mu = mean, Lambda = cov^{-1}."""
        mean = check_tensor(mean, "mean", ndim=1)
        cov = _check_precision(check_tensor(cov, "cov", like=mean), mean.shape[0])
        return cls(mean, torch.linalg.inv(cov))

    @property
    def dim(self) -> int:
        return self.mu.shape[0]

    @property
    def L(self) -> torch.Tensor:
        return torch.tril(self.L_lower, diagonal=-1) + torch.diag(self.log_diag.exp())

    @property
    def precision(self) -> torch.Tensor:
        """Lambda = L L^T, (d, d)."""
        L = self.L
        return L @ L.T

    @property
    def covariance(self) -> torch.Tensor:
        """Sigma = Lambda^{-1}, (d, d)."""
        return torch.cholesky_inverse(self.L)

    def _check_x(self, x):
        return check_tensor(x, "x", shape=(None, self.dim), like=self.mu)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x), x: (batch, d) -> (batch,)."""
        return quadratic_energy(self._check_x(x), self.mu, self.precision)

    forward = energy

    def log_partition(self) -> torch.Tensor:
        """log Z = d/2 log(2 pi) - 1/2 log det Lambda (a scalar tensor, differentiable)."""
        return 0.5 * self.dim * math.log(2 * math.pi) - self.log_diag.sum()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = -E(x) - log Z, x: (batch, d) -> (batch,)."""
        return -self.energy(x) - self.log_partition()

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """grad_x log p(x) = -Lambda (x - mu), x: (batch, d) -> (batch, d). Z does not appear."""
        x = self._check_x(x)
        return -(x - self.mu) @ self.precision

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact samples (n, d): x = mu + L^{-T} z. The generator must be on the model's device."""
        n = check_int(n, "n", minimum=1)
        z = torch.randn(n, self.dim, generator=generator, device=self.mu.device, dtype=self.mu.dtype)
        # Solve L^T y = z for each sample: y = L^{-T} z.
        y = torch.linalg.solve_triangular(self.L.T, z.T, upper=True).T
        return self.mu + y


def product_of_experts(*experts: GaussianEBM) -> GaussianEBM:
    """The normalised product of Gaussian experts, whose energy is sum_k E_k(x) up to a constant.

    Lambda = sum_k Lambda_k,  mu = Lambda^{-1} sum_k Lambda_k mu_k  (complete the square in the sum).
    """
    if not experts:
        raise ValueError("pass at least one GaussianEBM.")
    if any(not isinstance(e, GaussianEBM) for e in experts):
        raise TypeError("product_of_experts takes GaussianEBM experts only.")
    if len({e.dim for e in experts}) != 1:
        raise ValueError(f"experts must share a dimension; got {[e.dim for e in experts]}.")
    with torch.no_grad():
        precision = sum(e.precision for e in experts)
        eta = sum(e.precision @ e.mu for e in experts)
        mu = torch.linalg.solve(precision, eta)
    return GaussianEBM(mu, 0.5 * (precision + precision.T))


# --------------------------------------------------------------------------------------------- neural energies
class MLPEnergy(nn.Module):
    """E(x) = MLP(x): a scalar energy from a small fully connected network, x: (batch, d) -> (batch,).

    Smooth activations (SiLU) so that Langevin dynamics and score matching can differentiate it twice.
    ``spectral_norm=True`` wraps every linear layer in spectral normalisation (Miyato et al. 2018), which
    divides its weight by an estimate sigma_hat of the weight's largest singular value sigma, so that each
    layer is about 1-Lipschitz and the network's Lipschitz constant about SILU_LIPSCHITZ^n_layers; Du &
    Mordatch (2019) use it to keep EBM training stable. The estimate comes from one power-iteration step per
    forward pass in training mode, and sigma_hat = u^T W v <= sigma, so each normalised layer's norm is at
    least 1 (exactly 1 only once the power iteration has converged on the current weights): the bound is
    not exactly SILU_LIPSCHITZ^n_layers but somewhat above it. :meth:`lipschitz_bound` computes it exactly.
    """

    def __init__(self, dim: int = 2, hidden: int = 64, n_layers: int = 3, spectral_norm: bool = False):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        hidden = check_int(hidden, "hidden", minimum=1)
        n_layers = check_int(n_layers, "n_layers", minimum=1)
        sizes = [self.dim] + [hidden] * n_layers
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [self._linear(fan_in, fan_out, spectral_norm), nn.SiLU()]
        layers.append(self._linear(sizes[-1], 1, spectral_norm))
        self.net = nn.Sequential(*layers)

    @staticmethod
    def _linear(fan_in, fan_out, spectral_norm):
        layer = nn.Linear(fan_in, fan_out)
        return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (batch, {self.dim}); got {tuple(x.shape)}.")
        return self.net(x).squeeze(-1)

    energy = forward

    def lipschitz_bound(self) -> float:
        """An upper bound L on the energy's Lipschitz constant: |E(x) - E(y)| <= L |x - y| for all x, y.

        L = prod_l ||W_l||_2 * SILU_LIPSCHITZ^n_layers: the product of every linear layer's largest singular
        value (computed exactly by SVD from the weights in use; under spectral normalisation each is >= 1,
        near 1 but above it while the power iteration lags behind the weights) and the SiLU's largest slope
        once per hidden layer. It also bounds |grad_x E|, hence how far one Langevin step's drift can move a
        sample.
        """
        with torch.no_grad():
            weights = [m.weight for m in self.net if isinstance(m, nn.Linear)]
            norms = torch.stack([torch.linalg.matrix_norm(w.double(), ord=2) for w in weights])
        return float(norms.prod()) * SILU_LIPSCHITZ ** (len(weights) - 1)


class ConvEnergy(nn.Module):
    """E(x) = CNN(x): a small convolutional energy for 8x8 images (sklearn digits), x -> (batch,).

    x: (batch, h*w) rows of pixels (as ``load_digits`` gives them) or (batch, 1, h, w); default h = w = 8.
    Three 3x3 convolutions (channels c, 2c, 4c; the last two with stride 2: 8x8 -> 4x4 -> 2x2) with SiLU,
    then a linear layer to one number. SiLU keeps E smooth for Langevin dynamics; ``spectral_norm=True``
    wraps every layer in spectral normalisation (Miyato et al. 2018; Du & Mordatch 2019).
    """

    def __init__(self, channels: int = 16, image_shape=(8, 8), spectral_norm: bool = False):
        super().__init__()
        c = check_int(channels, "channels", minimum=1)
        h, w = (check_int(s, "image_shape entry", minimum=1) for s in image_shape)
        self.image_shape = (h, w)
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda layer: layer)
        out_h, out_w = (h + 1) // 2, (w + 1) // 2
        out_h, out_w = (out_h + 1) // 2, (out_w + 1) // 2
        self.net = nn.Sequential(
            sn(nn.Conv2d(1, c, 3, padding=1)),
            nn.SiLU(),
            sn(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)),
            nn.SiLU(),
            sn(nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1)),
            nn.SiLU(),
            nn.Flatten(),
            sn(nn.Linear(4 * c * out_h * out_w, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.image_shape
        if x.dim() == 2 and x.shape[1] == h * w:
            x = x.reshape(-1, 1, h, w)
        elif not (x.dim() == 4 and tuple(x.shape[1:]) == (1, h, w)):
            raise ValueError(
                f"x must have shape (batch, {h * w}) or (batch, 1, {h}, {w}); got {tuple(x.shape)}."
            )
        return self.net(x).squeeze(-1)

    energy = forward
