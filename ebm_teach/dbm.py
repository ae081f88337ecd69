"""Deep belief networks and deep Boltzmann machines with two binary hidden layers (chapter 8).

A **deep Boltzmann machine** (DBM) is the Boltzmann machine on three layers v, h1, h2 in {0,1} with couplings
only between neighbouring layers,

    E(v, h1, h2) = -v^T W1 h1 - h1^T W2 h2 - b^T v - c1^T h1 - c2^T h2,     p(v, h1, h2) = exp(-E) / Z.

Given h1, the layers v and h2 are independent, and given (v, h2) the units of h1 are independent:

    p(v_i = 1 | h1) = sigma(b_i + (W1 h1)_i),      p(h2_k = 1 | h1) = sigma(c2_k + (W2^T h1)_k),
    p(h1_j = 1 | v, h2) = sigma(c1_j + (W1^T v)_j + (W2 h2)_j),

so block Gibbs sampling alternates the two groups {v, h2} and {h1}, and v and h2 sum out in closed form given
h1 (and h1 given v and h2): log Z is exact by enumerating the smaller group. The posterior p(h1, h2 | v) does
not factorise (h1 and h2 are coupled by W2); :meth:`DBM.mean_field` approximates it by a factorial q, which
gives the lower bound log p(v) >= E_q[-E(v, h)] + H(q) - log Z used for the positive phase of training
(Salakhutdinov & Hinton, 2009) and for evaluation. :func:`pretrain_dbm` initialises a DBM from two RBMs with
the doubled-input correction; :func:`ais_log_partition_dbm` estimates log Z by annealed importance sampling
on h1 with v and h2 summed out.

A **deep belief network** (DBN, Hinton, Osindero & Teh, 2006) stacks RBMs trained greedily: its top two layers
form an RBM and the layers below are directed, p(v | h1) of the first RBM. :class:`DBN` holds the stack of
:class:`~ebm_teach.rbm.BernoulliRBM`, samples top-down, and computes the variational lower bound on log p(v)
of a two-layer DBN exactly (enumerating h1).

The chapter's notation uses column vectors (W1^T v); the code uses row vectors, one example per row, so W1^T v
is ``v @ W1``. The functions ending in ``_reference`` are the algorithms written as the chapter writes them; the
methods of :class:`DBM` and :func:`ais_log_partition_dbm` are the fast versions, tested equal to them on the
same random stream.

References: Hinton, Osindero & Teh (2006) "A fast learning algorithm for deep belief nets"; Younes (1989)
"Parametric inference for imperfectly observed Gibbsian fields" and Tieleman (2008) "Training restricted
Boltzmann machines using approximations to the likelihood gradient" (persistent chains); Salakhutdinov & Murray
(2008) "On the quantitative analysis of deep belief networks"; Salakhutdinov & Hinton (2009) "Deep Boltzmann
machines"; Salakhutdinov & Hinton (2012) "An efficient learning procedure for deep Boltzmann machines" (Neural
Computation 24(8)); Hinton & Salakhutdinov (2012) "A better way to pretrain deep Boltzmann machines" (NIPS);
Neal (2001) "Annealed importance sampling".
"""
from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F_

from .core import (
    DivergenceError,
    check_binary,
    check_int,
    check_positive,
    check_tensor,
    make_generator,
    progress,
    single_thread_if_small,
)
from .evaluate import AIS_STANDARD_N_BETAS, AISResult, ais_base_bias, ais_schedule, ais_result, log_mean_exp
from .rbm import MAX_ENUMERATED_UNITS, SINGLE_THREAD_BELOW, BernoulliRBM, _bernoulli, _binary_states

__all__ = ["DBM", "DBMState", "DBMGradient", "MeanField", "pretrain_dbm", "PretrainedDBM", "ais_log_partition_dbm",
           "DBN", "MAX_ENUMERATED_UNITS", "gibbs_sweep_reference", "mean_field_reference", "gradient_reference",
           "ais_dbm_reference", "binary_states", "upside_down", "visible_log_probs", "fit_rbm_exact",
           "fit_to_distribution", "FamilyFit"]

_BINARY_HINT = "A DBM models binary data: binarize first, e.g. (v > 0.5).float()."
_STEP_HINT = "Typical values are 0.001 to 0.05."
_CHUNK = 2**22  # elements per chunk when enumerating states


class DBMState(NamedTuple):
    """The state of a batch of Gibbs chains of a DBM: v (batch, n_v), h1 (batch, n_h1), h2 (batch, n_h2)."""

    v: torch.Tensor
    h1: torch.Tensor
    h2: torch.Tensor


class MeanField(NamedTuple):
    """What :meth:`DBM.mean_field` found: q(h1_j = 1) = mu1 (batch, n_h1), q(h2_k = 1) = mu2 (batch, n_h2);
    n_iter, the number of fixed-point rounds run; change, the largest change of any mu in the last round (a
    0-d tensor: reading it synchronises with a GPU, so it is only read when asked)."""

    mu1: torch.Tensor
    mu2: torch.Tensor
    n_iter: int
    change: torch.Tensor


class DBMGradient(NamedTuple):
    """An estimate of the gradient of the mean log-likelihood (its variational version) for each parameter."""

    W1: torch.Tensor
    W2: torch.Tensor
    b: torch.Tensor
    c1: torch.Tensor
    c2: torch.Tensor


def _entropy(mu: torch.Tensor) -> torch.Tensor:
    """H of independent Bernoulli(mu) units, summed over the last axis: -sum mu log mu + (1 - mu) log(1 - mu),
    with 0 log 0 = 0."""
    return -(torch.special.xlogy(mu, mu) + torch.special.xlogy(1 - mu, 1 - mu)).sum(-1)


def _enumerated_logsumexp(n_bits: int, per_state: Callable[[torch.Tensor], torch.Tensor], width: int, like) -> torch.Tensor:
    """logsumexp over all 2^n_bits binary states s of per_state(s), in chunks of states.

    per_state maps states (S, n_bits) in float64 to (..., S) log-terms; ``width`` is how many numbers one state
    costs (to size the chunks). Returns (...) float64.
    """
    chunk = max(1, _CHUNK // max(1, width))
    parts = []
    for start in range(0, 2**n_bits, chunk):
        s = _binary_states(start, min(start + chunk, 2**n_bits), n_bits, like.device, torch.float64)
        parts.append(torch.logsumexp(per_state(s), dim=-1))
    return torch.logsumexp(torch.stack(parts, -1), dim=-1)


class DBM:
    """A deep Boltzmann machine with binary layers v (n_visible), h1 (n_hidden1) and h2 (n_hidden2).

    E(v, h1, h2) = -v^T W1 h1 - h1^T W2 h2 - b^T v - c1^T h1 - c2^T h2.
    W1: (n_visible, n_hidden1) and W2: (n_hidden1, n_hidden2) start as N(0, init_std^2) (0.01), the biases
    b (n_visible,), c1 (n_hidden1,), c2 (n_hidden2,) at zero. Randomness comes from ``generator`` (or a new one
    made from ``seed``), the default of every sampling method; with neither, torch's global generator.
    device: where the parameters live (default: the generator's device, else the CPU); dtype: float32 by
    default (exact log Z and log p(v) are always summed in float64).
    """

    def __init__(self, n_visible: int, n_hidden1: int, n_hidden2: int, device=None, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32,
                 init_std: float = 0.01):
        n_visible = check_int(n_visible, "n_visible", minimum=1)
        n_hidden1 = check_int(n_hidden1, "n_hidden1", minimum=1)
        n_hidden2 = check_int(n_hidden2, "n_hidden2", minimum=1)
        if generator is not None and seed is not None:
            raise ValueError("pass either generator or seed, not both.")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}.")
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        device = torch.device(device)
        if generator is not None and generator.device.type != device.type:
            raise ValueError(f"the generator lives on {generator.device} but the DBM on {device}; make the "
                             "generator with ebm_teach.make_generator(seed, device).")
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype; got {dtype}.")
        init_std = float(init_std)
        if not (math.isfinite(init_std) and init_std >= 0):
            raise ValueError(f"init_std must be a finite number >= 0; got {init_std}.")
        self.generator = make_generator(seed, device) if seed is not None else generator
        opts = dict(device=device, dtype=dtype)
        self.W1 = init_std * torch.randn(n_visible, n_hidden1, generator=self.generator, **opts)
        self.W2 = init_std * torch.randn(n_hidden1, n_hidden2, generator=self.generator, **opts)
        self.b = torch.zeros(n_visible, **opts)
        self.c1 = torch.zeros(n_hidden1, **opts)
        self.c2 = torch.zeros(n_hidden2, **opts)

    # ----------------------------------------------------------------------------------- parameters
    @classmethod
    def from_arrays(cls, W1, W2, b, c1, c2, device=None, dtype: Optional[torch.dtype] = None,
                    generator: Optional[torch.Generator] = None) -> "DBM":
        """A DBM with given parameters (NumPy arrays or tensors): W1 (n_v, n_h1), W2 (n_h1, n_h2), b (n_v,),
        c1 (n_h1,), c2 (n_h2,). dtype defaults to W1's floating dtype (float32 for integer input); device to
        W1's device. The arrays are copied."""
        W1 = check_tensor(W1, "W1", ndim=2)
        dtype = dtype or W1.dtype
        device = torch.device(device) if device is not None else W1.device
        like = torch.empty(0, device=device, dtype=dtype)
        W1 = W1.to(device=device, dtype=dtype)
        n_v, n_h1 = W1.shape
        W2 = check_tensor(W2, "W2", ndim=2, like=like)
        if W2.shape[0] != n_h1:
            raise ValueError(f"W1 is {tuple(W1.shape)} = (n_visible, n_hidden1), so W2 must have {n_h1} rows "
                             f"(n_hidden1, n_hidden2); got W2 of shape {tuple(W2.shape)}.")
        n_h2 = W2.shape[1]
        for name, value, n, what in [("b", b, n_v, "n_visible"), ("c1", c1, n_h1, "n_hidden1"),
                                     ("c2", c2, n_h2, "n_hidden2")]:
            t = check_tensor(value, name, ndim=1, like=like)
            if t.shape[0] != n:
                raise ValueError(f"{name} must have {what} = {n} entries (from W1 {tuple(W1.shape)} and W2 "
                                 f"{tuple(W2.shape)}); got {t.shape[0]}.")
        dbm = cls(n_v, n_h1, n_h2, device=device, generator=generator, dtype=dtype, init_std=0.0)
        dbm.W1, dbm.W2 = W1.clone(), W2.clone()
        dbm.b, dbm.c1, dbm.c2 = (check_tensor(t, n, like=like).clone() for t, n in ((b, "b"), (c1, "c1"), (c2, "c2")))
        return dbm

    @property
    def n_visible(self) -> int:
        return self.W1.shape[0]

    @property
    def n_hidden1(self) -> int:
        return self.W1.shape[1]

    @property
    def n_hidden2(self) -> int:
        return self.W2.shape[1]

    @property
    def device(self) -> torch.device:
        return self.W1.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W1.dtype

    @property
    def n_parameters(self) -> int:
        """Number of parameters: n_v n_h1 + n_h1 n_h2 + n_v + n_h1 + n_h2."""
        return self.W1.numel() + self.W2.numel() + self.n_visible + self.n_hidden1 + self.n_hidden2

    def parameters(self) -> Tuple[torch.Tensor, ...]:
        """(W1, W2, b, c1, c2)."""
        return self.W1, self.W2, self.b, self.c1, self.c2

    def copy(self) -> "DBM":
        """An independent copy of the parameters (sharing the generator)."""
        return DBM.from_arrays(*self.parameters(), generator=self.generator)

    def __repr__(self) -> str:
        return (f"DBM(n_visible={self.n_visible}, n_hidden1={self.n_hidden1}, n_hidden2={self.n_hidden2}, "
                f"device={self.device}, dtype={self.dtype})")

    # ----------------------------------------------------------------------------------- validation
    def _check_layer(self, x, name: str, n: int, hint: str = _BINARY_HINT) -> torch.Tensor:
        x = check_tensor(x, name, shape=(None, n), like=self.W1)
        return check_binary(x, name, hint=hint)

    def _check_v(self, v, name: str = "v") -> torch.Tensor:
        return self._check_layer(v, name, self.n_visible)

    def _gen(self, generator: Optional[torch.Generator]) -> Optional[torch.Generator]:
        g = generator if generator is not None else self.generator
        if g is not None and g.device.type != self.device.type:
            raise ValueError(f"the generator lives on {g.device} but the DBM on {self.device}; use one on {self.device}.")
        return g

    def _threads(self, rows: int):
        work = rows * (self.n_visible + self.n_hidden2) * self.n_hidden1
        return single_thread_if_small(work, SINGLE_THREAD_BELOW, self.device)

    # ----------------------------------------------------------------------------------- energy, conditionals
    def energy(self, v, h1, h2) -> torch.Tensor:
        """E(v, h1, h2) = -v^T W1 h1 - h1^T W2 h2 - b^T v - c1^T h1 - c2^T h2, one value per row: (batch,)."""
        v = self._check_v(v)
        h1 = self._check_layer(h1, "h1", self.n_hidden1, "hidden units are binary")
        h2 = self._check_layer(h2, "h2", self.n_hidden2, "hidden units are binary")
        if not (len(v) == len(h1) == len(h2)):
            raise ValueError(f"v, h1 and h2 must have the same batch size; got {len(v)}, {len(h1)} and {len(h2)}.")
        return -((v @ self.W1) * h1).sum(1) - ((h1 @ self.W2) * h2).sum(1) - v @ self.b - h1 @ self.c1 - h2 @ self.c2

    def p_h1_given(self, v, h2) -> torch.Tensor:
        """p(h1_j = 1 | v, h2) = sigma(c1_j + (W1^T v)_j + (W2 h2)_j): (batch, n_h1). h1 hears both neighbours."""
        v = self._check_v(v)
        h2 = self._check_layer(h2, "h2", self.n_hidden2, "hidden units are binary")
        return torch.sigmoid(v @ self.W1 + h2 @ self.W2.T + self.c1)

    def p_v_given_h1(self, h1) -> torch.Tensor:
        """p(v_i = 1 | h1) = sigma(b_i + (W1 h1)_i): (batch, n_v)."""
        h1 = self._check_layer(h1, "h1", self.n_hidden1, "hidden units are binary")
        return torch.sigmoid(h1 @ self.W1.T + self.b)

    def p_h2_given_h1(self, h1) -> torch.Tensor:
        """p(h2_k = 1 | h1) = sigma(c2_k + (W2^T h1)_k): (batch, n_h2)."""
        h1 = self._check_layer(h1, "h1", self.n_hidden1, "hidden units are binary")
        return torch.sigmoid(h1 @ self.W2 + self.c2)

    # ----------------------------------------------------------------------------------- block Gibbs
    def _gibbs_step(self, v, h2, g) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One sweep: h1 ~ p(h1 | v, h2), then {v, h2} ~ p(v | h1) p(h2 | h1) (independent given h1)."""
        h1 = _bernoulli(torch.sigmoid(torch.addmm(torch.addmm(self.c1, v, self.W1), h2, self.W2.T)), g)
        v = _bernoulli(torch.sigmoid(torch.addmm(self.b, h1, self.W1.T)), g)
        h2 = _bernoulli(torch.sigmoid(torch.addmm(self.c2, h1, self.W2)), g)
        return v, h1, h2

    def gibbs(self, state: DBMState, n_steps: int = 1, generator: Optional[torch.Generator] = None) -> DBMState:
        """``n_steps`` sweeps of block Gibbs sampling over the two groups {h1} and {v, h2}.

        state: a :class:`DBMState` (its h1 is not read: each sweep first draws h1 ~ p(h1 | v, h2), then v and h2
        given h1). Returns the new DBMState. Each row is an independent chain whose law tends to p(v, h1, h2).
        """
        n_steps = check_int(n_steps, "n_steps", minimum=0)
        if not isinstance(state, tuple) or len(state) != 3:
            raise TypeError("state must be a DBMState(v, h1, h2), e.g. from DBM.init_chains(n).")
        v, h1, h2 = state
        v = self._check_v(v, "state.v")
        h1 = self._check_layer(h1, "state.h1", self.n_hidden1, "hidden units are binary")
        h2 = self._check_layer(h2, "state.h2", self.n_hidden2, "hidden units are binary")
        g = self._gen(generator)
        with self._threads(len(v)):
            for _ in range(n_steps):
                v, h1, h2 = self._gibbs_step(v, h2, g)
        return DBMState(v, h1, h2)

    def init_chains(self, n: int, generator: Optional[torch.Generator] = None) -> DBMState:
        """``n`` chains with every unit an independent fair coin: a DBMState of 0/1 floats."""
        n = check_int(n, "n", minimum=1)
        g = self._gen(generator)
        half = lambda m: _bernoulli(torch.full((n, m), 0.5, device=self.device, dtype=self.dtype), g)  # noqa: E731
        return DBMState(half(self.n_visible), half(self.n_hidden1), half(self.n_hidden2))

    def sample(self, n: int, n_steps: int = 1000, generator: Optional[torch.Generator] = None) -> DBMState:
        """``n`` independent chains from :meth:`init_chains`, run ``n_steps`` Gibbs sweeps: approximate samples."""
        g = self._gen(generator)
        return self.gibbs(self.init_chains(n, g), n_steps, g)

    # ----------------------------------------------------------------------------------- mean field
    def _mean_field(self, v, n_iter: int, tol: Optional[float]) -> MeanField:
        bottom_up = torch.addmm(self.c1, v, self.W1)  # c1 + W1^T v, the same in every round
        mu1 = torch.sigmoid(torch.addmm(bottom_up, v, self.W1))  # doubled bottom-up: stands in for the top-down input
        mu2 = torch.sigmoid(torch.addmm(self.c2, mu1, self.W2))
        change = torch.full((), float("nan"), device=v.device, dtype=v.dtype)
        done = 0
        for done in range(1, n_iter + 1):
            new1 = torch.sigmoid(torch.addmm(bottom_up, mu2, self.W2.T))  # the best mu1 given mu2
            new2 = torch.sigmoid(torch.addmm(self.c2, new1, self.W2))  # the best mu2 given mu1
            if tol is not None or done == n_iter:
                change = torch.maximum((new1 - mu1).abs().amax(), (new2 - mu2).abs().amax()) if v.numel() else change
            mu1, mu2 = new1, new2
            if tol is not None and float(change) < tol:  # reading change syncs with a GPU: only when tol is set
                break
        return MeanField(mu1, mu2, done, change)

    def mean_field(self, v, n_iter: int = 100, tol: Optional[float] = 1e-7) -> MeanField:
        """The factorial approximation q(h1, h2) = prod_j q(h1_j) prod_k q(h2_k) of p(h1, h2 | v), by fixed point.

        The bound log p*(v) >= E_q[-E(v, h1, h2)] + H(q) (see :meth:`mean_field_bound`) is maximised one layer at a
        time: with mu2 fixed, the best mu1 is sigma(c1 + W1^T v + W2 mu2), and with mu1 fixed the best mu2 is
        sigma(c2 + W2^T mu1). Each half-step is the exact maximiser over its layer, so the bound never decreases
        and the rounds converge to *a* fixed point: a local maximum of a bound that is not concave, which need
        not be the best factorial q. Start (Salakhutdinov & Hinton, 2009, 2012): mu1 = sigma(c1 + 2 W1^T v) (the
        bottom-up input doubled in place of the top-down input not yet known), mu2 = sigma(c2 + W2^T mu1); then up
        to ``n_iter`` rounds. ``tol`` is a rule for the whole batch: stop after the first round in which no mu of
        any row moved by more than ``tol``, so ``n_iter`` of the result is the slowest row's count (see
        :meth:`mean_field_rounds` for each row's own); tol=None runs exactly n_iter rounds, with no host
        synchronisation. v: (batch, n_v) in {0, 1}. Returns a :class:`MeanField`.
        """
        v = self._check_v(v)
        n_iter = check_int(n_iter, "n_iter", minimum=0)
        if tol is not None:
            tol = check_positive(tol, "tol")
        with self._threads(len(v)):
            return self._mean_field(v, n_iter, tol)

    def mean_field_rounds(self, v, tol: float = 1e-6, max_iter: int = 1000) -> torch.Tensor:
        """How many mean-field rounds each row of v needs: (batch,) int64.

        Row i's count is the first round after which none of its own mu moved by more than ``tol``, which is what
        ``mean_field(v[i:i+1], tol=tol).n_iter`` reports for that row alone (the rows do not interact). A row
        still moving after ``max_iter`` rounds gets ``max_iter + 1``. Reads a flag every round (a host sync on a
        GPU): a diagnostic, not for training loops.
        """
        v = self._check_v(v)
        tol = check_positive(tol, "tol")
        max_iter = check_int(max_iter, "max_iter", minimum=1)
        rounds = torch.full((len(v),), max_iter + 1, dtype=torch.int64, device=v.device)
        with torch.no_grad(), self._threads(len(v)):
            bottom_up = torch.addmm(self.c1, v, self.W1)
            mu1 = torch.sigmoid(torch.addmm(bottom_up, v, self.W1))
            mu2 = torch.sigmoid(torch.addmm(self.c2, mu1, self.W2))
            moving = torch.ones(len(v), dtype=torch.bool, device=v.device)
            for done in range(1, max_iter + 1):
                new1 = torch.sigmoid(torch.addmm(bottom_up, mu2, self.W2.T))
                new2 = torch.sigmoid(torch.addmm(self.c2, new1, self.W2))
                change = torch.maximum((new1 - mu1).abs().amax(1), (new2 - mu2).abs().amax(1))
                mu1, mu2 = new1, new2
                stopped = moving & (change < tol)
                rounds[stopped] = done
                moving &= ~stopped
                if not bool(moving.any()):
                    break
        return rounds

    def _bound(self, v, mu1, mu2) -> torch.Tensor:
        return (v @ self.b + (mu1 * (v @ self.W1 + self.c1)).sum(1) + ((mu1 @ self.W2) * mu2).sum(1) + mu2 @ self.c2
                + _entropy(mu1) + _entropy(mu2))

    def mean_field_bound(self, v, mu1=None, mu2=None) -> torch.Tensor:
        """The variational lower bound on log p*(v) = -F(v) for a factorial q with means mu1, mu2, in float64:

            L(v; mu1, mu2) = b^T v + mu1^T (c1 + W1^T v) + mu1^T W2 mu2 + c2^T mu2 + H(mu1) + H(mu2)
                           = log p*(v) - KL(q || p(h1, h2 | v)) <= log p*(v),

        H(mu) = -sum mu log mu + (1 - mu) log(1 - mu). (E_q[h1^T W2 h2] = mu1^T W2 mu2 because q makes h1 and h2
        independent.) Subtract log Z for a bound on log p(v). v: (batch, n_v); mu1: (batch, n_h1), mu2:
        (batch, n_h2) in [0, 1] (default: :meth:`mean_field`'s fixed point). Returns (batch,).
        """
        v = self._check_v(v)
        if (mu1 is None) != (mu2 is None):
            raise ValueError("pass both mu1 and mu2, or neither (then the mean-field fixed point is used).")
        if mu1 is None:
            mu1, mu2, _, _ = self.mean_field(v)
        mu1 = check_tensor(mu1, "mu1", shape=(len(v), self.n_hidden1), like=self.W1)
        mu2 = check_tensor(mu2, "mu2", shape=(len(v), self.n_hidden2), like=self.W1)
        for name, mu in (("mu1", mu1), ("mu2", mu2)):
            if bool(((mu < 0) | (mu > 1)).any()):
                raise ValueError(f"{name} holds probabilities q(h = 1) and must lie in [0, 1]; got values in "
                                 f"[{float(mu.min()):.3g}, {float(mu.max()):.3g}].")
        d = torch.float64
        W1, W2, b, c1, c2 = (p.to(d) for p in self.parameters())
        v, mu1, mu2 = v.to(d), mu1.to(d), mu2.to(d)
        return (v @ b + (mu1 * (v @ W1 + c1)).sum(1) + ((mu1 @ W2) * mu2).sum(1) + mu2 @ c2
                + _entropy(mu1) + _entropy(mu2))

    def log_likelihood_bound(self, v, log_z: Union[float, AISResult], n_iter: int = 500, tol: float = 1e-7) -> float:
        """The test log-likelihood estimate of Salakhutdinov & Hinton (2009): (1/n) sum_i L(v_i; mu) - log Z.

        L is the mean-field bound on log p*(v) at the fixed point (:meth:`mean_field` with ``n_iter``, ``tol``),
        so with the exact log Z this is a lower bound on the mean log p(v). With an AIS estimate (a float or an
        :class:`~ebm_teach.evaluate.AISResult` from :func:`ais_log_partition_dbm`) it is only an *estimate* of that
        bound: AIS underestimates log Z on average, which pushes the estimate up, possibly above the true mean
        log p(v). v: (n, n_v) binary. Returns a float (nats).
        """
        log_z = log_z.log_z if isinstance(log_z, AISResult) else float(log_z)
        if not math.isfinite(log_z):
            raise ValueError(f"log_z must be finite; got {log_z}.")
        mf = self.mean_field(v, n_iter=n_iter, tol=tol)
        return float(self.mean_field_bound(v, mf.mu1, mf.mu2).mean()) - log_z

    # ----------------------------------------------------------------------------------- exact log Z and log p(v)
    def _enumeration_limit(self, n_enum: int, what: str, max_units: int) -> None:
        if n_enum > max_units:
            raise ValueError(
                f"{what} enumerates 2^{n_enum} states, more than max_units = {max_units} allows "
                f"(layers: n_visible = {self.n_visible}, n_hidden1 = {self.n_hidden1}, n_hidden2 = {self.n_hidden2}). "
                "Estimate log Z with ais_log_partition_dbm and log p(v) with the mean-field bound instead, or raise "
                "max_units if you can wait."
            )

    def log_partition_exact(self, max_units: int = MAX_ENUMERATED_UNITS) -> float:
        """log Z by summing out alternate layers in closed form, in float64; returns a Python float.

        Given h1, v and h2 are independent, so summing them out leaves one sum over h1:

            log Z = logsumexp over h1 of [c1^T h1 + sum_i softplus(b_i + (W1 h1)_i) + sum_k softplus(c2_k + (W2^T h1)_k)],

        2^n_h1 terms. When {v, h2} is the smaller group it is enumerated instead and h1 summed out:
        log Z = logsumexp over (v, h2) of [b^T v + c2^T h2 + sum_j softplus(c1_j + (W1^T v)_j + (W2 h2)_j)].
        Refuses when the enumerated group has more than ``max_units`` (25) units: use :func:`ais_log_partition_dbm`.
        """
        max_units = check_int(max_units, "max_units", minimum=1)
        W1, W2, b, c1, c2 = (p.detach().double() for p in self.parameters())
        n_v, n_h1, n_h2 = self.n_visible, self.n_hidden1, self.n_hidden2
        if n_h1 <= n_v + n_h2:
            self._enumeration_limit(n_h1, "exact log Z (summing out v and h2)", max_units)

            def terms(h1):
                return h1 @ c1 + F_.softplus(h1 @ W1.T + b).sum(1) + F_.softplus(h1 @ W2 + c2).sum(1)

            return float(_enumerated_logsumexp(n_h1, terms, n_v + n_h2, W1))
        self._enumeration_limit(n_v + n_h2, "exact log Z (summing out h1)", max_units)
        Wvh = torch.cat([W1, W2.T], 0)  # the group {v, h2} as one layer coupled to h1
        bias = torch.cat([b, c2])

        def terms(s):
            return s @ bias + F_.softplus(s @ Wvh + c1).sum(1)

        return float(_enumerated_logsumexp(n_v + n_h2, terms, n_h1, W1))

    def free_energy(self, v, max_units: int = MAX_ENUMERATED_UNITS) -> torch.Tensor:
        """F(v) = -log p*(v) = -log sum over (h1, h2) of exp(-E(v, h1, h2)), exactly, in float64: (batch,).

        Summing out h2 given h1 (or h1 given v and h2) leaves one enumeration, over the smaller hidden layer:
          over h1: -F(v) = b^T v + logsumexp_h1 [h1^T (c1 + W1^T v) + sum_k softplus(c2_k + (W2^T h1)_k)],
          over h2: -F(v) = b^T v + logsumexp_h2 [c2^T h2 + sum_j softplus(c1_j + (W1^T v)_j + (W2 h2)_j)].
        Refuses above ``max_units`` units in the smaller hidden layer.
        """
        v = self._check_v(v)
        max_units = check_int(max_units, "max_units", minimum=1)
        W1, W2, b, c1, c2 = (p.detach().double() for p in self.parameters())
        v = v.double()
        a1 = v @ W1 + c1  # (batch, n_h1)
        if self.n_hidden1 <= self.n_hidden2:
            self._enumeration_limit(self.n_hidden1, "the exact free energy (enumerating h1)", max_units)

            def terms(h1):  # (batch, S)
                return a1 @ h1.T + F_.softplus(h1 @ W2 + c2).sum(1)

            inner = _enumerated_logsumexp(self.n_hidden1, terms, len(v) + self.n_hidden2, W1)
        else:
            self._enumeration_limit(self.n_hidden2, "the exact free energy (enumerating h2)", max_units)

            def terms(h2):  # (batch, S)
                return h2 @ c2 + F_.softplus(a1[:, None, :] + (h2 @ W2.T)[None]).sum(2)

            inner = _enumerated_logsumexp(self.n_hidden2, terms, max(1, len(v)) * self.n_hidden1, W1)
        return -(v @ b) - inner

    def log_prob_exact(self, v, log_z: Optional[float] = None, max_units: int = MAX_ENUMERATED_UNITS) -> torch.Tensor:
        """log p(v) = -F(v) - log Z for each row of v: (batch,) float64 tensor, exact (see :meth:`free_energy`
        and :meth:`log_partition_exact`). Pass ``log_z`` to reuse it."""
        free = self.free_energy(v, max_units)
        if log_z is None:
            log_z = self.log_partition_exact(max_units)
        return -free - float(log_z)

    def log_likelihood_exact(self, v, log_z: Optional[float] = None) -> float:
        """Mean exact log-likelihood (1/n) sum_i log p(v_i), in nats (a float)."""
        return float(self.log_prob_exact(v, log_z).mean())

    # ----------------------------------------------------------------------------------- training
    def gradient(self, v_data, chains: DBMState, k: int = 1, n_mean_field: int = 10,
                 generator: Optional[torch.Generator] = None) -> Tuple[DBMGradient, DBMState]:
        """The Salakhutdinov-Hinton (2009) estimate of the gradient of the mean variational log-likelihood.

        Positive phase: mean field on the data (``n_mean_field`` rounds from the doubled bottom-up start),
        statistics v mu1^T, mu1 mu2^T, v, mu1, mu2. Negative phase: ``k`` block Gibbs sweeps of the persistent
        ``chains`` (M rows), then statistics with h1 replaced by q1 = p(h1 | v, h2) (its expectation given the
        chains' v and h2: same mean, less noise):

            grad W1 = <v mu1^T>_data - <v q1^T>_chains,   grad W2 = <mu1 mu2^T>_data - <q1 h2^T>_chains,
            grad b = <v> - <v>,  grad c1 = <mu1> - <q1>,  grad c2 = <mu2> - <h2>.

        With exact model averages this is the gradient of (1/n) sum L(v; mu1, mu2) - log Z, the bound at the
        mean-field fixed point (the bound's derivative in mu vanishes there). Returns (DBMGradient, new chains).
        """
        v0 = self._check_v(v_data, "v_data")
        k = check_int(k, "k", minimum=1)
        n_mean_field = check_int(n_mean_field, "n_mean_field", minimum=0)
        chains = DBMState(self._check_v(chains[0], "chains.v"),
                          self._check_layer(chains[1], "chains.h1", self.n_hidden1, "hidden units are binary"),
                          self._check_layer(chains[2], "chains.h2", self.n_hidden2, "hidden units are binary"))
        with self._threads(max(len(v0), len(chains.v))):
            return self._gradient(v0, chains, k, n_mean_field, self._gen(generator))

    def _gradient(self, v0, chains: DBMState, k: int, n_mean_field: int, g) -> Tuple[DBMGradient, DBMState]:
        mu1, mu2, _, _ = self._mean_field(v0, n_mean_field, None)
        v, h1, h2 = chains
        for _ in range(k):
            v, h1, h2 = self._gibbs_step(v, h2, g)
        q1 = torch.sigmoid(torch.addmm(torch.addmm(self.c1, v, self.W1), h2, self.W2.T))  # E[h1 | v, h2]
        n, m = len(v0), len(v)
        grad = DBMGradient(
            W1=v0.T @ mu1 / n - v.T @ q1 / m,
            W2=mu1.T @ mu2 / n - q1.T @ h2 / m,
            b=v0.mean(0) - v.mean(0),
            c1=mu1.mean(0) - q1.mean(0),
            c2=mu2.mean(0) - h2.mean(0),
        )
        return grad, DBMState(v, h1, h2)

    def update(self, grad: DBMGradient, step_size: float, weight_decay: float = 0.0) -> None:
        """Gradient ascent in place: theta += step_size (grad - weight_decay theta) for the weights, theta +=
        step_size grad for the biases."""
        step_size = check_positive(step_size, "step_size", hint=_STEP_HINT)
        if not isinstance(grad, tuple) or len(grad) != 5:
            raise TypeError("grad must be a DBMGradient(W1, W2, b, c1, c2), as returned by DBM.gradient.")
        weight_decay = float(weight_decay)
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0; got {weight_decay}.")
        grad = DBMGradient(*(check_tensor(gr, f"grad.{name}", shape=tuple(p.shape), like=p)
                             for name, p, gr in zip(DBMGradient._fields, self.parameters(), grad)))
        self._update(grad, step_size, weight_decay)

    def _update(self, grad: DBMGradient, step_size: float, weight_decay: float) -> None:
        if weight_decay:
            self.W1.mul_(1 - step_size * weight_decay)
            self.W2.mul_(1 - step_size * weight_decay)
        for p, gr in zip(self.parameters(), grad):
            p.add_(gr, alpha=step_size)

    def fit(self, v, n_epochs: int = 10, batch_size: int = 20,
            step_size: Union[float, Callable[[int], float]] = 0.01, n_chains: int = 100, k: int = 1,
            n_mean_field: int = 10, weight_decay: float = 0.0, chains: Optional[DBMState] = None,
            shuffle: bool = True, generator: Optional[torch.Generator] = None,
            callback: Optional[Callable[[int, "DBM"], Optional[dict]]] = None) -> dict:
        """Train by stochastic gradient ascent with mean field for the data and persistent chains for the model.

        The Salakhutdinov-Hinton (2009) recipe: every minibatch of ``batch_size`` rows of v (n, n_v) takes one step
        of :meth:`gradient` (``n_mean_field`` rounds of mean field, ``k`` Gibbs sweeps of the ``n_chains``
        persistent chains, which start at ``chains`` or at fair coins) and :meth:`update`. step_size may be a
        function of the epoch (1, 2, ...). callback(epoch, dbm) may return a dict of numbers, recorded per epoch.
        Returns a history: "epoch", "seconds" (cumulative, callbacks excluded), the callback's keys and
        "chains" (the final DBMState). Raises DivergenceError when a parameter stops being finite.
        """
        n_epochs = check_int(n_epochs, "n_epochs", minimum=0)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        n_chains = check_int(n_chains, "n_chains", minimum=1)
        k = check_int(k, "k", minimum=1)
        n_mean_field = check_int(n_mean_field, "n_mean_field", minimum=0)
        weight_decay = float(weight_decay)
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0; got {weight_decay}.")
        schedule = step_size if callable(step_size) else None
        step_size = check_positive(schedule(1) if schedule else step_size, "step_size", hint=_STEP_HINT)
        v = self._check_v(v)
        g = self._gen(generator)
        if chains is None:
            chains = self.init_chains(n_chains, g)
        else:
            chains = DBMState(self._check_v(chains[0], "chains.v"),
                              self._check_layer(chains[1], "chains.h1", self.n_hidden1, "hidden units are binary"),
                              self._check_layer(chains[2], "chains.h2", self.n_hidden2, "hidden units are binary"))
        history = {"epoch": [], "seconds": []}
        seconds = 0.0
        for epoch in progress(range(1, n_epochs + 1), desc="DBM"):
            if schedule is not None:
                step_size = check_positive(schedule(epoch), f"step_size({epoch})", hint=_STEP_HINT)
            start = time.perf_counter()
            with self._threads(max(batch_size, len(chains.v))):
                order = torch.randperm(len(v), generator=g, device=self.device) if shuffle else None
                data = v[order] if shuffle else v
                for v0 in data.split(batch_size):
                    grad, chains = self._gradient(v0, chains, k, n_mean_field, g)
                    self._update(grad, step_size, weight_decay)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds += time.perf_counter() - start
            if not all(bool(torch.isfinite(p).all()) for p in self.parameters()):
                raise DivergenceError(f"the DBM's parameters became NaN/inf in epoch {epoch}; lower step_size (now "
                                      f"{step_size:g}), add weight_decay, or check the data.")
            history["epoch"].append(epoch)
            history["seconds"].append(seconds)
            if callback is not None:
                for key, value in (callback(epoch, self) or {}).items():
                    history.setdefault(key, []).append(value)
        history["chains"] = chains
        return history


# --------------------------------------------------------------------------------------------- the chapter's versions
def _reference_bernoulli(p: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """1 where u < p, u ~ U(0, 1), drawn unit by unit as the fast code draws them (so both read one stream alike)."""
    u = torch.rand(p.shape[::-1], generator=generator, dtype=p.dtype, device=p.device).T
    return (u < p).to(p.dtype)


def gibbs_sweep_reference(dbm: DBM, v, h2, generator: Optional[torch.Generator] = None):
    """One block Gibbs sweep of a DBM as the chapter writes it; :meth:`DBM.gibbs` is the fast version.

        h1 ~ p(h1 | v, h2) = sigma(c1 + W1^T v + W2 h2),  then  v ~ sigma(b + W1 h1),  h2 ~ sigma(c2 + W2^T h1).

    v: (batch, n_v), h2: (batch, n_h2), 0/1 floats, one example per row (so W1^T v is v @ W1). Returns (v, h1, h2).
    Reads the random stream as DBM.gibbs does: on the same generator state both give the same chains.
    """
    v = dbm._check_v(v)
    h2 = dbm._check_layer(h2, "h2", dbm.n_hidden2, "hidden units are binary")
    W1, W2, b, c1, c2 = dbm.parameters()
    bernoulli = _reference_bernoulli
    h1 = bernoulli(torch.sigmoid(c1 + v @ W1 + h2 @ W2.T), generator)
    v = bernoulli(torch.sigmoid(b + h1 @ W1.T), generator)  # v, h2: independent
    h2 = bernoulli(torch.sigmoid(c2 + h1 @ W2), generator)  # given h1
    return v, h1, h2


def mean_field_reference(dbm: DBM, v, n_iter: int):
    """Mean field for p(h1, h2 | v) as the chapter writes it: (mu1, mu2) after ``n_iter`` rounds.

    Start with the bottom-up input doubled (it stands in for the top-down input, not yet known), then alternate
    the two exact layer-wise maximisers of the bound. :meth:`DBM.mean_field` is the fast version (tested equal).
    """
    v, n_iter = dbm._check_v(v), check_int(n_iter, "n_iter", minimum=0)
    W1, W2, b, c1, c2 = dbm.parameters()
    mu1 = torch.sigmoid(c1 + 2 * (v @ W1))  # start: bottom-up input doubled
    mu2 = torch.sigmoid(c2 + mu1 @ W2)
    for _ in range(n_iter):
        mu1 = torch.sigmoid(c1 + v @ W1 + mu2 @ W2.T)  # the best mu1 given mu2
        mu2 = torch.sigmoid(c2 + mu1 @ W2)  # the best mu2 given the new mu1
    return mu1, mu2


def gradient_reference(dbm: DBM, v_data, chains: DBMState, n_mean_field: int = 5,
                       generator: Optional[torch.Generator] = None) -> Tuple[DBMGradient, DBMState]:
    """The Salakhutdinov-Hinton gradient estimate as the chapter writes it (one Gibbs sweep of the chains).

    Data term: mean field on the minibatch. Model term: the persistent chains after one sweep, with h1 replaced
    by q1 = E[h1 | v, h2] = p(h1 = 1 | v, h2), which has the same average as the sampled h1 and less noise.
    :meth:`DBM.gradient` (k = 1) is the fast version, tested equal on the same random stream.
    """
    v_data = dbm._check_v(v_data, "v_data")
    W1, W2, b, c1, c2 = dbm.parameters()
    mu1, mu2 = mean_field_reference(dbm, v_data, n_mean_field)  # data term
    v, h1, h2 = gibbs_sweep_reference(dbm, chains[0], chains[2], generator)
    q1 = torch.sigmoid(c1 + v @ W1 + h2 @ W2.T)  # E[h1 | v, h2], per chain
    n, m = len(v_data), len(v)
    grad = DBMGradient(W1=v_data.T @ mu1 / n - v.T @ q1 / m,  # <v h1^T>
                       W2=mu1.T @ mu2 / n - q1.T @ h2 / m,  # <h1 h2^T>
                       b=v_data.mean(0) - v.mean(0),
                       c1=mu1.mean(0) - q1.mean(0),
                       c2=mu2.mean(0) - h2.mean(0))
    return grad, DBMState(v, h1, h2)


# --------------------------------------------------------------------------------------------- pre-training
class PretrainedDBM(NamedTuple):
    """What :func:`pretrain_dbm` built: the composed DBM and the two doubled RBMs it came from.

    rbm1: BernoulliRBM(2 n_v, n_h1) whose two visible halves share W1 and b (the doubled input);
    rbm2: BernoulliRBM(n_h1, 2 n_h2) whose two hidden halves share W2 and c2 (the doubled hidden layer).
    """

    dbm: DBM
    rbm1: BernoulliRBM
    rbm2: BernoulliRBM


def _tied_pcd_epochs(W, b, c, batches, n_epochs: int, step_size, k: int, g, desc: str, doubled: str,
                     chains: Optional[torch.Tensor]) -> None:
    """(P)CD-k on a doubled RBM held as one half: ``doubled`` = "visible" (RBM 1: visible (x, x') sharing W
    (n_v, n_h) and b) or "hidden" (RBM 2: hidden (h, h') sharing W (n_v, n_h) and c). Updates W, b, c in place.

    The doubled RBM's tied parameter is shared by both halves, so its gradient is the sum of the halves'; we step
    along their mean (the scale of an untied RBM). The statistics are those of BernoulliRBM.cd_gradient on the
    doubled RBM, with its random draws (test_dbm checks both give the same updates); written on one half, with
    no per-call validation, because pre-training makes thousands of tiny updates. ``batches(epoch)`` yields the
    visible minibatches (for RBM 1 undoubled: a row v stands for (v, v)); ``chains`` (m, doubled visible width)
    are persistent chains, or None for CD-k from the data.
    """
    n_v = W.shape[0]

    def hidden_probs(x):  # p(h = 1 | visible) of the doubled RBM, x: its visible rows
        if doubled == "visible":
            return torch.sigmoid(c + (x[:, :n_v] + x[:, n_v:]) @ W)
        p = torch.sigmoid(c + x @ W)
        return torch.cat([p, p], 1)

    def visible_probs(h):  # p(v = 1 | h) of the doubled RBM, h: its hidden rows
        if doubled == "visible":
            p = torch.sigmoid(b + h @ W.T)
            return torch.cat([p, p], 1)
        return torch.sigmoid(b + (h[:, :W.shape[1]] + h[:, W.shape[1]:]) @ W.T)

    def statistics(x, p):  # (mean over rows of the halves' x p^T, x, p): the tied parameters' averages
        n_h = W.shape[1]
        if doubled == "visible":
            xs = (x[:, :n_v] + x[:, n_v:]) / 2
            return xs.T @ p / len(x), xs.mean(0), p.mean(0)
        ps = (p[:, :n_h] + p[:, n_h:]) / 2
        return x.T @ ps / len(x), x.mean(0), ps.mean(0)

    for epoch in progress(range(1, n_epochs + 1), desc=desc):
        eps = step_size(epoch) if callable(step_size) else step_size
        for v0 in batches(epoch):
            if doubled == "visible":
                v0 = torch.cat([v0, v0], 1)
            p0 = hidden_probs(v0)
            vk = v0 if chains is None else chains
            for step in range(k):
                ph = p0 if (step == 0 and chains is None) else hidden_probs(vk)
                vk = _bernoulli(visible_probs(_bernoulli(ph, g)), g)
            if chains is not None:
                chains = vk  # persistent chains continue where they stopped
            (pos_W, pos_b, pos_c), (neg_W, neg_b, neg_c) = statistics(v0, p0), statistics(vk, hidden_probs(vk))
            W.add_(pos_W - neg_W, alpha=eps)
            b.add_(pos_b - neg_b, alpha=eps)
            c.add_(pos_c - neg_c, alpha=eps)
        if not all(bool(torch.isfinite(t).all()) for t in (W, b, c)):
            raise DivergenceError(f"pre-training ({desc}) diverged in epoch {epoch}; lower step_size.")


def pretrain_dbm(v, n_hidden1: int, n_hidden2: int, n_epochs: int = 20, batch_size: int = 20,
                 step_size: Union[float, Callable[[int], float]] = 0.05, k: int = 1, persistent: bool = False,
                 n_chains: int = 100, init_std: float = 0.01, generator: Optional[torch.Generator] = None,
                 seed: Optional[int] = None) -> PretrainedDBM:
    """Greedy layer-wise pre-training of a two-layer DBM from two RBMs (Salakhutdinov & Hinton, 2009, sec. 3.1).

    In the DBM, h1 hears both neighbours: p(h1_j = 1 | v, h2) = sigma(c1_j + (W1^T v)_j + (W2 h2)_j). Each RBM of
    a plain stack would give h1 its whole input from one side, so the composed model would count it twice.
    The correction doubles one side of each RBM, with tied weights:

    - RBM 1 sees the data twice: visible units (v, v') with the same W1 and b, trained by (P)CD-k on rows (v, v).
      So p(h1 | v, v) = sigma(c1' + 2 W1^T v) and p(v_i = 1 | h1) = sigma(b_i + (W1 h1)_i) for each copy.
    - RBM 2 has visible units h1 and two tied copies (h2, h2') of the top layer, same W2 and c2, trained by
      (P)CD-k on h1 ~ p(h1 | v, v) of RBM 1 (a fresh sample for every minibatch). So
      p(h1 | h2, h2') = sigma(c1'' + W2 (h2 + h2')) and p(h2_k = 1 | h1) = sigma(c2_k + (W2^T h1)_k).
    - The DBM takes W1, b from RBM 1, W2, c2 from RBM 2 and c1 = (c1' + c1'') / 2: with h2' = h2, the DBM's
      input to h1, c1 + W1^T v + W2 h2, is exactly the average of RBM 1's input c1' + 2 W1^T v and RBM 2's
      input c1'' + 2 W2 h2. Each module supplies half.

    Both RBMs are :class:`~ebm_teach.rbm.BernoulliRBM`\\s trained with their own ``cd_gradient``; the tied halves
    share one step, the mean of the halves' gradients, so they stay equal. v: (n, n_v) binary data.
    Returns a :class:`PretrainedDBM` (dbm, rbm1, rbm2). Each RBM runs ``n_epochs`` epochs of minibatches of
    ``batch_size``, shuffled each epoch, with ``step_size`` (a number or a function of the epoch), CD-k, or PCD-k
    with ``n_chains`` persistent chains (started at fair coins) when ``persistent``.
    """
    v = check_binary(check_tensor(v, "v", ndim=2), "v", hint=_BINARY_HINT)
    n_hidden1 = check_int(n_hidden1, "n_hidden1", minimum=1)
    n_hidden2 = check_int(n_hidden2, "n_hidden2", minimum=1)
    n_epochs = check_int(n_epochs, "n_epochs", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    k = check_int(k, "k", minimum=1)
    n_chains = check_int(n_chains, "n_chains", minimum=1)
    if not callable(step_size):
        check_positive(step_size, "step_size", hint=_STEP_HINT)
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both.")
    g = make_generator(seed, v.device) if seed is not None else generator
    n_v, device, dtype = v.shape[1], v.device, v.dtype

    init = BernoulliRBM(n_v, n_hidden1, device=device, generator=g, dtype=dtype, init_std=init_std)
    W1, b, c1_rbm1 = init.W.clone(), init.b.clone(), init.c.clone()

    def batches1(epoch):
        return v[torch.randperm(len(v), generator=g, device=device)].split(batch_size)

    with single_thread_if_small(batch_size * 2 * n_v * n_hidden1, SINGLE_THREAD_BELOW, device):
        chains = _bernoulli(torch.full((n_chains, 2 * n_v), 0.5, device=device, dtype=dtype), g) if persistent else None
        _tied_pcd_epochs(W1, b, c1_rbm1, batches1, n_epochs, step_size, k, g, "RBM 1 (doubled input)", "visible",
                         chains)

    init = BernoulliRBM(n_hidden1, n_hidden2, device=device, generator=g, dtype=dtype, init_std=init_std)
    W2, c1_rbm2, c2 = init.W.clone(), init.b.clone(), init.c.clone()

    def batches2(epoch):  # h1 ~ p(h1 | v, v) of RBM 1, a fresh sample for every minibatch
        for v0 in batches1(epoch):
            yield _bernoulli(torch.sigmoid(c1_rbm1 + 2 * (v0 @ W1)), g)

    with single_thread_if_small(batch_size * n_hidden1 * 2 * n_hidden2, SINGLE_THREAD_BELOW, device):
        chains = _bernoulli(torch.full((n_chains, n_hidden1), 0.5, device=device, dtype=dtype), g) if persistent else None
        _tied_pcd_epochs(W2, c1_rbm2, c2, batches2, n_epochs, step_size, k, g, "RBM 2 (doubled top)", "hidden", chains)

    rbm1 = BernoulliRBM.from_arrays(W1.repeat(2, 1), b.repeat(2), c1_rbm1, generator=g)
    rbm2 = BernoulliRBM.from_arrays(W2.repeat(1, 2), c1_rbm2, c2.repeat(2), generator=g)
    dbm = DBM.from_arrays(W1, W2, b, (c1_rbm1 + c1_rbm2) / 2, c2, generator=g)
    return PretrainedDBM(dbm, rbm1, rbm2)


# --------------------------------------------------------------------------------------------- AIS
def _ais_log_p_star(h1, beta: float, W1, W2, b, b_A, c1, c2) -> torch.Tensor:
    """log p*_beta(h1) with v and h2 summed out, float64: (M,).

    p_beta is the DBM with couplings beta W1, beta W2 and biases (1 - beta) b_A + beta b, beta c1, beta c2, so
    log p*_beta(h1) = beta c1^T h1 + sum_i softplus((1 - beta) b_A,i + beta (b + W1 h1)_i)
                      + sum_k softplus(beta (c2 + W2^T h1)_k).
    """
    return (beta * (h1 @ c1) + F_.softplus((1 - beta) * b_A + beta * (h1 @ W1.T + b)).sum(1)
            + F_.softplus(beta * (h1 @ W2 + c2)).sum(1))


def _ais_transition(h1, beta: float, W1, W2, b, b_A, c1, c2, g) -> torch.Tensor:
    """One move h1 -> h1' that leaves p_beta(h1) invariant: {v, h2} ~ p_beta(v, h2 | h1), then h1' ~ p_beta(h1 | v, h2).

    It is a block Gibbs sweep of the joint p_beta(v, h1, h2), which leaves the joint, and so its h1-marginal,
    invariant: v_i ~ sigma((1 - beta) b_A,i + beta (b + W1 h1)_i), h2_k ~ sigma(beta (c2 + W2^T h1)_k),
    h1_j ~ sigma(beta (c1 + W1^T v + W2 h2)_j).
    """
    v = _bernoulli(torch.sigmoid((1 - beta) * b_A + beta * (h1 @ W1.T + b)), g)
    h2 = _bernoulli(torch.sigmoid(beta * (h1 @ W2 + c2)), g)
    return _bernoulli(torch.sigmoid(beta * (v @ W1 + h2 @ W2.T + c1)), g)


def ais_log_partition_dbm(dbm: DBM, n_chains: int = 100, n_betas: int = AIS_STANDARD_N_BETAS, betas=None,
                          base: Union[str, torch.Tensor] = "uniform", generator: Optional[torch.Generator] = None,
                          seed: Optional[int] = None) -> AISResult:
    """Estimate log Z of a two-layer DBM by annealed importance sampling on h1, with v and h2 summed out.

    Salakhutdinov & Hinton (2009), sec. 3.3: because v and h2 sum out in closed form given h1, AIS runs on the
    state space of h1 alone. The path mixes energies, E_beta = beta E + (1 - beta) E_A, from the base DBM E_A with
    no couplings and visible biases b_A (beta = 0: v ~ Bernoulli(sigma(b_A)), h1 and h2 fair coins,
    log Z_A = sum_i softplus(b_A,i) + (n_h1 + n_h2) log 2) to the DBM (beta = 1). Each p_beta is itself a DBM, with

        log p*_beta(h1) = beta c1^T h1 + sum_i softplus((1 - beta) b_A,i + beta (b + W1 h1)_i)
                          + sum_k softplus(beta (c2 + W2^T h1)_k),

    and its block Gibbs sweep h1 -> {v, h2} -> h1' leaves p_beta(h1) invariant. Each of the M chains draws h1
    from the base, then for k = 1..K: log w += log p*_beta_k(h1) - log p*_beta_(k-1)(h1), then one sweep at
    beta_k. E[w] = Z / Z_A, so log Z^ = log Z_A + log mean(w) is a stochastic lower bound on log Z.

    dbm: a :class:`DBM` (runs on its device, vectorised over the chains). n_chains: M. n_betas: K (the
    Salakhutdinov-Murray schedule scaled to K, see ebm_teach.evaluate.ais_betas) unless ``betas`` (0 = beta_0 < ...
    < beta_K = 1) is given. base: "uniform" (b_A = 0), a (n_v,) vector b_A, or binary training data (n, n_v)
    whose base rates give b_A. generator (on the DBM's device) or seed: the randomness.
    Returns an :class:`~ebm_teach.evaluate.AISResult` (log_z, std_error, ESS, log_weights ...).
    """
    if not isinstance(dbm, DBM):
        raise TypeError(f"dbm must be a DBM; got {type(dbm).__name__}.")
    M = check_int(n_chains, "n_chains", minimum=1)
    beta = ais_schedule(n_betas, betas)
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both.")
    g = make_generator(seed, dbm.device) if seed is not None else dbm._gen(generator)
    W1, W2, b, c1, c2 = (p.detach() for p in dbm.parameters())
    b_A = ais_base_bias(base, dbm.n_visible, W1)
    log_z_base = float(F_.softplus(b_A.double()).sum()) + (dbm.n_hidden1 + dbm.n_hidden2) * math.log(2.0)
    params = (W1, W2, b, b_A, c1, c2)
    params64 = tuple(p.double() for p in params)
    with torch.no_grad(), dbm._threads(M):
        h1 = _bernoulli(torch.full((M, dbm.n_hidden1), 0.5, device=dbm.device, dtype=dbm.dtype), g)
        log_w = torch.zeros(M, device=dbm.device, dtype=torch.float64)
        W1_64, W2_64, b_64, b_A64, c1_64, c2_64 = params64
        for k in range(1, len(beta)):
            h64 = h1.double()
            # log p*_beta(h1) at beta_k and beta_(k-1) (see _ais_log_p_star), sharing h1's products
            into_v, into_h2, linear = torch.addmm(b_64, h64, W1_64.T), torch.addmm(c2_64, h64, W2_64), h64 @ c1_64
            log_w += ((beta[k] - beta[k - 1]) * linear
                      + F_.softplus((1 - beta[k]) * b_A64 + beta[k] * into_v).sum(1)
                      - F_.softplus((1 - beta[k - 1]) * b_A64 + beta[k - 1] * into_v).sum(1)
                      + F_.softplus(beta[k] * into_h2).sum(1) - F_.softplus(beta[k - 1] * into_h2).sum(1))
            if k < len(beta) - 1:
                h1 = _ais_transition(h1, beta[k], *params, g)
    if not bool(torch.isfinite(log_w).all()):
        raise ValueError("AIS produced NaN/inf log-weights; check that the DBM's parameters are finite and moderate.")
    return ais_result(log_w, log_z_base)


def ais_dbm_reference(dbm: DBM, betas, b_A, n_chains: int, generator: Optional[torch.Generator] = None):
    """AIS on h1 for a DBM as the chapter writes it; :func:`ais_log_partition_dbm` is the fast version.

    betas: 0 = beta_0 < ... < beta_K = 1 (a list); b_A: (n_v,) the base's visible biases. Returns (log Z^, log w:
    (n_chains,) float64). On the same generator state it gives the same chains and weights as the fast version.
    """
    b_A = check_tensor(b_A, "b_A", shape=(dbm.n_visible,), like=dbm.W1)
    n_chains = check_int(n_chains, "n_chains", minimum=1)
    betas = ais_schedule(None, betas)
    W1, W2, b, c1, c2 = dbm.parameters()
    n1, n2, bernoulli = dbm.n_hidden1, dbm.n_hidden2, _reference_bernoulli

    def log_p_star(h1, beta):  # v, h2 summed out; float64: tiny steps in beta
        h, w1, w2 = h1.double(), W1.double(), W2.double()
        into_v = (1 - beta) * b_A.double() + beta * (h @ w1.T + b.double())
        return (beta * (h @ c1.double()) + F_.softplus(into_v).sum(1)
                + F_.softplus(beta * (h @ w2 + c2.double())).sum(1))

    h1 = bernoulli(torch.full((n_chains, n1), 0.5).to(W1), generator)  # base
    log_w = torch.zeros(n_chains, dtype=torch.float64, device=W1.device)
    for k in range(1, len(betas)):
        beta, before = betas[k], betas[k - 1]
        log_w += log_p_star(h1, beta) - log_p_star(h1, before)  # p*_k / p*_k-1
        if k < len(betas) - 1:  # Gibbs at beta: {v, h2} | h1, then h1 | {v, h2}
            p_v = torch.sigmoid((1 - beta) * b_A + beta * (h1 @ W1.T + b))
            v = bernoulli(p_v, generator)
            h2 = bernoulli(torch.sigmoid(beta * (h1 @ W2 + c2)), generator)
            p_h1 = torch.sigmoid(beta * (v @ W1 + h2 @ W2.T + c1))
            h1 = bernoulli(p_h1, generator)
    log_z_base = F_.softplus(b_A.double()).sum().item()  # the base: pixels,
    log_z_base += (n1 + n2) * math.log(2)  # then fair coins
    return log_z_base + float(log_mean_exp(log_w)), log_w


# --------------------------------------------------------------------------------------------- DBN
class DBN:
    """A deep belief network: a stack of :class:`~ebm_teach.rbm.BernoulliRBM`\\s, rbms[0] at the bottom.

    Generative model (Hinton, Osindero & Teh, 2006): the top RBM (rbms[-1]) is an undirected model of the top
    two layers, and every lower RBM contributes only its directed conditional p(h_(l-1) | h_l). For two layers,

        p(v, h1) = p1(v | h1) p_top(h1),   p1(v_i = 1 | h1) = sigma(b_i + (W1 h1)_i),   p_top(h1) = exp(-F_top(h1)) / Z_top.

    Inference uses the first RBM's factorial posterior q(h1 | v) = p1(h1 | v), exact for the RBM but only an
    approximation of the DBN's posterior p(h1 | v) ~ p1(v | h1) p_top(h1).
    rbms: a list of BernoulliRBMs with rbms[l].n_hidden == rbms[l+1].n_visible.
    """

    def __init__(self, rbms: Sequence[BernoulliRBM]):
        rbms = list(rbms)
        if not rbms or not all(isinstance(r, BernoulliRBM) for r in rbms):
            raise TypeError("rbms must be a non-empty list of BernoulliRBMs, the bottom one first.")
        for i, (lower, upper) in enumerate(zip(rbms, rbms[1:])):
            if lower.n_hidden != upper.n_visible:
                raise ValueError(f"rbms[{i}] has {lower.n_hidden} hidden units but rbms[{i + 1}] has "
                                 f"{upper.n_visible} visible units; each RBM's visible layer is the hidden layer below.")
            if lower.device != upper.device:
                raise ValueError(f"rbms[{i}] is on {lower.device} but rbms[{i + 1}] on {upper.device}; put them on one device.")
        self.rbms = rbms

    @property
    def n_layers(self) -> int:
        return len(self.rbms)

    @property
    def n_visible(self) -> int:
        return self.rbms[0].n_visible

    @property
    def n_parameters(self) -> int:
        """Parameters of the generative model: every W, the visible bias of each directed layer, and the top
        RBM's two biases (the hidden biases of the lower RBMs only serve inference)."""
        lower = sum(r.W.numel() + r.n_visible for r in self.rbms[:-1])
        top = self.rbms[-1]
        return lower + top.W.numel() + top.n_visible + top.n_hidden

    def __repr__(self) -> str:
        sizes = [self.rbms[0].n_visible] + [r.n_hidden for r in self.rbms]
        return f"DBN(layers={sizes}, device={self.rbms[0].device})"

    @classmethod
    def greedy(cls, v, hidden_sizes: Sequence[int], n_epochs: int = 20, batch_size: int = 20,
               step_size: Union[float, Callable[[int], float]] = 0.05, k: int = 1, persistent: bool = False,
               samples_per_example: int = 1, init_std: float = 0.01, generator: Optional[torch.Generator] = None,
               seed: Optional[int] = None, callback: Optional[Callable] = None) -> "DBN":
        """Greedy layer-wise training (Hinton, Osindero & Teh, 2006): fit an RBM to v, then an RBM to samples of
        its hidden layer h1 ~ p1(h1 | v), and so on up the stack.

        v: (n, n_v) binary data. hidden_sizes: the width of each hidden layer, bottom first. Each RBM is trained
        with :meth:`BernoulliRBM.fit` (``n_epochs``, ``batch_size``, ``step_size``, ``k``, ``persistent``); the
        layer above sees ``samples_per_example`` samples of h per data row. callback(layer, epoch, rbm) is passed
        to fit as fit's callback for each layer.
        """
        v = check_binary(check_tensor(v, "v", ndim=2), "v", hint=_BINARY_HINT)
        if isinstance(hidden_sizes, int) or not hidden_sizes:
            raise ValueError(f"hidden_sizes must be a non-empty list of layer widths, e.g. [16, 16]; got {hidden_sizes!r}.")
        sizes = [check_int(n, f"hidden_sizes[{i}]", minimum=1) for i, n in enumerate(hidden_sizes)]
        samples_per_example = check_int(samples_per_example, "samples_per_example", minimum=1)
        if generator is not None and seed is not None:
            raise ValueError("pass either generator or seed, not both.")
        g = make_generator(seed, v.device) if seed is not None else generator
        rbms, data = [], v
        for layer, n_hidden in enumerate(sizes):
            rbm = BernoulliRBM(data.shape[1], n_hidden, device=v.device, generator=g, dtype=v.dtype, init_std=init_std)
            cb = None if callback is None else (lambda epoch, model, layer=layer: callback(layer, epoch, model))
            rbm.fit(data, n_epochs=n_epochs, batch_size=batch_size, step_size=step_size, k=k, persistent=persistent,
                    generator=g, callback=cb)
            rbms.append(rbm)
            if layer < len(sizes) - 1:
                data = rbm.sample_h_given_v(data.repeat(samples_per_example, 1), generator=g)
        return cls(rbms)

    def sample(self, n: int, n_gibbs: int = 1000, generator: Optional[torch.Generator] = None,
               probabilities: bool = False) -> torch.Tensor:
        """Ancestral sampling: ``n_gibbs`` block Gibbs steps in the top RBM (from fair coins), then one directed pass
        down, h_(l-1) ~ p_l(h_(l-1) | h_l), to v. Returns v: (n, n_v), 0/1 samples, or with ``probabilities`` the
        last layer's p(v = 1 | h1) (less noisy to look at)."""
        n = check_int(n, "n", minimum=1)
        n_gibbs = check_int(n_gibbs, "n_gibbs", minimum=0)
        top = self.rbms[-1]
        g = generator if generator is not None else top.generator
        coins = torch.full((n, top.n_visible), 0.5).to(top.theta)
        h = top.gibbs(_bernoulli(coins, g), n_gibbs, generator=g)  # top RBM
        if self.n_layers == 1:  # h is v itself
            h1 = top.sample_h_given_v(h, generator=g)
            return top.p_v_given_h(h1) if probabilities else h
        for rbm in reversed(self.rbms[1:-1]):  # directed, layer by layer
            h = rbm.sample_v_given_h(h, generator=g)
        bottom = self.rbms[0]
        if probabilities:
            return bottom.p_v_given_h(h)
        return bottom.sample_v_given_h(h, generator=g)

    # ----------------------------------------------------------------------------------- exact quantities (2 layers)
    def _two_layers(self, what: str, max_units: int) -> Tuple[BernoulliRBM, BernoulliRBM]:
        if self.n_layers != 2:
            raise ValueError(f"{what} is implemented for a two-layer DBN (two RBMs); this one has {self.n_layers}.")
        rbm1, top = self.rbms
        max_units = check_int(max_units, "max_units", minimum=1)
        if rbm1.n_hidden > max_units:
            raise ValueError(f"{what} enumerates the 2^{rbm1.n_hidden} states of h1, more than max_units = {max_units} "
                             "allows; use fewer units in the first hidden layer or raise max_units if you can wait.")
        return rbm1, top

    def _terms(self, v, what: str, max_units: int, log_z_top: Optional[float]):
        """(v in float64, -F1(v), q's logits c + W^T v, r(h1) = log p_top(h1) - log p1*(h1) on every state)."""
        rbm1, top = self._two_layers(what, max_units)
        v = rbm1._check_v(v).double()
        W, b, c = rbm1.W.double(), rbm1.b.double(), rbm1.c.double()
        logits = v @ W + c
        neg_free_energy = v @ b + F_.softplus(logits).sum(1)
        log_p_top = visible_log_probs(top, max_units=max_units, log_z=log_z_top)
        log_p1_star = _visible_log_marginal(W.T, c, b)  # the first RBM's hidden marginal, unnormalised
        return v, neg_free_energy, logits, log_p_top - log_p1_star

    def variational_bound(self, v, max_units: int = 20, log_z_top: Optional[float] = None) -> torch.Tensor:
        """The lower bound on log p(v) of a two-layer DBN with q(h1 | v) = p1(h1 | v), exactly, float64: (batch,).

            B(v) = sum_h1 q(h1 | v) [log p1(v | h1) + log p_top(h1)] + H(q) = log p(v) - KL(q || p(h1 | v)).

        Because q is the first RBM's exact posterior, Bayes' rule log p1(v | h1) = log q(h1 | v) + log p1(v) -
        log p1(h1) turns it into B(v) = log p1(v) + E_q[log p_top(h1) - log p1(h1)]: the first RBM's
        log-likelihood plus the top RBM's log-probability ratio over the first RBM's own hidden marginal p1(h1),
        averaged over q. That is how it is computed (log Z of the first RBM cancels). So B(v) = log p(v) for every v
        exactly when p_top(h1) = p1(h1) (e.g. the top RBM is the first one turned upside down, :func:`upside_down`),
        and the average of B over a data set changes with the top RBM only through sum_h1 A(h1) log p_top(h1),
        A = :meth:`aggregate_posterior` (Hinton, Osindero & Teh, 2006). The expectation over the 2^n_h1 states is
        one matrix product (q factorises over the two halves of h1). max_units: the largest first hidden layer
        enumerated (20 by default, below the DBM's 25: every row of v needs its own sum over h1). log_z_top: the top
        RBM's log Z, if known (else computed exactly).
        """
        v, neg_free_energy, logits, r = self._terms(v, "the variational bound of a DBN", max_units, log_z_top)
        return neg_free_energy + _factorial_expectation(logits, r)

    def log_prob_exact(self, v, max_units: int = 20, log_z_top: Optional[float] = None) -> torch.Tensor:
        """log p(v) = log sum_h1 p1(v | h1) p_top(h1) of a two-layer DBN, exactly, float64: (batch,).

        Computed as log p1(v) + log E_q[p_top(h1) / p1(h1)] with q = p1(h1 | v) (Bayes' rule, as in
        :meth:`variational_bound`; Jensen's inequality on this form gives the bound). Falls back to a sum over h1
        in the log domain if a product underflows. max_units, log_z_top: as in :meth:`variational_bound`.
        """
        v, neg_free_energy, logits, r = self._terms(v, "the exact log p(v) of a DBN", max_units, log_z_top)
        shift = r.max()
        mean_ratio = _factorial_expectation(logits, torch.exp(r - shift))
        if bool((mean_ratio > 0).all()) and bool(torch.isfinite(mean_ratio).all()):
            return neg_free_energy + shift + torch.log(mean_ratio)
        log_q_norm = F_.softplus(logits).sum(1, keepdim=True)  # the log domain, in chunks of states

        def log_terms(h1):  # log q(h1 | v) + r(h1), (batch, S)
            return logits @ h1.T - log_q_norm + r[_state_index(h1)]

        return neg_free_energy + _enumerated_logsumexp(logits.shape[1], log_terms, max(1, len(v)) + 1, logits)

    def aggregate_posterior(self, v, max_units: int = 20) -> torch.Tensor:
        """A(h1) = (1/n) sum_i q(h1 | v_i), the first RBM's posterior averaged over the rows of v: (2^n_h1,) float64,
        over :func:`binary_states` order.

        It is the distribution of the samples h1 ~ q(h1 | v) that greedy training gives the top RBM, and the average
        bound over v is (1/n) sum_i log p1(v_i) + sum_h1 A(h1) [log p_top(h1) - log p1(h1)] (see
        :meth:`variational_bound`). Also defined for a one-layer DBN (rbms[0] alone).
        """
        rbm1 = self.rbms[0]
        max_units = check_int(max_units, "max_units", minimum=1)
        if rbm1.n_hidden > max_units:
            raise ValueError(f"the aggregate posterior has 2^{rbm1.n_hidden} states, more than max_units = "
                             f"{max_units} allows; use fewer units in the first hidden layer.")
        v = rbm1._check_v(v).double()
        if len(v) == 0:
            raise ValueError("v is empty; pass the data (n, n_visible) whose posteriors to average.")
        q_lo, q_hi = _half_posteriors(v @ rbm1.W.double() + rbm1.c.double())
        return (q_hi.T @ q_lo / len(v)).reshape(-1)


# --------------------------------------------------------------------------------------------- enumerated RBMs
def binary_states(n: int, device=None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """All 2^n binary vectors as rows, (2^n, n): unit j is bit j of the row index (unit 0 the least significant).

    Every vector over enumerated states in this module (A(h1), log p(v) of all states, fitted targets) uses this
    order. n <= 25.
    """
    n = check_int(n, "n", minimum=0)
    if n > MAX_ENUMERATED_UNITS:
        raise ValueError(f"2^{n} states is more than this module enumerates (n <= {MAX_ENUMERATED_UNITS}).")
    return _binary_states(0, 2**n, n, torch.device(device) if device is not None else torch.device("cpu"), dtype)


def _state_index(states: torch.Tensor) -> torch.Tensor:
    """The row index in binary_states order of each binary row: sum_j s_j 2^j."""
    return (states.long() << torch.arange(states.shape[1], device=states.device)).sum(1)


def _half_posteriors(logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """For q(h) = prod_j sigma(a_j)^h_j (1 - sigma(a_j))^(1 - h_j) with logits a (batch, n): the probabilities of
    every state of the low n // 2 units and of the high n - n // 2 units, (batch, 2^lo) and (batch, 2^hi)."""
    lo = logits.shape[1] // 2

    def probs(a):
        s = _binary_states(0, 2 ** a.shape[1], a.shape[1], a.device, a.dtype)
        return torch.exp(F_.logsigmoid(a) @ s.T + F_.logsigmoid(-a) @ (1 - s).T)

    return probs(logits[:, :lo]), probs(logits[:, lo:])


def _factorial_expectation(logits: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """E_q[f(h)] for each row of logits (batch, n), f given on all 2^n states in binary_states order: (batch,).

    q factorises over the low and high halves of h, so sum_h q(h) f(h) = sum_hi q_hi(hi) sum_lo f(hi, lo) q_lo(lo):
    one (batch, 2^hi) x (2^hi, 2^lo) product instead of a (batch, 2^n) table.
    """
    q_lo, q_hi = _half_posteriors(logits)
    return ((q_hi @ values.reshape(q_hi.shape[1], q_lo.shape[1])) * q_lo).sum(1)


def _visible_log_marginal(W, b, c) -> torch.Tensor:
    """log p*(v) = b^T v + sum_j softplus(c_j + (W^T v)_j) of the RBM (W, b, c) for all 2^n_v states, float64."""
    n_v = W.shape[0]
    chunk = max(1, _CHUNK // max(1, W.shape[1]))
    out = []
    for start in range(0, 2**n_v, chunk):
        s = _binary_states(start, min(start + chunk, 2**n_v), n_v, W.device, torch.float64)
        out.append(s @ b + F_.softplus(s @ W + c).sum(1))
    return torch.cat(out)


def upside_down(rbm: BernoulliRBM) -> BernoulliRBM:
    """The RBM turned upside down: weights W^T, visible bias c, hidden bias b (a new RBM, same device and dtype).

    Its visible layer is the original hidden layer, and its marginal over it is the original hidden marginal
    p(h): p*(h) = exp(c^T h) prod_i (1 + exp(b_i + (W h)_i)). As the top RBM of a DBN it makes the bound tight.
    """
    if not isinstance(rbm, BernoulliRBM):
        raise TypeError(f"rbm must be a BernoulliRBM; got {type(rbm).__name__}.")
    return BernoulliRBM.from_arrays(rbm.W.T.clone(), rbm.c.clone(), rbm.b.clone(), generator=rbm.generator)


def visible_log_probs(rbm: BernoulliRBM, max_units: int = 20, log_z: Optional[float] = None) -> torch.Tensor:
    """Exact log p(v) of an RBM for all 2^n_visible visible states, in :func:`binary_states` order: (2^n_v,) float64.

    log p(v) = b^T v + sum_j softplus(c_j + (W^T v)_j) - log Z. Refuses more than ``max_units`` visible units.
    log_z: the RBM's log Z if known (else the logsumexp of the same terms).
    """
    if not isinstance(rbm, BernoulliRBM):
        raise TypeError(f"rbm must be a BernoulliRBM; got {type(rbm).__name__}.")
    max_units = check_int(max_units, "max_units", minimum=1)
    if rbm.n_visible > max_units:
        raise ValueError(f"the RBM has {rbm.n_visible} visible units: 2^{rbm.n_visible} states is more than "
                         f"max_units = {max_units} allows.")
    s = _visible_log_marginal(rbm.W.double(), rbm.b.double(), rbm.c.double())
    return s - (torch.logsumexp(s, 0) if log_z is None else float(log_z))


def fit_rbm_exact(rbm: BernoulliRBM, probs, n_steps: int = 30, step_size: float = 0.002,
                  callback: Optional[Callable[[int, BernoulliRBM], Optional[dict]]] = None,
                  max_units: int = 20) -> dict:
    """Raise L = sum_v P(v) log p(v) of an RBM with few visible units by its exact gradient, in place.

    Both phases of chapter 2's gradient are exact sums over the 2^n_v visible states (x = c + W^T v):

        grad W = sum_v (P(v) - p(v)) v sigma(x)^T,   grad b = sum_v (P(v) - p(v)) v,   grad c = sum_v (P(v) - p(v)) sigma(x).

    The steps are Adam's (Kingma & Ba, 2015) with ``step_size``; a step that would lower L is undone and the step
    size halved, so L never decreases (checked exactly, in float64). probs: (2^n_v,) target probabilities in
    :func:`binary_states` order (e.g. :meth:`DBN.aggregate_posterior`), summing to 1. callback(step, rbm) runs
    after each step and may return a dict of numbers, recorded. Returns a history: "step" (0 = the start),
    "objective" (L in nats), "step_size" and the callback's keys.
    """
    if not isinstance(rbm, BernoulliRBM):
        raise TypeError(f"rbm must be a BernoulliRBM; got {type(rbm).__name__}.")
    max_units = check_int(max_units, "max_units", minimum=1)
    if rbm.n_visible > max_units:
        raise ValueError(f"the RBM has {rbm.n_visible} visible units: 2^{rbm.n_visible} states is more than "
                         f"max_units = {max_units} allows for an exact gradient.")
    probs = check_tensor(probs, "probs", shape=(2**rbm.n_visible,)).to(device=rbm.device, dtype=torch.float64)
    if bool((probs < 0).any()) or abs(float(probs.sum()) - 1.0) > 1e-6:
        raise ValueError(f"probs must be probabilities over the 2^{rbm.n_visible} visible states (>= 0, summing "
                         f"to 1); got a sum of {float(probs.sum()):.6g}.")
    n_steps = check_int(n_steps, "n_steps", minimum=0)
    eps = check_positive(step_size, "step_size", hint="Adam steps of 0.001 to 0.01 suit an RBM near a good fit.")
    V = binary_states(rbm.n_visible, rbm.device, rbm.dtype)
    target = probs.to(rbm.dtype)

    def evaluate(W, b, c):  # L and the hidden probabilities at every state
        x = torch.addmm(c, V, W)
        s = (V @ b + F_.softplus(x).sum(1)).double()
        log_p = s - torch.logsumexp(s, 0)
        return float(probs @ log_p), log_p, x

    W, b, c = rbm.W.clone(), rbm.b.clone(), rbm.c.clone()
    moments = [[torch.zeros_like(t), torch.zeros_like(t)] for t in (W, b, c)]
    objective, log_p, x = evaluate(W, b, c)
    history = {"step": [0], "objective": [objective], "step_size": [eps]}
    with torch.no_grad(), single_thread_if_small(V.numel() * rbm.n_hidden, SINGLE_THREAD_BELOW, rbm.device):
        for step in range(1, n_steps + 1):
            d = target - torch.exp(log_p).to(rbm.dtype)  # P(v) - p(v): data minus model, every state
            sig = torch.sigmoid(x)
            grads = (V.T @ (d[:, None] * sig), V.T @ d, d @ sig)
            for (m, u), gr in zip(moments, grads):
                m.mul_(0.9).add_(gr, alpha=0.1)
                u.mul_(0.999).addcmul_(gr, gr, value=0.001)
            steps = [m / (1 - 0.9**step) / ((u / (1 - 0.999**step)).sqrt() + 1e-8) for m, u in moments]
            while True:
                trial = [t + eps * st for t, st in zip((W, b, c), steps)]
                new_objective, new_log_p, new_x = evaluate(*trial)
                if new_objective >= objective:
                    break
                eps /= 2  # the step would lower L: undo it, halve the step size
                if eps < 1e-12:
                    raise DivergenceError("fit_rbm_exact could not find a step that raises the objective; the "
                                          "RBM may already be at a maximum, or the parameters are not finite.")
            (W, b, c), objective, log_p, x = trial, new_objective, new_log_p, new_x
            rbm.W, rbm.b, rbm.c = W, b, c
            history["step"].append(step)
            history["objective"].append(objective)
            history["step_size"].append(eps)
            if callback is not None:
                for key, value in (callback(step, rbm) or {}).items():
                    history.setdefault(key, []).append(value)
    return history


# --------------------------------------------------------------------------------------------- what a family can fit
class FamilyFit(NamedTuple):
    """What :func:`fit_to_distribution` found: kl (n_restarts,) float64, KL(target || model) in nats of each
    restart's final model; log_probs (n_restarts, 2^n) its log p(v) on every state; params, the fitted parameters
    with a leading restart axis ((W, b, c) for an RBM, (W1, W2, b, c1, c2) for a DBM)."""

    kl: torch.Tensor
    log_probs: torch.Tensor
    params: Tuple[torch.Tensor, ...]


def _family_log_probs(family: str, params, V: torch.Tensor, H1: Optional[torch.Tensor]) -> torch.Tensor:
    """Exact log p(v) on every visible state V for a batch of RBMs or DBMs (leading restart axis): (R, 2^n)."""
    if family == "rbm":
        W, b, c = params
        s = b @ V.T + F_.softplus(torch.einsum("sn,rnm->rsm", V, W) + c[:, None, :]).sum(-1)
    else:
        W1, W2, b, c1, c2 = params
        prior = c1 @ H1.T + F_.softplus(torch.einsum("hj,rjk->rhk", H1, W2) + c2[:, None, :]).sum(-1)  # (R, 2^n1)
        s = b @ V.T + torch.logsumexp(torch.einsum("sn,rnj,hj->rsh", V, W1, H1) + prior[:, None, :], 2)
    return s - torch.logsumexp(s, 1, keepdim=True)


def fit_to_distribution(family: str, sizes: Sequence[int], target, n_restarts: int = 8, n_steps: int = 1500,
                        step_size: float = 0.05, init_std: float = 1.0,
                        generator: Optional[torch.Generator] = None) -> FamilyFit:
    """Fit an RBM or a DBM to a distribution over a few binary units by minimising the exact KL(target || model).

    What can a family represent? Minimise KL(P || p_theta) = sum_v P(v) log P(v) / p_theta(v) over its parameters,
    with log p_theta(v) exact on all 2^n states (log Z by enumeration; a DBM's hidden layers summed out), by Adam
    on autograd gradients, from ``n_restarts`` random starts at once (weights N(0, init_std^2), biases
    N(0, 0.1^2)). The KL is not convex in the parameters: the smallest over restarts is an upper bound on the
    family's best, not a proof of it. family: "rbm" with sizes (n_hidden,), or "dbm" with sizes (n_hidden1,
    n_hidden2); target: (2^n,) probabilities in :func:`binary_states` order, n <= 12. Runs in float64 on the
    target's device. Returns a :class:`FamilyFit`.
    """
    if family not in ("rbm", "dbm"):
        raise ValueError(f"family must be 'rbm' or 'dbm'; got {family!r}.")
    sizes = [check_int(n, f"sizes[{i}]", minimum=1) for i, n in enumerate(sizes)]
    if len(sizes) != (1 if family == "rbm" else 2):
        raise ValueError(f"sizes for family {family!r} must be " + ("(n_hidden,)" if family == "rbm" else
                         "(n_hidden1, n_hidden2)") + f"; got {tuple(sizes)}.")
    target = check_tensor(target, "target", ndim=1).double()
    n = int(round(math.log2(max(1, len(target)))))
    if len(target) < 2 or 2**n != len(target) or n > 12:
        raise ValueError(f"target must hold the probabilities of all 2^n states of n <= 12 binary units; got "
                         f"{len(target)} entries.")
    if bool((target < 0).any()) or abs(float(target.sum()) - 1.0) > 1e-9:
        raise ValueError(f"target must be probabilities (>= 0, summing to 1); got a sum of {float(target.sum()):.6g}.")
    if family == "dbm" and sizes[0] > 12:
        raise ValueError(f"n_hidden1 = {sizes[0]} is too many to sum out here (at most 12).")
    R = check_int(n_restarts, "n_restarts", minimum=1)
    n_steps = check_int(n_steps, "n_steps", minimum=0)
    step_size = check_positive(step_size, "step_size")
    init_std = float(init_std)
    dev, d = target.device, torch.float64
    V = binary_states(n, dev, d)
    H1 = binary_states(sizes[0], dev, d) if family == "dbm" else None
    shapes = [(n, sizes[0]), (n,), (sizes[0],)] if family == "rbm" else \
        [(n, sizes[0]), (sizes[0], sizes[1]), (n,), (sizes[0],), (sizes[1],)]
    params = [torch.randn((R, *shape), generator=generator, device=dev, dtype=d) * (init_std if len(shape) == 2 else 0.1)
              for shape in shapes]
    neg_entropy = float(torch.special.xlogy(target, target).sum())
    with torch.enable_grad():
        params = [p.requires_grad_(True) for p in params]
        optimiser = torch.optim.Adam(params, lr=step_size)
        for _ in range(n_steps):
            loss = -(_family_log_probs(family, params, V, H1) @ target).sum()  # sum over restarts of the cross-entropy
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        log_probs = _family_log_probs(family, params, V, H1)
        kl = neg_entropy - log_probs @ target
    if not bool(torch.isfinite(kl).all()):
        raise DivergenceError("fit_to_distribution produced a non-finite KL; lower step_size or init_std.")
    return FamilyFit(kl, log_probs, tuple(p.detach() for p in params))
