"""Restricted Boltzmann machines with binary units (chapters 2 and 3), and the Ising model they grow from.

The RBM is the EBM on visible units v in {0,1}^n_v and hidden units h in {0,1}^n_h with

    E(v, h) = -v^T W h - b^T v - c^T h,        p(v, h) = exp(-E(v, h)) / Z.

There are no visible-visible and no hidden-hidden couplings, so both conditionals factorise,

    p(h_j = 1 | v) = sigma(c_j + sum_i v_i W_ij),      p(v_i = 1 | h) = sigma(b_i + sum_j W_ij h_j),

and the hidden units sum out in closed form: p(v) = exp(-F(v)) / Z with the free energy

    F(v) = -b^T v - sum_j softplus(c_j + (v^T W)_j).

:class:`BernoulliRBM` holds (W, b, c) and gives the conditionals, block Gibbs sampling, the CD-k gradient
(negative chains started at the data, or at given persistent chains: PCD), a fast training loop, exact log Z
by enumerating the smaller layer, and the pseudo-likelihood and reconstruction error that are often quoted
instead of the likelihood. :func:`ising_gibbs` samples the Ising model, the Boltzmann machine on a lattice;
:func:`bm_gibbs`, :func:`bm_energy` and :func:`bm_log_partition_exact` handle a general (fully connected)
Boltzmann machine, down to zero temperature (the Hopfield network), and :func:`ising_to_bm` maps an Ising model
with any couplings and field onto one.

References: Hinton (2002) "Training products of experts by minimizing contrastive divergence"; Tieleman (2008)
"Training RBMs using approximations to the likelihood gradient" (PCD); Younes (1989) on stochastic maximum
likelihood; Hinton (2010) "A practical guide to training RBMs"; Ackley, Hinton & Sejnowski (1985) and Hopfield
(1982) for the Boltzmann machine and its zero-temperature limit. Chapter 2 of the book derives everything here.
"""
from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F_

from .core import (
    DivergenceError,
    check_binary,
    check_int,
    check_positive,
    check_probability,
    check_tensor,
    make_generator,
    progress,
    single_thread_if_small,
)

__all__ = ["RBMGradient", "BernoulliRBM", "ising_energy", "ising_gibbs", "IsingTrace", "SINGLE_THREAD_BELOW",
           "bm_energy", "bm_log_partition_exact", "bm_gibbs", "lattice_couplings", "ising_to_bm"]

#: Largest layer that :meth:`BernoulliRBM.log_partition_exact` enumerates by default (2^25 states).
MAX_ENUMERATED_UNITS = 25

#: ``fit``, ``gibbs`` and ``cd_gradient`` run on one CPU thread (and restore torch's setting afterwards) when
#: rows * n_visible * n_hidden is below this many multiply-adds. For matrices this small a second thread costs
#: more to wake than it saves, and when other processes hold the cores a parallel operation waits for its
#: descheduled thread, 100 times longer or more (measured in benchmarks/README.md). 0 keeps torch's setting.
SINGLE_THREAD_BELOW = 2**20

_STEP_HINT = "Typical values are 0.001 to 0.1."
_BINARY_HINT = (
    "A Bernoulli RBM models binary data: binarize first, e.g. (v > 0.5).float(), "
    "or use a Gaussian-Bernoulli RBM for real-valued data."
)


class RBMGradient(NamedTuple):
    """An estimate of the gradient of the mean log-likelihood for W (n_v, n_h), b (n_v,) and c (n_h,)."""

    W: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor


def _bernoulli(p: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Independent Bernoulli(p) draws as 0/1 floats: u < p with u ~ U(0, 1) (cheaper than torch.bernoulli).

    p: (batch, units). The uniforms are drawn unit by unit ((units, batch), then transposed) because
    BernoulliRBM.fit stores its chains units x examples: both then read the same stream the same way.
    """
    u = torch.rand(p.shape[::-1], generator=generator, device=p.device, dtype=p.dtype).T
    return (u < p).to(p.dtype)


def _binary_states(start: int, stop: int, n_bits: int, device, dtype) -> torch.Tensor:
    """The binary expansions of the integers start..stop-1 as rows (stop - start, n_bits), bit 0 first."""
    idx = torch.arange(start, stop, device=device, dtype=torch.int64)
    shifts = torch.arange(n_bits, device=device, dtype=torch.int64)
    return ((idx[:, None] >> shifts) & 1).to(dtype)


def _threads_for(work: int, device: torch.device):
    """Run on one CPU thread while the per-operation work is tiny (see SINGLE_THREAD_BELOW); restore after."""
    return single_thread_if_small(work, SINGLE_THREAD_BELOW, device)


class BernoulliRBM:
    """A restricted Boltzmann machine with binary visible and hidden units.

    E(v, h) = -v^T W h - b^T v - c^T h for v: (n_visible,) and h: (n_hidden,) in {0, 1}.
    W: (n_visible, n_hidden) is drawn from N(0, init_std^2) (0.01 as in scikit-learn and Hinton's guide),
    b and c start at zero. Randomness comes from ``generator`` (or a new one made from ``seed``), which also
    becomes the default for every sampling method; with neither, torch's global generator is used.
    device: where the parameters live (default: the generator's device, else the CPU); dtype: float32 by
    default (exact log Z is always summed in float64).

    Storage: W, b and c are views into one (n_v + 1, n_h + 1) matrix ``theta = [[W, b], [c^T, 0]]``, the
    "always-on unit" trick: with v~ = (v, 1) and h~ = (h, 1), E = -v~^T theta h~, and one outer product
    v~^T h~ updates all three at once (this is what makes :meth:`fit` fast).
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        device=None,
        generator: Optional[torch.Generator] = None,
        seed: Optional[int] = None,
        dtype: torch.dtype = torch.float32,
        init_std: float = 0.01,
    ):
        n_visible = check_int(n_visible, "n_visible", minimum=1)
        n_hidden = check_int(n_hidden, "n_hidden", minimum=1)
        if generator is not None and seed is not None:
            raise ValueError("pass either generator or seed, not both.")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}.")
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        device = torch.device(device)
        if generator is not None and generator.device.type != device.type:
            raise ValueError(
                f"the generator lives on {generator.device} but the RBM on {device}; "
                "make the generator with ebm_teach.make_generator(seed, device)."
            )
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype; got {dtype}.")
        init_std = float(init_std)
        if not (math.isfinite(init_std) and init_std >= 0):
            raise ValueError(f"init_std must be a finite number >= 0; got {init_std}.")
        self.generator = make_generator(seed, device) if seed is not None else generator
        self.theta = torch.zeros(n_visible + 1, n_hidden + 1, device=device, dtype=dtype)
        if init_std > 0:
            w = torch.randn(n_visible, n_hidden, generator=self.generator, device=device, dtype=dtype)
            self.theta[:n_visible, :n_hidden] = init_std * w

    # ----------------------------------------------------------------------------------- parameters
    @classmethod
    def from_arrays(cls, W, b, c, device=None, dtype: Optional[torch.dtype] = None,
                    generator: Optional[torch.Generator] = None) -> "BernoulliRBM":
        """An RBM with given parameters (NumPy arrays or tensors), e.g. one trained elsewhere.

        W: (n_visible, n_hidden), b: (n_visible,), c: (n_hidden,). scikit-learn's ``BernoulliRBM`` stores
        ``components_`` = W^T (n_hidden, n_visible), ``intercept_visible_`` = b, ``intercept_hidden_`` = c.
        dtype defaults to W's floating dtype (float32 for integer input); device defaults to W's device.
        """
        W = check_tensor(W, "W", ndim=2)
        n_visible, n_hidden = W.shape
        b = check_tensor(b, "b", ndim=1)
        c = check_tensor(c, "c", ndim=1)
        if b.shape[0] != n_visible or c.shape[0] != n_hidden:
            hint = ""
            if b.shape[0] == n_hidden and c.shape[0] == n_visible:
                hint = " It looks transposed: pass W as (n_visible, n_hidden) (sklearn's components_.T)."
            raise ValueError(
                f"W is {tuple(W.shape)} = (n_visible, n_hidden), so b must have {n_visible} entries and c "
                f"{n_hidden}; got b with {b.shape[0]} and c with {c.shape[0]}.{hint}"
            )
        dtype = dtype or W.dtype
        device = torch.device(device) if device is not None else W.device
        rbm = cls(n_visible, n_hidden, device=device, generator=generator, dtype=dtype, init_std=0.0)
        rbm.W, rbm.b, rbm.c = W, b, c
        return rbm

    @property
    def n_visible(self) -> int:
        return self.theta.shape[0] - 1

    @property
    def n_hidden(self) -> int:
        return self.theta.shape[1] - 1

    @property
    def device(self) -> torch.device:
        return self.theta.device

    @property
    def dtype(self) -> torch.dtype:
        return self.theta.dtype

    @property
    def W(self) -> torch.Tensor:
        """The couplings W: (n_visible, n_hidden) (a view: in-place changes change the model)."""
        return self.theta[:-1, :-1]

    @W.setter
    def W(self, value):
        self.theta[:-1, :-1] = check_tensor(value, "W", shape=(self.n_visible, self.n_hidden), like=self.theta)

    @property
    def b(self) -> torch.Tensor:
        """The visible biases b: (n_visible,) (a view)."""
        return self.theta[:-1, -1]

    @b.setter
    def b(self, value):
        self.theta[:-1, -1] = check_tensor(value, "b", shape=(self.n_visible,), like=self.theta)

    @property
    def c(self) -> torch.Tensor:
        """The hidden biases c: (n_hidden,) (a view)."""
        return self.theta[-1, :-1]

    @c.setter
    def c(self, value):
        self.theta[-1, :-1] = check_tensor(value, "c", shape=(self.n_hidden,), like=self.theta)

    def init_visible_biases(self, v, eps: float = 1e-3) -> "BernoulliRBM":
        """Set b_i = log(p_i / (1 - p_i)), p_i the fraction of rows of v with unit i on (clipped to [eps, 1 - eps]).

        Hinton's (2010) practical guide, section 8: with W near 0 the model then starts as the best model with
        independent units, and the hidden units need not learn the pixels' base rates first. v: (n, n_visible)
        binary training data. Returns the RBM (changed in place).
        """
        v = self._check_v(v)
        if len(v) == 0:
            raise ValueError("v is empty; pass the training data (n, n_visible) whose base rates set b.")
        eps = check_probability(eps, "eps", allow_zero=False)
        if eps >= 0.5:
            raise ValueError(f"eps must be < 0.5 (it clips the unit means to [eps, 1 - eps]); got {eps}.")
        p = v.mean(0).clamp(eps, 1.0 - eps)
        self.b = torch.log(p) - torch.log1p(-p)
        return self

    def copy(self) -> "BernoulliRBM":
        """An independent copy of the parameters (sharing the generator)."""
        return BernoulliRBM.from_arrays(self.W.clone(), self.b.clone(), self.c.clone(), generator=self.generator)

    def __repr__(self) -> str:
        return f"BernoulliRBM(n_visible={self.n_visible}, n_hidden={self.n_hidden}, device={self.device}, dtype={self.dtype})"

    # ----------------------------------------------------------------------------------- validation
    def _check_v(self, v, name: str = "v") -> torch.Tensor:
        v = check_tensor(v, name, shape=(None, self.n_visible), like=self.theta)
        return check_binary(v, name, hint=_BINARY_HINT)

    def _check_h(self, h, name: str = "h") -> torch.Tensor:
        h = check_tensor(h, name, shape=(None, self.n_hidden), like=self.theta)
        return check_binary(h, name, hint="Hidden units are binary: sample them with sample_h_given_v.")

    def _one_thread_if_small(self, v):
        rows = len(v) if hasattr(v, "__len__") else 1
        return _threads_for(rows * self.n_visible * self.n_hidden, self.device)

    def _gen(self, generator: Optional[torch.Generator]) -> Optional[torch.Generator]:
        g = generator if generator is not None else self.generator
        if g is not None and g.device.type != self.device.type:
            raise ValueError(f"the generator lives on {g.device} but the RBM on {self.device}; use one on {self.device}.")
        return g

    # ----------------------------------------------------------------------------------- energies
    def energy(self, v, h) -> torch.Tensor:
        """E(v, h) = -v^T W h - b^T v - c^T h for v: (batch, n_visible), h: (batch, n_hidden) -> (batch,)."""
        v, h = self._check_v(v), self._check_h(h)
        if v.shape[0] != h.shape[0]:
            raise ValueError(f"v and h must have the same batch size; got {v.shape[0]} and {h.shape[0]}.")
        return -((v @ self.W) * h).sum(1) - v @ self.b - h @ self.c

    def free_energy(self, v) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + (v^T W)_j).

        v: (batch, n_visible) in {0, 1} -> (batch,). Then p(v) = exp(-F(v)) / Z.
        """
        v = self._check_v(v)
        return self._free_energy(v)

    def _free_energy(self, v: torch.Tensor) -> torch.Tensor:
        return -(v @ self.b) - F_.softplus(v @ self.W + self.c).sum(1)

    # ----------------------------------------------------------------------------------- conditionals, Gibbs
    def p_h_given_v(self, v) -> torch.Tensor:
        """p(h_j = 1 | v) = sigma(c_j + (v^T W)_j) for v: (batch, n_visible) -> (batch, n_hidden)."""
        return torch.sigmoid(self._check_v(v) @ self.W + self.c)

    def p_v_given_h(self, h) -> torch.Tensor:
        """p(v_i = 1 | h) = sigma(b_i + (W h)_i) for h: (batch, n_hidden) -> (batch, n_visible)."""
        return torch.sigmoid(self._check_h(h) @ self.W.T + self.b)

    def sample_h_given_v(self, v, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """h ~ p(h | v): each h_j = 1 with probability sigma(c_j + (v^T W)_j), independently.

        v: (batch, n_visible) -> h: (batch, n_hidden) of 0/1 floats.
        """
        return _bernoulli(self.p_h_given_v(v), self._gen(generator))

    def sample_v_given_h(self, h, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """v ~ p(v | h): each v_i = 1 with probability sigma(b_i + (W h)_i). h: (batch, n_hidden) -> (batch, n_visible)."""
        return _bernoulli(self.p_v_given_h(h), self._gen(generator))

    def _gibbs(self, v: torch.Tensor, n_steps: int, g) -> torch.Tensor:
        for _ in range(n_steps):
            h = _bernoulli(torch.sigmoid(v @ self.W + self.c), g)
            v = _bernoulli(torch.sigmoid(h @ self.W.T + self.b), g)
        return v

    def gibbs(self, v, n_steps: int = 1, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n_steps`` steps of block Gibbs sampling, h ~ p(h | v) then v ~ p(v | h), from v: (batch, n_visible).

        Returns v after the last step, (batch, n_visible). Each row is an independent chain whose law tends
        to p(v) as n_steps grows.
        """
        n_steps = check_int(n_steps, "n_steps", minimum=0)
        with self._one_thread_if_small(v):
            return self._gibbs(self._check_v(v), n_steps, self._gen(generator))

    # ----------------------------------------------------------------------------------- CD-k
    def cd_gradient(
        self,
        v_data,
        k: int = 1,
        v_negative_start=None,
        generator: Optional[torch.Generator] = None,
    ) -> Tuple[RBMGradient, torch.Tensor]:
        """The CD-k estimate of the gradient of the mean log-likelihood, and the negative samples v_k.

        d log p(v)/dW = <v p(h|v)^T>_data - <v h^T>_model, and likewise b: <v> - <v>, c: <p(h|v)> - <h>.
        The positive phase uses the data v_0 (n, n_visible) with the exact p(h | v_0); the negative phase
        replaces the model average by k block Gibbs steps from ``v_negative_start`` (m, n_visible) --- the
        data itself for CD-k, persistent chains for PCD --- using v_k and p(h | v_k):

            grad W = v_0^T p(h|v_0) / n - v_k^T p(h|v_k) / m,  grad b = mean(v_0) - mean(v_k),
            grad c = mean p(h|v_0) - mean p(h|v_k).

        Returns (RBMGradient(W, b, c), v_k). Hinton (2002); Tieleman (2008) for persistent chains.
        """
        k = check_int(k, "k", minimum=1)
        g = self._gen(generator)
        with self._one_thread_if_small(v_data):  # small matrices: see SINGLE_THREAD_BELOW
            v0 = self._check_v(v_data, "v_data")
            vk = v0 if v_negative_start is None else self._check_v(v_negative_start, "v_negative_start")
            p0 = torch.sigmoid(v0 @ self.W + self.c)
            for step in range(k):
                ph = p0 if (step == 0 and v_negative_start is None) else torch.sigmoid(vk @ self.W + self.c)
                h = _bernoulli(ph, g)
                vk = _bernoulli(torch.sigmoid(h @ self.W.T + self.b), g)
            pk = torch.sigmoid(vk @ self.W + self.c)
            grad = RBMGradient(
                W=v0.T @ p0 / len(v0) - vk.T @ pk / len(vk),
                b=v0.mean(0) - vk.mean(0),
                c=p0.mean(0) - pk.mean(0),
            )
        return grad, vk

    def update(self, grad: RBMGradient, step_size: float) -> None:
        """Gradient ascent on the log-likelihood: W += eps grad.W, b += eps grad.b, c += eps grad.c (in place)."""
        step_size = check_positive(step_size, "step_size")
        if not isinstance(grad, (RBMGradient, tuple)) or len(grad) != 3:
            raise TypeError("grad must be an RBMGradient(W, b, c), as returned by cd_gradient.")
        gW = check_tensor(grad[0], "grad.W", shape=(self.n_visible, self.n_hidden), like=self.theta)
        gb = check_tensor(grad[1], "grad.b", shape=(self.n_visible,), like=self.theta)
        gc = check_tensor(grad[2], "grad.c", shape=(self.n_hidden,), like=self.theta)
        self.W.add_(gW, alpha=step_size)
        self.b.add_(gb, alpha=step_size)
        self.c.add_(gc, alpha=step_size)

    def fit(
        self,
        v,
        n_epochs: int = 10,
        batch_size: int = 10,
        step_size: Union[float, Callable[[int], float]] = 0.1,
        k: int = 1,
        persistent: bool = False,
        n_chains: Optional[int] = None,
        v_chains=None,
        shuffle: bool = True,
        generator: Optional[torch.Generator] = None,
        callback: Optional[Callable[[int, "BernoulliRBM"], Optional[dict]]] = None,
        reinit_fraction: float = 0.0,
        momentum: Union[float, Callable[[int], float]] = 0.0,
        weight_decay: float = 0.0,
        sparsity_target: Optional[float] = None,
        sparsity_cost: float = 0.0,
        sparsity_decay: float = 0.95,
    ) -> dict:
        """Train by stochastic gradient ascent with CD-k (chains restart at each minibatch) or PCD-k.

        v: (n, n_visible) binary training data, cut into minibatches of ``batch_size`` (the last may be
        smaller), reshuffled every epoch when ``shuffle``. Each minibatch takes one step
        theta += step_size * (the CD-k gradient of :meth:`cd_gradient`); step_size may be a function of the
        epoch (1, 2, ...), e.g. ``lambda e: 0.1 * (1 - e / 50)`` to anneal it. With ``persistent`` the negative
        phase continues ``n_chains`` (default batch_size) persistent chains instead of restarting at the data;
        they start at ``v_chains`` or at uniformly random binary vectors. With ``reinit_fraction`` f > 0, before
        each update round(f * n_chains) chains, picked at random, restart from the data's base rates (pixel i on
        with probability mean(v[:, i])): fresh particles for chains stuck in one mode (5 % is a common choice).
        callback(epoch, rbm) may return a dict of numbers (e.g. the exact log-likelihood), recorded per epoch.

        The habits of Hinton's (2010) practical guide, all off by default: ``momentum`` m in [0, 1) (a number or
        a function of the epoch, e.g. 0.5 for five epochs, then 0.9) makes each step
        delta <- m delta + step_size * g, theta += delta; ``weight_decay`` lambda >= 0 adds -lambda W to the
        gradient of W (an L2 penalty, not on the biases); ``sparsity_target`` p in (0, 1) with
        ``sparsity_cost`` > 0 pushes each hidden unit's mean activation q_j (a running average over minibatches,
        q <- d q + (1 - d) mean p(h_j | v_0) with d = ``sparsity_decay``) towards p, by adding
        -cost (q_j - p) to the gradient of c_j and -cost (q_j - p) mean(v_i) to that of W_ij (the derivative of
        the cross-entropy between p and q_j with respect to the unit's input).

        Returns a history dict: "epoch" (1, 2, ...), "seconds" (cumulative training time, callbacks
        excluded), the callback's keys, and "v_chains" (the final persistent chains, or None).
        Raises DivergenceError when the parameters stop being finite (lower step_size).

        This is cd_gradient + update unrolled for speed: the gradient in closed form (no autograd), all
        three parameters updated by two in-place outer products on theta, buffers allocated once, input
        validated once per call, all uniforms of a minibatch drawn by one call and Bernoulli draws as u < p,
        one CPU thread for small problems (SINGLE_THREAD_BELOW). On the CPU it reads the same random numbers
        as cd_gradient and gives the same parameters, except that a persistent chain continues from the
        hidden state it drew before the previous update (as scikit-learn's does; it saves a matrix product).
        """
        n_epochs = check_int(n_epochs, "n_epochs", minimum=0)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        schedule = step_size if callable(step_size) else None
        step_size = check_positive(schedule(1) if schedule else step_size, "step_size", hint=_STEP_HINT)
        k = check_int(k, "k", minimum=1)
        if n_chains is not None:
            n_chains = check_int(n_chains, "n_chains", minimum=1)
        if not persistent and (v_chains is not None or n_chains is not None):
            raise ValueError("v_chains and n_chains are for persistent chains: pass persistent=True.")
        reinit_fraction = check_probability(reinit_fraction, "reinit_fraction")
        momentum_schedule = momentum if callable(momentum) else None
        momentum = self._check_momentum(momentum_schedule(1) if momentum_schedule else momentum, "momentum")
        weight_decay = float(weight_decay)
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0 (typical: 1e-4); got {weight_decay}.")
        sparsity = None
        if sparsity_target is not None or sparsity_cost:
            if sparsity_target is None:
                raise ValueError("sparsity_cost needs a sparsity_target, the mean activation to aim for (e.g. 0.1).")
            sparsity_target = check_probability(sparsity_target, "sparsity_target", allow_zero=False, allow_one=False)
            sparsity_cost = check_positive(sparsity_cost, "sparsity_cost", hint="Typical values are 0.01 to 1.")
            sparsity_decay = check_probability(sparsity_decay, "sparsity_decay", allow_one=False)
            sparsity = (sparsity_target, sparsity_cost, sparsity_decay)
        if reinit_fraction > 0 and not persistent:
            raise ValueError("reinit_fraction re-initialises persistent chains: pass persistent=True (CD's chains "
                             "restart at the data anyway).")
        g = self._gen(generator)
        nv, nh = self.n_visible, self.n_hidden
        work = max(batch_size, n_chains or 0) * nv * nh
        with _threads_for(work, self.device):
            v = self._check_v(v)
            data = torch.cat([v, torch.ones(len(v), 1, device=self.device, dtype=self.dtype)], 1)  # rows (v, 1)
            theta_h_t, theta_v = self.theta[:, :-1].T, self.theta[:-1, :]  # p(h|v) = sigma(theta_h_t v~), p(v|h) = sigma(theta_v h~)
            chains = None
            if persistent:
                if v_chains is None:
                    v_chains = _bernoulli(torch.full((n_chains or batch_size, nv), 0.5, device=self.device, dtype=self.dtype), g)
                v_chains = self._check_v(v_chains, "v_chains")
                if n_chains is not None and n_chains != len(v_chains):
                    raise ValueError(f"v_chains has {len(v_chains)} rows but n_chains is {n_chains}; pass one of them.")
                chains = _Buffers(len(v_chains), nv, nh, k, self.theta)
                chains.v_units.copy_(v_chains.T)
                torch.mm(theta_h_t, chains.v, out=chains.q_units).sigmoid_()
            reinit = None
            if reinit_fraction > 0:
                n_reinit = round(reinit_fraction * len(v_chains))
                if n_reinit == 0:
                    raise ValueError(f"reinit_fraction {reinit_fraction:g} of {len(v_chains)} chains rounds to no chain; "
                                     "use more chains or a larger fraction.")
                reinit = (n_reinit, v.mean(0)[:, None])  # how many chains per update, the base rates (n_v, 1)
        extras = None
        if momentum_schedule is not None or momentum > 0 or weight_decay > 0 or sparsity is not None:
            extras = _Extras(self.theta, weight_decay, sparsity)
        buffers = {}  # one set per batch size: the full batches' and the last one's
        history = {"epoch": [], "seconds": []}
        seconds = 0.0
        for epoch in progress(range(1, n_epochs + 1), desc=f"{'PCD' if persistent else 'CD'}-{k}"):
            if schedule is not None:
                step_size = check_positive(schedule(epoch), f"step_size({epoch})", hint=_STEP_HINT)
            if momentum_schedule is not None:
                momentum = self._check_momentum(momentum_schedule(epoch), f"momentum({epoch})")
            with _threads_for(work, self.device):
                start = time.perf_counter()
                if shuffle or epoch == 1:
                    order = torch.randperm(len(data), generator=g, device=self.device) if shuffle else None
                    batches = _column_batches(data[order] if shuffle else data, batch_size)
                for v0 in batches:
                    n_rows = v0.shape[1]
                    if n_rows not in buffers:
                        buffers[n_rows] = _Buffers(n_rows, nv, nh, k, self.theta)
                    if reinit is not None:
                        chains.reinitialise_(*reinit, theta_h_t, g)
                    self._cd_step_(v0, theta_h_t, theta_v, buffers[n_rows], chains, k, step_size, g, extras, momentum)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                seconds += time.perf_counter() - start
                if not bool(torch.isfinite(self.theta).all()):
                    raise DivergenceError(
                        f"the RBM's parameters became NaN/inf in epoch {epoch}; lower step_size "
                        f"(now {step_size:g}) or check the data."
                    )
            history["epoch"].append(epoch)
            history["seconds"].append(seconds)
            if callback is not None:
                for key, value in (callback(epoch, self) or {}).items():
                    history.setdefault(key, []).append(value)
        self.theta[-1, -1] = 0.0  # the unused corner only collects rounding from the outer products
        history["v_chains"] = chains.v_units.T.clone() if persistent else None
        return history

    @staticmethod
    def _check_momentum(m, name: str) -> float:
        m = float(m)
        if not (0.0 <= m < 1.0):
            raise ValueError(f"{name} must be in [0, 1) (Hinton's guide: 0.5, then 0.9); got {m}.")
        return m

    def _cd_step_(self, v0, theta_h_t, theta_v, buf: "_Buffers", chains: Optional["_Buffers"], k: int,
                  step_size: float, g, extras: Optional["_Extras"] = None, momentum: float = 0.0) -> None:
        """One CD-k / PCD-k update from the data columns v0 = (v_0, 1)^T: (n_v + 1, n), in place on theta.

        Everything is stored unit-major (units x examples), so that every result lands in a contiguous block.
        theta_h_t = theta[:, :-1]^T gives sigma(theta_h_t v~) = p(h = 1 | v) and theta_v = theta[:-1, :] gives
        sigma(theta_v h~) = p(v = 1 | h). ``buf`` holds this batch size's buffers; ``chains`` the persistent
        chains (None for CD), whose q holds p(h | v) at their last state.
        """
        torch.mm(theta_h_t, v0, out=buf.p_units).sigmoid_()  # positive phase: p(h | v_0)
        neg = buf if chains is None else chains
        neg.u.uniform_(generator=g)  # every uniform this update needs, in the order cd_gradient draws them
        # CD: the chain starts at the data with h ~ p(h | v_0); PCD: it continues from its last state
        torch.lt(neg.u_h[0], buf.p_units if chains is None else neg.q_units, out=neg.h_units)
        for step in range(k):
            torch.mm(theta_v, neg.h, out=neg.p_v).sigmoid_()
            torch.lt(neg.u_v[step], neg.p_v, out=neg.v_units)  # v ~ p(v | h)
            torch.mm(theta_h_t, neg.v, out=neg.q_units).sigmoid_()  # p(h | v), kept for the statistics
            if step < k - 1:
                torch.lt(neg.u_h[step + 1], neg.q_units, out=neg.h_units)  # h ~ p(h | v)
        if extras is None:
            # theta += eps (v~_0 p~_0^T / n - v~_k q~_k^T / m): W, b and c in two outer products
            self.theta.addmm_(v0, buf.p_t, alpha=step_size / v0.shape[1])
            self.theta.addmm_(neg.v, neg.q_t, alpha=-step_size / neg.v.shape[1])
        else:
            extras.step_(self.theta, v0, buf, neg, step_size, momentum)

    # ----------------------------------------------------------------------------------- exact log Z, likelihood
    def log_partition_exact(self, max_units: int = MAX_ENUMERATED_UNITS) -> float:
        """log Z by summing over every state of the smaller layer, in float64.

        With n_hidden <= n_visible: log Z = logsumexp over h in {0,1}^n_h of [c^T h + sum_i softplus(b_i + (W h)_i)]
        (the visible units summed out); otherwise the same with the roles of the layers swapped,
        logsumexp over v of -F(v). Costs 2^min(n_v, n_h) * max(n_v, n_h) operations, done in chunks.
        Refuses above ``max_units`` (2^25 states): estimate log Z by annealed importance sampling (chapter 3).
        """
        parts = [torch.logsumexp(chunk, dim=0) for chunk in self._enumerated_log_weights(max_units, "exact log Z")]
        return float(torch.logsumexp(torch.stack(parts), dim=0))

    def _enumerated_log_weights(self, max_units: int, what: str):
        """Yield, chunk by chunk and in the order of the states' binary expansions, the unnormalised log
        probabilities (float64) of every state of the smaller layer: c^T h + sum_i softplus(b_i + (W h)_i) for
        h (n_h <= n_v), else -F(v) for v."""
        max_units = check_int(max_units, "max_units", minimum=1)
        W, b, c = self.W.double(), self.b.double(), self.c.double()
        if self.n_hidden > self.n_visible:  # enumerate v: swap the layers' roles
            W, b, c = W.T, c, b
        n_enum, n_other = W.shape[1], W.shape[0]
        if n_enum > max_units:
            raise ValueError(
                f"{what} enumerates 2^{n_enum} states of the smaller layer ({n_enum} units), more than "
                f"max_units = {max_units} allows; estimate log Z with annealed importance sampling "
                "(chapter 3, ebm_teach.evaluate) instead, or raise max_units if you can wait."
            )
        chunk = max(1, 2 ** 22 // max(n_other, n_enum))
        for start in range(0, 2**n_enum, chunk):
            h = _binary_states(start, min(start + chunk, 2**n_enum), n_enum, W.device, torch.float64)
            yield h @ c + F_.softplus(torch.addmm(b, h, W.T)).sum(1)

    def sample_exact(self, n_samples: int, generator: Optional[torch.Generator] = None,
                     max_units: int = MAX_ENUMERATED_UNITS) -> Tuple[torch.Tensor, torch.Tensor]:
        """``n_samples`` independent exact samples (v, h) of p(v, h), by enumerating the smaller layer.

        With n_hidden <= n_visible, the hidden marginal p(h) ~ exp(c^T h + sum_i softplus(b_i + (W h)_i)) is
        computed for all 2^n_h states (float64), each h is drawn by inverting its cumulative distribution at a
        uniform number, and then v ~ p(v | h); otherwise v is drawn from p(v) ~ exp(-F(v)) and h ~ p(h | v).
        No Markov chain, so no burn-in and no correlation: what reverse AIS needs to bound log Z from above
        (``ebm_teach.evaluate.reverse_ais_log_partition``). Returns v: (n, n_visible) and h: (n, n_hidden),
        0/1 in the RBM's dtype. Costs 2^min(n_v, n_h) * max(n_v, n_h) operations and 2^min(n_v, n_h) floats of
        memory; refuses above ``max_units``.
        """
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        g = self._gen(generator)
        log_p = torch.cat(list(self._enumerated_log_weights(max_units, "exact sampling")))
        cdf = torch.softmax(log_p, dim=0).cumsum(0)
        u = torch.rand(n_samples, generator=g, device=self.device, dtype=torch.float64) * cdf[-1]
        idx = torch.searchsorted(cdf, u, right=True).clamp_(max=len(cdf) - 1)
        n_enum = min(self.n_visible, self.n_hidden)
        states = ((idx[:, None] >> torch.arange(n_enum, device=self.device)) & 1).to(self.dtype)
        if self.n_hidden <= self.n_visible:
            h = states
            return _bernoulli(torch.sigmoid(h @ self.W.T + self.b), g), h
        v = states
        return v, _bernoulli(torch.sigmoid(v @ self.W + self.c), g)

    def log_likelihood_exact(self, v, log_z: Optional[float] = None) -> float:
        """Mean exact log-likelihood (1/n) sum_i log p(v_i) = -mean F(v_i) - log Z, in float64 (nats).

        v: (n, n_visible) binary. Pass ``log_z`` (from :meth:`log_partition_exact`) to reuse it.
        """
        v = self._check_v(v).double()
        if log_z is None:
            log_z = self.log_partition_exact()
        W, b, c = self.W.double(), self.b.double(), self.c.double()
        free = -(v @ b) - F_.softplus(v @ W + c).sum(1)
        return float(-free.mean()) - float(log_z)

    # ----------------------------------------------------------------------------------- proxies for the likelihood
    def pseudo_log_likelihood(self, v) -> torch.Tensor:
        """The log pseudo-likelihood sum_i log p(v_i | v_{-i}), exactly (every unit, not a random one).

        p(v_i | v_{-i}) = sigma(F(v with v_i flipped) - F(v)), so no Z is needed. v: (batch, n_visible) ->
        (batch,). It is a product of one-unit conditionals, not log p(v): a model can fit every conditional
        and still put its mass in the wrong places, and its value is not comparable with log-likelihoods.
        (scikit-learn's ``score_samples`` estimates n_visible * log p(v_i | v_{-i}) for one random i.)
        """
        v = self._check_v(v)
        rows = max(1, 2**24 // (self.n_visible * self.n_hidden))  # chunks of at most 2^24 (row, i, j) terms
        return torch.cat([self._pseudo_log_likelihood(chunk) for chunk in v.split(rows)])

    def _pseudo_log_likelihood(self, v: torch.Tensor) -> torch.Tensor:
        a = v @ self.W + self.c  # (batch, n_hidden)
        sign = 1.0 - 2.0 * v  # +1 where flipping turns a unit on, -1 where it turns it off
        flipped = F_.softplus(a[:, None, :] + sign[:, :, None] * self.W[None, :, :]).sum(2)  # (batch, n_v)
        delta_f = -sign * self.b - flipped + F_.softplus(a).sum(1, keepdim=True)  # F(flip_i v) - F(v)
        return F_.logsigmoid(delta_f).sum(1)

    def reconstruction_error(self, v) -> float:
        """Mean squared reconstruction error: mean over rows of sum_i (v_i - p(v_i = 1 | h = p(h | v)))^2.

        Deterministic (mean-field h). It measures how well one up-down pass returns the data, which is neither
        the likelihood nor monotone in it: the negative phase and Z play no part in it. v: (batch, n_visible).
        """
        v = self._check_v(v)
        p = torch.sigmoid(torch.sigmoid(v @ self.W + self.c) @ self.W.T + self.b)
        return float(((v - p) ** 2).sum(1).mean())


def _column_batches(rows: torch.Tensor, batch_size: int):
    """Cut (n, d) rows into minibatches of columns (d, batch_size) (the last may be narrower), each contiguous."""
    n_full = len(rows) // batch_size * batch_size
    full = rows[:n_full].reshape(-1, batch_size, rows.shape[1]).transpose(1, 2).contiguous()
    batches = list(full.unbind(0))
    if n_full < len(rows):
        batches.append(rows[n_full:].T.contiguous())
    return batches


class _Extras:
    """State of the optional terms of Hinton's guide in :meth:`BernoulliRBM.fit`: the gradient buffer, the
    momentum's velocity delta and the running mean activation q of the hidden units (all on theta's layout)."""

    def __init__(self, theta: torch.Tensor, weight_decay: float, sparsity):
        self.grad = torch.zeros_like(theta)
        self.delta = torch.zeros_like(theta)
        self.weight_decay, self.sparsity = weight_decay, sparsity
        self.q = None  # running mean of p(h_j = 1 | v_0), started at the first minibatch's

    def step_(self, theta, v0, buf: "_Buffers", neg: "_Buffers", step_size: float, momentum: float) -> None:
        """delta <- momentum delta + eps (positive - negative - lambda W - sparsity term); theta += delta."""
        nv, nh = theta.shape[0] - 1, theta.shape[1] - 1
        torch.mm(v0, buf.p_t, out=self.grad).div_(v0.shape[1])
        self.grad.addmm_(neg.v, neg.q_t, alpha=-1.0 / neg.v.shape[1])
        if self.weight_decay > 0:
            self.grad[:nv, :nh].add_(theta[:nv, :nh], alpha=-self.weight_decay)
        if self.sparsity is not None:
            target, cost, decay = self.sparsity
            q_now = buf.p_units.mean(1)
            self.q = q_now.clone() if self.q is None else self.q.mul_(decay).add_(q_now, alpha=1.0 - decay)
            self.grad[:, :nh].addr_(v0.mean(1), self.q - target, alpha=-cost)  # the ones row: the biases c
        self.grad[-1, -1] = 0.0
        self.delta.mul_(momentum).add_(self.grad, alpha=step_size)
        theta.add_(self.delta)


class _Buffers:
    """Preallocated tensors for ``rows`` chains of k Gibbs steps in :meth:`BernoulliRBM.fit`, unit-major.

    v (n_v + 1, rows) and h (n_h + 1, rows) are samples with a last row of ones (the always-on unit); p and
    q (n_h + 1, rows) hold p(h | v_0) and p(h | v_k) over a row of ones; p_v (n_v, rows). u is one flat
    buffer of uniforms, viewed as u_h[t] (n_h, rows) and u_v[t] (n_v, rows) in the order cd_gradient draws
    them (h_0, v_1, h_1, v_2, ...; see _bernoulli), so one call draws them all and the streams agree.
    """

    def __init__(self, rows: int, nv: int, nh: int, k: int, like: torch.Tensor):
        opts = dict(device=like.device, dtype=like.dtype)
        self.v = torch.ones(nv + 1, rows, **opts)
        self.h = torch.ones(nh + 1, rows, **opts)
        self.p = torch.ones(nh + 1, rows, **opts)
        self.q = torch.ones(nh + 1, rows, **opts)
        self.p_v = torch.empty(nv, rows, **opts)
        self.v[:nv] = 0.0
        self.v_units, self.h_units, self.p_units, self.q_units = self.v[:nv], self.h[:nh], self.p[:nh], self.q[:nh]
        self.p_t, self.q_t = self.p.T, self.q.T
        self.u = torch.empty(k * rows * (nh + nv), **opts)
        blocks = self.u.split([rows * nh, rows * nv] * k)
        self.u_h = [blk.view(nh, rows) for blk in blocks[0::2]]
        self.u_v = [blk.view(nv, rows) for blk in blocks[1::2]]

    def reinitialise_(self, n_reinit: int, base_rates: torch.Tensor, theta_h_t: torch.Tensor, g) -> None:
        """Restart ``n_reinit`` chains, picked at random, with v_i ~ Bernoulli(base_rates[i]) (n_v, 1); their
        q = p(h | v) is recomputed. A fixed number per update keeps shapes static (no host sync on a GPU)."""
        idx = torch.randperm(self.v.shape[1], generator=g, device=self.v.device)[:n_reinit]
        u = torch.rand(len(base_rates), n_reinit, generator=g, device=self.v.device, dtype=self.v.dtype)
        self.v_units[:, idx] = (u < base_rates).to(self.v.dtype)
        self.q_units[:, idx] = torch.sigmoid(theta_h_t @ self.v[:, idx])


# --------------------------------------------------------------------------------------------- Boltzmann machines
def _check_bm(J, b) -> Tuple[torch.Tensor, torch.Tensor]:
    J = check_tensor(J, "J", ndim=2)
    d = J.shape[0]
    if J.shape != (d, d):
        raise ValueError(f"J must be a square (d, d) coupling matrix; got shape {tuple(J.shape)}.")
    if not torch.allclose(J, J.T) or bool((torch.diagonal(J) != 0).any()):
        raise ValueError("J must be symmetric with a zero diagonal (J_ij = J_ji, no self-coupling); "
                         "symmetrise with (J + J.T) / 2 and clear the diagonal with J.fill_diagonal_(0).")
    b = check_tensor(b, "b", shape=(d,), like=J)
    return J, b


def bm_energy(x, J, b) -> torch.Tensor:
    """The energy of a Boltzmann machine, E(x) = -1/2 x^T J x - b^T x, for x: (batch, d) in {0, 1} -> (batch,).

    J: (d, d) symmetric with a zero diagonal (J_ij couples units i and j); b: (d,) biases. p(x) = exp(-E(x)) / Z.
    """
    J, b = _check_bm(J, b)
    x = check_binary(check_tensor(x, "x", shape=(None, J.shape[0]), like=J), "x")
    return -0.5 * ((x @ J) * x).sum(1) - x @ b


def bm_log_partition_exact(J, b, max_units: int = MAX_ENUMERATED_UNITS) -> float:
    """log Z = logsumexp over all 2^d states x of [1/2 x^T J x + b^T x], in float64, in chunks of 2^20 states.

    J: (d, d) symmetric, zero diagonal; b: (d,). Refuses d > ``max_units`` (2^25 states).
    """
    J, b = _check_bm(J, b)
    d = J.shape[0]
    if d > check_int(max_units, "max_units", minimum=1):
        raise ValueError(f"exact log Z of a Boltzmann machine enumerates 2^{d} states, more than max_units = "
                         f"{max_units} allows; raise max_units if you can wait.")
    J, b = J.double(), b.double()
    parts = []
    for start in range(0, 2**d, 2**20):
        x = _binary_states(start, min(start + 2**20, 2**d), d, J.device, torch.float64)
        parts.append(torch.logsumexp(0.5 * ((x @ J) * x).sum(1) + x @ b, 0))
    return float(torch.logsumexp(torch.stack(parts), 0))


def bm_gibbs(x, J, b, n_sweeps: int = 1, temperature: float = 1.0,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Single-site Gibbs sampling of a Boltzmann machine p_T(x) ~ exp(-E(x) / T), one chain per row of x.

    Each sweep visits the units in order i = 1..d and sets x_i = 1 with probability sigma(a_i / T), where
    a_i = b_i + sum_j J_ij x_j = E(x with x_i = 0) - E(x with x_i = 1). At ``temperature`` T = 0 the update is
    deterministic, x_i = 1[a_i > 0] (unchanged when a_i = 0): the Hopfield network, whose every update can
    only lower E. x: (batch, d) in {0, 1}; J: (d, d) symmetric, zero diagonal; b: (d,). Returns x after
    ``n_sweeps`` sweeps. Hopfield (1982); Ackley, Hinton & Sejnowski (1985).
    """
    J, b = _check_bm(J, b)
    x = check_binary(check_tensor(x, "x", shape=(None, J.shape[0]), like=J), "x").clone()
    n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=0)
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0: the Hopfield network); got {temperature}.")
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(f"the generator lives on {generator.device} but x on {x.device}.")
    for _ in range(n_sweeps):
        u = None if temperature == 0 else torch.rand(J.shape[0], len(x), generator=generator, device=x.device,
                                                     dtype=x.dtype)
        for i in range(J.shape[0]):
            a = b[i] + x @ J[:, i]
            if temperature == 0:
                x[:, i] = torch.where(a == 0, x[:, i], (a > 0).to(x.dtype))
            else:
                x[:, i] = (u[i] < torch.sigmoid(a / temperature)).to(x.dtype)
    return x


def lattice_couplings(L: int, J: float = 1.0, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """The (L^2, L^2) coupling matrix of the Ising model on a periodic L x L lattice: J between nearest neighbours.

    Site (r, c) is unit r * L + c. Bonds are counted as :func:`ising_energy` counts them (right and down
    neighbour of every site), so -1/2 s^T C s = ising_energy(s, J) for spins s reshaped to (L^2,).
    """
    L = check_int(L, "L", minimum=2)
    idx = torch.arange(L * L, device=device).reshape(L, L)
    C = torch.zeros(L * L, L * L, dtype=dtype, device=device)
    for nbr in (torch.roll(idx, -1, 1), torch.roll(idx, -1, 0)):  # right and down neighbours
        C.index_put_((idx.reshape(-1), nbr.reshape(-1)), torch.full((L * L,), float(J), dtype=dtype, device=device),
                     accumulate=True)
    return C + C.T


def ising_to_bm(couplings, field=None, beta: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """The Boltzmann machine on 0/1 units x = (s + 1) / 2 that is the Ising model p(s) ~ exp(-beta E(s)),
    E(s) = -1/2 s^T C s - H^T s (C: (d, d) couplings, symmetric, zero diagonal; H: (d,) external field).

    Substituting s = 2x - 1 gives beta E = -1/2 x^T (4 beta C) x - (2 beta (H - C 1))^T x + const, so
    J' = 4 beta C and b' = 2 beta (H - C 1); on the lattice (C 1 = 4 J) that is J' = 4 beta J, b' = -8 beta J + 2
    beta H. Returns (J', b'). field: None (no field), a number (uniform) or (d,).
    """
    C, _ = _check_bm(couplings, torch.zeros(len(couplings), dtype=torch.as_tensor(couplings).dtype,
                                            device=torch.as_tensor(couplings).device))
    beta = float(beta)
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0 (the inverse temperature 1/T); got {beta}.")
    H = torch.zeros(C.shape[0], dtype=C.dtype, device=C.device) if field is None else \
        torch.as_tensor(field, dtype=C.dtype, device=C.device).expand(C.shape[0])
    if not bool(torch.isfinite(H).all()):
        raise ValueError("field must be finite.")
    return 4.0 * beta * C, 2.0 * beta * (H - C.sum(1))


# --------------------------------------------------------------------------------------------- Ising model
class IsingTrace(NamedTuple):
    """What :func:`ising_gibbs` measured: final spins (batch, L, L), and after every sweep the
    magnetisation per spin m = mean(s) and the energy per spin E/L^2, both (n_sweeps, batch)."""

    spins: torch.Tensor
    magnetisation: torch.Tensor
    energy: torch.Tensor


def ising_energy(s, J: float = 1.0) -> torch.Tensor:
    """E(s) = -J sum over nearest-neighbour pairs <ij> of s_i s_j on a periodic L x L lattice.

    s: (batch, L, L) in {-1, +1} -> (batch,). Each bond counted once (right and down neighbours).
    """
    s = check_tensor(s, "s", ndim=3)
    _check_spins(s)
    return -J * (s * torch.roll(s, 1, dims=1) + s * torch.roll(s, 1, dims=2)).sum((1, 2))


def _check_spins(s: torch.Tensor) -> None:
    if not bool(((s == 1) | (s == -1)).all()):
        raise ValueError("Ising spins must be -1 or +1; map 0/1 units x to spins with s = 2x - 1.")


def _neighbour_sum(s: torch.Tensor) -> torch.Tensor:
    """sum of the four nearest neighbours of every site of s: (batch, L, L), periodic edges."""
    return torch.roll(s, 1, 1) + torch.roll(s, -1, 1) + torch.roll(s, 1, 2) + torch.roll(s, -1, 2)


def _checkerboard_sweep(s: torch.Tensor, coupling: torch.Tensor, colours, generator) -> torch.Tensor:
    """One sweep: all red sites at once, then all black ones, each spin drawn from its conditional
    p(s_i = +1 | neighbours) = sigma(2 beta J sum_nbr s_j); coupling = 2 beta J, (batch, 1, 1)."""
    for mask in colours:
        p_up = torch.sigmoid(coupling * _neighbour_sum(s))
        u = torch.rand(s.shape, generator=generator, device=s.device, dtype=s.dtype)
        s = torch.where(mask, torch.where(u < p_up, 1.0, -1.0).to(s.dtype), s)
    return s


def ising_gibbs(
    s,
    beta,
    n_sweeps: int,
    J: float = 1.0,
    generator: Optional[torch.Generator] = None,
) -> IsingTrace:
    """Checkerboard (red-black) Gibbs sampling of the 2-D Ising model p(s) ~ exp(-beta E(s)).

    Each spin's conditional given its four neighbours is p(s_i = +1 | rest) = sigma(2 beta J sum_nbr s_j).
    On a periodic lattice with even L the "red" sites (i + j even) only neighbour "black" ones, so all red
    spins are conditionally independent given the black ones: one sweep updates all red, then all black
    sites at once, exactly like the block Gibbs step of an RBM.
    s: (batch, L, L) in {-1, +1}, L even; beta: inverse temperature, a number or (batch,) (one per chain).
    Returns an :class:`IsingTrace`. T_c = 2 / ln(1 + sqrt 2) ~ 2.269 for J = 1 (Onsager, 1944).
    """
    s = check_tensor(s, "s", ndim=3)
    _check_spins(s)
    L = s.shape[1]
    if s.shape[2] != L or L % 2 or L < 2:
        raise ValueError(f"s must be (batch, L, L) with L even (for the checkerboard); got {tuple(s.shape)}.")
    n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=1)
    beta = torch.as_tensor(beta, dtype=s.dtype, device=s.device)
    if beta.dim() == 0:
        beta = beta.expand(s.shape[0])
    if beta.shape != (s.shape[0],) or not bool((torch.isfinite(beta) & (beta >= 0)).all()):
        raise ValueError(f"beta must be a number >= 0 or one per chain, shape ({s.shape[0]},); got {beta.tolist()}.")
    if generator is not None and generator.device.type != s.device.type:
        raise ValueError(f"the generator lives on {generator.device} but s on {s.device}.")
    i, j = torch.meshgrid(torch.arange(L, device=s.device), torch.arange(L, device=s.device), indexing="ij")
    colours = [((i + j) % 2 == parity) for parity in (0, 1)]
    coupling = (2.0 * J * beta)[:, None, None]
    s = s.clone()
    mags, energies = [], []
    for _ in range(n_sweeps):
        s = _checkerboard_sweep(s, coupling, colours, generator)
        mags.append(s.mean((1, 2)))
        energies.append(-J * (s * torch.roll(s, 1, 1) + s * torch.roll(s, 1, 2)).sum((1, 2)) / L**2)
    return IsingTrace(s, torch.stack(mags), torch.stack(energies))
