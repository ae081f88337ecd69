"""Energy-based structured prediction (chapter 9): linear-chain CRFs, the structured perceptron and SVM.

A conditional EBM scores every *output* y for an input x, p(y | x) = exp(-E(x, y)) / Z(x), with the partition
function Z(x) = sum_y exp(-E(x, y)) taken over outputs, once per input. For a label sequence y = (y_1..y_T),
y_t in {0..K-1}, a linear chain has the score (score = -energy)

    s(y) = sum_t unary[t, y_t] + sum_{t<T} pairwise[y_t, y_{t+1}],

and because each label only talks to its neighbours, the K^T outputs are summed (log Z), marginalised and
maximised (Viterbi) by dynamic programming in O(T K^2):

    log alpha_1(k) = unary[1, k],   log alpha_{t+1}(j) = unary[t+1, j] + logsumexp_i (log alpha_t(i) + pairwise[i, j]),
    log Z = logsumexp_k log alpha_T(k)

(Viterbi replaces logsumexp by max). Conventions for every function here: ``unary`` is (T, K) or (batch, T, K),
``pairwise`` is (K, K) or (batch, K, K) with pairwise[i, j] the score of the step y_t = i -> y_{t+1} = j,
labels are integer tensors (T,) or (batch, T); outputs have the leading batch dimension of the inputs (none
for a single chain). Computations run in the inputs' dtype, or in ``dtype`` when given (torch.float64 for
exact comparisons); everything is in log space, so scores of +-1e3 neither overflow nor underflow.

Training a :class:`LinearChainCRF` (a feature map or network for the unaries, learned transitions) by one of
three losses, each needing a different inference (y_hat = argmax_y' s(y') is the prediction):

* negative log-likelihood, log Z - s(y): forward algorithm; its gradient is expected - observed counts (the
  log-likelihood's, which one ascends, is observed - expected). NLL / log 2 bounds the 0/1 sequence error:
  y_hat != y forces p(y | x) <= 1/2;
* structured perceptron, max_y' s(y') - s(y): Viterbi (Collins 2002). It bounds no error count: it can be
  arbitrarily small while y_hat is wrong;
* structured hinge (SVM), max_y' [s(y') + Delta(y, y')] - s(y) with the Hamming loss Delta: loss-augmented
  Viterbi (Taskar et al. 2003; Tsochantaridis et al. 2005). It bounds the Hamming error of the prediction,
  Delta(y, y_hat) <= s(y_hat) + Delta(y, y_hat) - s(y) <= loss, which is why the SVM puts Delta in the margin.

:func:`bigram_log_probs` gives the transitions of a piecewise-trained baseline (a per-position classifier plus
counted transition probabilities, decoded by Viterbi; Sutton & McCallum 2005). :func:`energy_losses` gives
LeCun et al.'s (2006) losses for a table of energies. The grid functions (:func:`grid_as_chain`,
:func:`grid_gibbs`, :func:`grid_pseudo_log_likelihood`, :func:`grid_map_graph_cut`) show where exact inference
ends: a 2-D Ising-like CRF is a chain over whole rows, with 2^W states per row; its log Z and marginals are
intractable for wide grids, while its MAP image stays exact at any size by a minimum cut (Greig et al. 1989).

References: Lafferty, McCallum & Pereira (2001) "Conditional random fields"; Collins (2002) "Discriminative
training methods for hidden Markov models"; Taskar, Guestrin & Koller (2003) "Max-margin Markov networks";
Tsochantaridis et al. (2005) "Large margin methods for structured and interdependent output variables";
LeCun, Chopra, Hadsell, Ranzato & Huang (2006) "A tutorial on energy-based learning"; Sutton & McCallum
(2005) "Piecewise training for undirected models"; Rabiner (1989) "A tutorial on hidden Markov models";
Besag (1975) "Statistical analysis of non-lattice data" (pseudo-likelihood); Geman & Geman (1984)
"Stochastic relaxation, Gibbs distributions, and the Bayesian restoration of images"; Greig, Porteous &
Seheult (1989) "Exact maximum a posteriori estimation for binary images".
"""
from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .core import DivergenceError, check_int, check_positive, check_probability, progress

__all__ = [
    "chain_log_partition",
    "chain_marginals",
    "viterbi",
    "chain_sample",
    "sequence_score",
    "observed_counts",
    "bigram_log_probs",
    "loss_augmented_viterbi",
    "crf_nll",
    "perceptron_loss",
    "structured_hinge_loss",
    "energy_losses",
    "LinearChainCRF",
    "LOSSES",
    "fit_crf",
    "accuracies",
    "counting_grammar",
    "digit_sequences",
    "grid_row_states",
    "grid_as_chain",
    "grid_score",
    "grid_log_partition",
    "grid_pseudo_log_likelihood",
    "grid_gibbs",
    "GridGibbs",
    "grid_map_graph_cut",
    "MAX_ROW_STATES",
]

#: Largest number of row states (2^W) that :func:`grid_as_chain` builds: a (2^W, 2^W) transition matrix.
MAX_ROW_STATES = 2**12

_FINITE_HINT = (
    "Scores must be finite: to forbid a label or a transition, give it a large negative finite score "
    "(e.g. -1e4) instead of -inf."
)


# --------------------------------------------------------------------------------------------- validation
def _as_tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a tensor; got {type(x).__name__}.") from err
    return x


def _check_scores(x, name: str, dtype) -> torch.Tensor:
    x = _as_tensor(x, name)
    if not (x.dtype.is_floating_point or x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise TypeError(f"{name} must hold real-valued scores; got dtype {x.dtype}.")
    if dtype is not None:
        x = x.to(dtype)
    elif not x.dtype.is_floating_point:
        x = x.to(torch.get_default_dtype())
    bad = ~torch.isfinite(x.detach())
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} contains {int(bad.sum())} NaN/inf value(s) (the first at index {first}). {_FINITE_HINT}")
    return x


def _check_chain(unary, pairwise, dtype=None) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate a chain and return (unary (B, T, K), pairwise (B or 1, K, K), batched)."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch dtype such as torch.float64; got {dtype!r}.")
    unary = _check_scores(unary, "unary", dtype)
    pairwise = _check_scores(pairwise, "pairwise", dtype)
    if unary.dim() not in (2, 3):
        raise ValueError(f"unary must be (T, K) or (batch, T, K): one score per position and label; got shape "
                         f"{tuple(unary.shape)}.")
    if pairwise.dim() not in (2, 3):
        raise ValueError(f"pairwise must be (K, K) or (batch, K, K); got shape {tuple(pairwise.shape)}.")
    T, K = unary.shape[-2:]
    if T < 1 or K < 1:
        raise ValueError(f"unary must have at least one position and one label; got shape {tuple(unary.shape)}.")
    if pairwise.shape[-2:] != (K, K):
        raise ValueError(
            f"pairwise must be ({K}, {K}) for the {K} labels of unary {tuple(unary.shape)}; got {tuple(pairwise.shape)}. "
            "unary is (T, K) (positions first), pairwise[i, j] scores the step from label i to label j."
        )
    if unary.device != pairwise.device:
        raise ValueError(f"unary is on {unary.device} but pairwise on {pairwise.device}; put both on one device.")
    batched = unary.dim() == 3 or pairwise.dim() == 3
    if unary.dim() == 3 and pairwise.dim() == 3 and unary.shape[0] != pairwise.shape[0]:
        raise ValueError(f"unary has a batch of {unary.shape[0]} chains but pairwise of {pairwise.shape[0]}; "
                         "pass one pairwise matrix per chain, or one (K, K) matrix shared by all.")
    common = torch.promote_types(unary.dtype, pairwise.dtype)
    unary, pairwise = unary.to(common), pairwise.to(common)
    if unary.dim() == 2:
        unary = unary.unsqueeze(0).expand(pairwise.shape[0] if pairwise.dim() == 3 else 1, T, K)
    if pairwise.dim() == 2:
        pairwise = pairwise.unsqueeze(0)
    return unary, pairwise, batched


def _check_label_values(y, shape: tuple, K: int, name: str, what: str) -> torch.Tensor:
    """Integer labels of the given shape with values in [0, K), as a long tensor."""
    y = _as_tensor(y, name)
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.dtype.is_complex:
        raise TypeError(f"{name} must hold integer labels; got dtype {y.dtype}. Use y.long().")
    if tuple(y.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, {what}; got {tuple(y.shape)}.")
    if y.numel() and (bool((y < 0).any()) or bool((y >= K).any())):
        raise ValueError(f"{name} must hold labels in 0..{K - 1} (there are K = {K} labels); got values from "
                         f"{int(y.min())} to {int(y.max())}.")
    return y.long()


def _check_labels(y, unary: torch.Tensor, batched: bool, name: str = "y") -> torch.Tensor:
    """Labels y: (T,) or (batch, T) integers in [0, K) -> (B, T) long on unary's device."""
    B, T, K = unary.shape
    shape = (B, T) if batched else (T,)
    what = f"one label per position of unary {tuple(unary.shape) if batched else tuple(unary.shape[1:])}"
    y = _check_label_values(y, shape, K, name, what).to(unary.device)
    return y if batched else y.unsqueeze(0)


def _out(x: torch.Tensor, batched: bool) -> torch.Tensor:
    return x if batched else x.squeeze(0)


# --------------------------------------------------------------------------------------------- inference on a chain
def _forward(unary: torch.Tensor, pairwise: torch.Tensor) -> torch.Tensor:
    """log alpha: (B, T, K), log alpha_t(k) = log of the summed exp-scores of all prefixes ending in label k."""
    log_alpha = [unary[:, 0]]
    for t in range(1, unary.shape[1]):
        # (B, K, 1) + (1 or B, K, K): entry [b, i, j] = log alpha_t(i) + A_ij; dim=1 is "logsumexp over i"
        log_alpha.append(unary[:, t] + torch.logsumexp(log_alpha[-1][:, :, None] + pairwise, dim=1))
    return torch.stack(log_alpha, 1)


def _backward(unary: torch.Tensor, pairwise: torch.Tensor) -> torch.Tensor:
    """log beta: (B, T, K), log beta_t(k) = log of the summed exp-scores of all suffixes after label k at t.

    log beta_T(i) = 0, log beta_t(i) = logsumexp_j (A_ij + unary[t+1, j] + log beta_{t+1}(j)).
    """
    B, T, K = unary.shape
    log_beta = [torch.zeros(B, K, device=unary.device, dtype=unary.dtype)]
    for t in range(T - 2, -1, -1):
        # (1 or B, K, K) + (B, 1, K): entry [b, i, j] = A_ij + u_{t+1}(j) + log beta_{t+1}(j); dim=2 is "over j"
        log_beta.append(torch.logsumexp(pairwise + (unary[:, t + 1] + log_beta[-1])[:, None, :], dim=2))
    return torch.stack(log_beta[::-1], 1)


def chain_log_partition(unary, pairwise, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """log Z = log sum over all K^T label sequences y of exp(s(y)), by the forward algorithm in log space.

    s(y) = sum_t unary[t, y_t] + sum_{t<T} pairwise[y_t, y_{t+1}] (score = -energy).
    unary: (T, K) or (batch, T, K); pairwise: (K, K) or (batch, K, K), pairwise[i, j] scoring i -> j.
    dtype: compute in this dtype (e.g. torch.float64); default the inputs'. Returns log Z: () or (batch,),
    differentiable: d log Z / d unary[t, k] = p(y_t = k), d log Z / d pairwise[i, j] = E[#steps i -> j].
    Cost O(T K^2). Reference: Lafferty et al. (2001); Rabiner (1989) for the forward algorithm.
    """
    unary, pairwise, batched = _check_chain(unary, pairwise, dtype)
    return _out(torch.logsumexp(_forward(unary, pairwise)[:, -1], dim=1), batched)


def chain_marginals(unary, pairwise, dtype: Optional[torch.dtype] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Node and edge marginals of p(y) = exp(s(y)) / Z by forward-backward.

    node[t, k] = p(y_t = k) = alpha_t(k) beta_t(k) / Z;
    edge[t, i, j] = p(y_t = i, y_{t+1} = j) = alpha_t(i) exp(pairwise[i, j] + unary[t+1, j]) beta_{t+1}(j) / Z.
    unary: (T, K) or (batch, T, K); pairwise: (K, K) or (batch, K, K). Returns node (T, K) and edge (T-1, K, K),
    with a leading batch dimension when the input has one. Each node row and each edge matrix sums to 1.
    """
    unary, pairwise, batched = _check_chain(unary, pairwise, dtype)
    log_alpha, log_beta = _forward(unary, pairwise), _backward(unary, pairwise)
    log_z = torch.logsumexp(log_alpha[:, -1], dim=1)[:, None, None]
    node = torch.exp(log_alpha + log_beta - log_z)
    edge = torch.exp(log_alpha[:, :-1, :, None] + pairwise[:, None] + (unary + log_beta)[:, 1:, None, :] - log_z[..., None])
    return _out(node, batched), _out(edge, batched)


def _viterbi(unary: torch.Tensor, pairwise: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    B, T, K = unary.shape
    delta, back = unary[:, 0], []
    for t in range(1, T):
        best, arg = (delta[:, :, None] + pairwise).max(dim=1)  # over the previous label i, for each j
        delta = unary[:, t] + best
        back.append(arg)
    score, last = delta.max(dim=1)
    path = [last]
    for arg in reversed(back):
        path.append(arg.gather(1, path[-1][:, None]).squeeze(1))
    return torch.stack(path[::-1], 1), score


def viterbi(unary, pairwise, dtype: Optional[torch.dtype] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The highest-scoring label sequence argmax_y s(y) and its score, by max-product dynamic programming.

    delta_1(k) = unary[1, k], delta_{t+1}(j) = unary[t+1, j] + max_i (delta_t(i) + pairwise[i, j]), then follow
    the argmax pointers back from argmax_k delta_T(k). Ties go to the smaller label.
    unary: (T, K) or (batch, T, K); pairwise: (K, K) or (batch, K, K). Returns labels (T,) or (batch, T) (long)
    and the score () or (batch,). Reference: Viterbi (1967); Forney (1973).
    """
    unary, pairwise, batched = _check_chain(unary, pairwise, dtype)
    labels, score = _viterbi(unary, pairwise)
    return _out(labels, batched), _out(score, batched)


def chain_sample(unary, pairwise, n_samples: int, generator: Optional[torch.Generator] = None,
                 dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Exact samples y ~ p(y) = exp(s(y)) / Z by forward filtering, backward sampling.

    Draw y_T from p(y_T = k) = alpha_T(k) / Z, then each earlier label given the next one,
    p(y_t = i | y_{t+1} = j) proportional to alpha_t(i) exp(pairwise[i, j]) (the suffix after t+1 cancels).
    unary: (T, K) or (batch, T, K); pairwise: (K, K) or (batch, K, K). Returns labels (n_samples, T), or
    (batch, n_samples, T) for a batch. Randomness from ``generator`` (on the scores' device).
    """
    unary, pairwise, batched = _check_chain(unary, pairwise, dtype)
    n = check_int(n_samples, "n_samples", minimum=1)
    if generator is not None and generator.device.type != unary.device.type:
        raise ValueError(f"the generator lives on {generator.device} but the scores on {unary.device}; use one on "
                         f"{unary.device}.")
    B, T, K = unary.shape
    log_alpha = _forward(unary, pairwise).detach()
    P = pairwise.detach().expand(B, K, K)
    y = torch.multinomial(torch.softmax(log_alpha[:, -1], 1), n, replacement=True, generator=generator)  # (B, n)
    path = [y]
    for t in range(T - 2, -1, -1):
        logits = log_alpha[:, t, None, :] + P.gather(2, path[-1][:, None, :].expand(B, K, n)).transpose(1, 2)
        probs = torch.softmax(logits, 2).reshape(B * n, K)
        path.append(torch.multinomial(probs, 1, generator=generator).reshape(B, n))
    return _out(torch.stack(path[::-1], 2), batched)


def _score(unary: torch.Tensor, pairwise: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = unary.gather(2, y[:, :, None]).squeeze(2).sum(1)
    if y.shape[1] > 1:
        rows = torch.arange(pairwise.shape[0], device=y.device)[:, None] if pairwise.shape[0] > 1 else 0
        s = s + pairwise[rows, y[:, :-1], y[:, 1:]].sum(1)
    return s


def sequence_score(unary, pairwise, y, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """s(y) = sum_t unary[t, y_t] + sum_{t<T} pairwise[y_t, y_{t+1}] for given labels y: (T,) or (batch, T)."""
    unary, pairwise, batched = _check_chain(unary, pairwise, dtype)
    return _out(_score(unary, pairwise, _check_labels(y, unary, batched)), batched)


def observed_counts(y, n_labels: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The sufficient statistics of labels y, shaped like :func:`chain_marginals`' output.

    node[t, k] = [y_t = k] and edge[t, i, j] = [y_t = i and y_{t+1} = j] for y: (T,) or (batch, T) -> node
    (T, K), edge (T-1, K, K) (float, with the batch dimension of y). The NLL's gradient is marginals - counts.
    """
    K = check_int(n_labels, "n_labels", minimum=1)
    y = _as_tensor(y, "y")
    if y.dim() not in (1, 2):
        raise ValueError(f"y must be (T,) or (batch, T) labels; got shape {tuple(y.shape)}.")
    y = _check_label_values(y, tuple(y.shape), K, "y", "")
    node = F.one_hot(y, K).to(torch.get_default_dtype())
    edge = node[..., :-1, :, None] * node[..., 1:, None, :]
    return node, edge


def bigram_log_probs(y, n_labels: int, smoothing: float = 0.1) -> torch.Tensor:
    """log p(y_{t+1} = j | y_t = i) estimated by counting the steps of training labels: (K, K), rows sum to 1.

    p(j | i) = (n_ij + smoothing) / (n_i + K smoothing), with n_ij the number of steps i -> j in y: (n, T)
    or (T,) labels in 0..K-1. These are the transition scores of the *piecewise* baseline (Sutton & McCallum
    2005): train a per-position classifier p(y_t | x_t) alone, count the transitions alone, and decode with
    Viterbi on unary = log p(y_t | x_t) and pairwise = this matrix. When each x_t depends only on its own
    label (an HMM), Bayes' rule gives p(y | x) proportional to p(y_1) prod_t p(y_{t+1} | y_t) prod_t
    p(y_t | x_t) / p(y_t); with uniform label marginals p(y_t) that is exactly this decoder's score.
    """
    K = check_int(n_labels, "n_labels", minimum=1)
    smoothing = check_positive(smoothing, "smoothing", hint="add-smoothing keeps unseen steps at a finite score.")
    y = _as_tensor(y, "y")
    if y.dim() not in (1, 2) or y.shape[-1] < 2:
        raise ValueError(f"y must be (T,) or (n, T) labels with T >= 2 (a step needs two positions); got shape "
                         f"{tuple(y.shape)}.")
    y = _check_label_values(y, tuple(y.shape), K, "y", "").reshape(-1, y.shape[-1])
    steps = y[:, :-1] * K + y[:, 1:]  # step i -> j as one index i K + j
    counts = torch.bincount(steps.reshape(-1), minlength=K * K).reshape(K, K).to(torch.get_default_dtype())
    return torch.log((counts + smoothing) / (counts + smoothing).sum(1, keepdim=True))


def _hamming_augment(unary: torch.Tensor, y: torch.Tensor, cost: float) -> torch.Tensor:
    """unary + cost * [k != y_t]: the Hamming loss is a sum over positions, so it folds into the unaries."""
    return unary + cost * (1 - F.one_hot(y, unary.shape[2]).to(unary.dtype))


def loss_augmented_viterbi(unary, pairwise, y, cost: float = 1.0,
                           dtype: Optional[torch.dtype] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """argmax_y' [s(y') + cost * Hamming(y, y')] and that maximum: the most violated output for the SVM.

    The Hamming loss sum_t [y'_t != y_t] decomposes over positions, so adding ``cost`` to every unary score
    except the true label's and running :func:`viterbi` solves it exactly. Returns labels like ``y`` and the
    augmented score () or (batch,). Reference: Taskar et al. (2003); Tsochantaridis et al. (2005).
    """
    unary, pairwise, batched = _check_chain(unary, pairwise, dtype)
    y = _check_labels(y, unary, batched)
    cost = _check_cost(cost)
    labels, score = _viterbi(_hamming_augment(unary, y, cost), pairwise)
    return _out(labels, batched), _out(score, batched)


def _check_cost(cost) -> float:
    try:
        cost = float(cost)
    except (TypeError, ValueError) as err:
        raise TypeError(f"cost must be a number >= 0 (the margin per wrong label); got {cost!r}.") from err
    if not (math.isfinite(cost) and cost >= 0):
        raise ValueError(f"cost must be a finite number >= 0 (the margin per wrong label); got {cost}.")
    return cost


# --------------------------------------------------------------------------------------------- losses
def _per_sequence_loss(unary: torch.Tensor, pairwise: torch.Tensor, y: torch.Tensor, kind: str,
                       cost: float = 1.0) -> torch.Tensor:
    """One of :data:`LOSSES` per chain, on validated (B, T, K), (1 or B, K, K) scores and (B, T) labels."""
    if kind == "nll":
        return torch.logsumexp(_forward(unary, pairwise)[:, -1], 1) - _score(unary, pairwise, y)
    # Viterbi only *chooses* the maximiser, so it runs on detached scores: max_y' g(y') has, as a (sub)gradient,
    # the gradient of g at the maximiser (Danskin), i.e. of the chosen sequence's score, through _score.
    if kind == "perceptron":
        best, _ = _viterbi(unary.detach(), pairwise.detach())
        return _score(unary, pairwise, best) - _score(unary, pairwise, y)
    worst, _ = _viterbi(_hamming_augment(unary.detach(), y, cost), pairwise.detach())
    hamming = (worst != y).sum(1).to(unary.dtype)
    return _score(unary, pairwise, worst) + cost * hamming - _score(unary, pairwise, y)


def crf_nll(unary, pairwise, y, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """-log p(y) = log Z - s(y) per chain: () or (batch,). Its gradient is expected minus observed counts:
    d/d unary[t, k] = p(y_t = k) - [y_t = k], d/d pairwise[i, j] = E[#(i -> j)] - #(i -> j in y)."""
    unary, pairwise, batched = _check_chain(unary, pairwise, dtype)
    return _out(_per_sequence_loss(unary, pairwise, _check_labels(y, unary, batched), "nll"), batched)


def perceptron_loss(unary, pairwise, y, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """max_y' s(y') - s(y) >= 0 per chain (Viterbi); zero exactly when y is (one of) the best sequences.

    Its gradient is the structured perceptron's update: the counts of the prediction y' minus those of y
    (Collins 2002).
    """
    unary, pairwise, batched = _check_chain(unary, pairwise, dtype)
    return _out(_per_sequence_loss(unary, pairwise, _check_labels(y, unary, batched), "perceptron"), batched)


def structured_hinge_loss(unary, pairwise, y, cost: float = 1.0, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """max_y' [s(y') + cost * Hamming(y, y')] - s(y) >= 0 per chain: the margin-rescaled structured SVM loss.

    Zero exactly when s(y) beats every other sequence by at least cost times the number of labels it gets
    wrong. The max is found by loss-augmented Viterbi (:func:`loss_augmented_viterbi`); the gradient flows
    through the scores of y and of the maximiser (a subgradient). Reference: Taskar et al. (2003);
    Tsochantaridis et al. (2005).
    """
    unary, pairwise, batched = _check_chain(unary, pairwise, dtype)
    y, cost = _check_labels(y, unary, batched), _check_cost(cost)
    return _out(_per_sequence_loss(unary, pairwise, y, "hinge", cost), batched)


def _energy_losses(energies: torch.Tensor, y: torch.Tensor, margin: float, beta: float) -> dict:
    e_true = energies.gather(1, y[:, None]).squeeze(1)                     # E(y)
    e_wrong = energies.scatter(1, y[:, None], math.inf).min(1).values      # E(ybar), the most offending answer
    return {
        "energy": e_true,
        "perceptron": e_true - energies.min(1).values,
        "hinge": F.relu(margin + e_true - e_wrong),
        "log": F.softplus(e_true - e_wrong),                                # log(1 + exp(E(y) - E(ybar)))
        "nll": e_true + torch.logsumexp(-beta * energies, 1) / beta,
    }


def energy_losses(energies, y, margin: float = 1.0, beta: float = 1.0) -> dict:
    """LeCun et al.'s (2006) losses for a table of energies E(x, y') over a finite set of answers y'.

    energies: (batch, n_answers), lower = better; y: (batch,) the correct answers. With ybar the most
    offending incorrect answer (lowest energy among y' != y), returns a dict of (batch,) tensors, named as in
    the tutorial (its section 2.2):

        "energy":     E(y)                                   pushes E(y) down, nothing up: can collapse
        "perceptron": E(y) - min_y' E(y')                    no margin: zero for a flat energy
        "hinge":      max(0, margin + E(y) - E(ybar))        a margin, on the most offending answer only
        "log":        log(1 + exp(E(y) - E(ybar)))           the "log loss": a soft hinge on ybar, no Z
        "nll":        E(y) + (1/beta) log sum_y' exp(-beta E(y'))   negative log-likelihood: every answer, needs Z

    With two answers "log" and "nll" (beta = 1) coincide; with more, only "nll" has the partition function.
    beta > 0 is the NLL's inverse temperature.
    """
    energies = _check_scores(energies, "energies", None)
    if energies.dim() != 2 or energies.shape[1] < 2:
        raise ValueError(f"energies must be (batch, n_answers) with at least two answers; got {tuple(energies.shape)}.")
    y = _check_label_values(y, (len(energies),), energies.shape[1], "y", "one correct answer per row of energies")
    margin = _check_cost(margin)
    beta = check_positive(beta, "beta", hint="beta is the inverse temperature of the NLL loss; 1 is the usual choice.")
    return _energy_losses(energies, y.to(energies.device), margin, beta)


# --------------------------------------------------------------------------------------------- the model
#: The training losses of :func:`fit_crf` and :meth:`LinearChainCRF.loss`.
LOSSES = ("nll", "perceptron", "hinge")


class LinearChainCRF(nn.Module):
    """A linear-chain CRF: s(x, y) = sum_t f(x_t)[y_t] + sum_{t<T} A[y_t, y_{t+1}], p(y | x) = exp(s) / Z(x).

    f maps each position's features (n_features,) to K unary scores: ``unary`` (any module taking
    (..., n_features) to (..., K)), by default a linear map started at zero. With a linear map the score is
    linear in the parameters, so every loss of :data:`LOSSES` is convex in them (a log-sum-exp or a max of
    linear functions, minus a linear one) and the zero start loses nothing; a network for f gives up both.
    A: the (K, K) learned transition scores, zero at the start. With ``transitions=False`` A is a buffer that
    stays 0: p(y | x) factorises over positions and the model is a per-position classifier (its NLL is the
    summed cross-entropy of the positions, which :func:`fit_crf` then computes without the forward algorithm).
    Assigning a (K, K) tensor to ``model.transitions`` of such a model fixes the transitions at those scores
    (the piecewise baseline: a trained classifier plus :func:`bigram_log_probs`).
    """

    def __init__(self, n_features: int, n_labels: int, unary: Optional[nn.Module] = None, transitions: bool = True):
        super().__init__()
        self.n_features = check_int(n_features, "n_features", minimum=1)
        self.n_labels = check_int(n_labels, "n_labels", minimum=2)
        if unary is None:
            unary = nn.Linear(self.n_features, self.n_labels)
            nn.init.zeros_(unary.weight)
            nn.init.zeros_(unary.bias)
        elif not isinstance(unary, nn.Module):
            raise TypeError(f"unary must be a torch.nn.Module mapping features to {self.n_labels} scores; "
                            f"got {type(unary).__name__}.")
        self.unary = unary
        zeros = torch.zeros(self.n_labels, self.n_labels)
        if transitions:
            self.transitions = nn.Parameter(zeros)
        else:
            self.register_buffer("transitions", zeros)

    def _param(self) -> torch.Tensor:
        return next(iter(self.parameters()))

    def forward(self, x) -> torch.Tensor:
        """Unary scores f(x_t): x (batch, T, n_features) or (T, n_features) -> (batch, T, K) or (T, K)."""
        p = self._param()
        x = _as_tensor(x, "x")
        if x.dim() not in (2, 3) or x.shape[-1] != self.n_features:
            raise ValueError(f"x must be (batch, T, {self.n_features}) or (T, {self.n_features}): the features of "
                             f"each position; got shape {tuple(x.shape)}.")
        x = x.to(device=p.device, dtype=p.dtype)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN/inf values; clean the features before scoring them.")
        u = self.unary(x)
        if u.shape != (*x.shape[:-1], self.n_labels):
            raise ValueError(f"the unary module returned shape {tuple(u.shape)}; it must map (..., {self.n_features}) "
                             f"to (..., {self.n_labels}).")
        return u

    def log_partition(self, x) -> torch.Tensor:
        """log Z(x), one per sequence: (batch,) or ()."""
        return chain_log_partition(self(x), self.transitions)

    def marginals(self, x) -> Tuple[torch.Tensor, torch.Tensor]:
        """p(y_t = k | x) (…, T, K) and p(y_t = i, y_{t+1} = j | x) (…, T-1, K, K)."""
        return chain_marginals(self(x), self.transitions)

    @torch.no_grad()
    def predict(self, x) -> torch.Tensor:
        """The Viterbi labels argmax_y s(x, y): (batch, T) or (T,)."""
        return viterbi(self(x), self.transitions)[0]

    def loss(self, x, y, kind: str = "nll", cost: float = 1.0) -> torch.Tensor:
        """The mean over sequences of one of :data:`LOSSES` (a 0-d tensor to minimise).

        "nll": log Z - s(y); "perceptron": max_y' s(y') - s(y); "hinge": max_y' [s(y') + cost Hamming] - s(y).
        """
        if kind not in LOSSES:
            raise ValueError(f"kind must be one of {LOSSES}; got {kind!r}.")
        unary, pairwise, batched = _check_chain(self(x), self.transitions)
        y = _check_labels(y, unary, batched)
        return _per_sequence_loss(unary, pairwise, y, kind, _check_cost(cost)).mean()


def fit_crf(
    model: LinearChainCRF,
    x,
    y,
    loss: str = "nll",
    n_epochs: int = 10,
    batch_size: int = 32,
    lr: float = 0.05,
    weight_decay: float = 0.0,
    cost: float = 1.0,
    optimizer: str = "adam",
    average: bool = False,
    generator: Optional[torch.Generator] = None,
    callback: Optional[Callable[[int, LinearChainCRF], Optional[dict]]] = None,
) -> dict:
    """Train ``model`` by minibatch gradient steps on one of :data:`LOSSES`, plus (weight_decay / 2) |theta|^2.

    x: (n, T, n_features); y: (n, T) labels. Each epoch visits the sequences once in a random order (from
    ``generator``), in minibatches of ``batch_size``; each minibatch takes one step of ``optimizer`` ("adam" or
    "sgd") on the mean loss of its sequences. The L2 term matters for the hinge loss (the margin is measured
    against |theta|). With ``average`` the model ends with the average of its parameters over every step,
    the zero start included (Polyak-Ruppert averaging: it smooths out the minibatch noise of the last steps and,
    from zero, shrinks the weights a little). Plain SGD with lr = 1 from zero weights on the "perceptron" loss
    is the structured perceptron (Collins 2002) at batch_size = 1; with larger batches it is the minibatch
    perceptron, which runs Viterbi on every sequence of the batch under the same weights and adds the mean of
    their updates. With ``average`` that is Collins' averaged perceptron. A model whose transitions are a zero
    buffer (``transitions=False``) trained by "nll" uses the equal summed cross-entropy of the positions, so its
    time includes no dynamic program. callback(epoch, model) may return a dict of
    numbers recorded per epoch (it sees the current, not the averaged, parameters). Returns a history dict:
    "epoch", "loss" (the mean training loss of the epoch), "seconds" (cumulative training time, callbacks
    excluded) and the callback's keys. Raises DivergenceError when the loss stops being finite (lower lr).
    """
    if not isinstance(model, LinearChainCRF):
        raise TypeError(f"model must be an ebm_teach.crf.LinearChainCRF; got {type(model).__name__}.")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}.")
    p = model._param()
    x = _as_tensor(x, "x")
    if x.dim() != 3 or x.shape[2] != model.n_features:
        raise ValueError(f"x must be (n, T, {model.n_features}); got shape {tuple(x.shape)}.")
    x = x.to(device=p.device, dtype=p.dtype)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN/inf values; clean the features before training.")
    y = _check_label_values(y, tuple(x.shape[:2]), model.n_labels, "y", "one label per position of x").to(p.device)
    n_epochs = check_int(n_epochs, "n_epochs", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = check_positive(lr, "lr", hint="Typical values for Adam are 0.001 to 0.1.")
    weight_decay = float(weight_decay)
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0; got {weight_decay}.")
    cost = _check_cost(cost)
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd'; got {optimizer!r}.")
    params = [q for q in model.parameters() if q.requires_grad]
    make = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = make(params, lr=lr, weight_decay=weight_decay)
    averaged = [q.detach().clone() for q in params] if average else None
    n_steps = 0
    history: dict = {"epoch": [], "loss": [], "seconds": []}
    # no transitions to learn and none set: log Z(x) = sum_t logsumexp_k u_t(k), the NLL is a cross-entropy
    independent = loss == "nll" and not model.transitions.requires_grad and not bool(model.transitions.any())
    seconds, n = 0.0, len(x)
    for epoch in progress(range(1, n_epochs + 1), desc=f"CRF ({loss})", total=n_epochs):
        start = time.perf_counter()
        order = torch.randperm(n, generator=generator, device=generator.device if generator is not None else "cpu")
        total = torch.zeros((), device=p.device, dtype=p.dtype)
        for idx in order.to(p.device).split(batch_size):
            # inputs were validated once above: no per-step checks (each would wait for the GPU)
            if independent:
                u = model.unary(x[idx])
                batch_loss = F.cross_entropy(u.reshape(-1, u.shape[-1]), y[idx].reshape(-1), reduction="sum") / len(idx)
            else:
                batch_loss = _per_sequence_loss(model.unary(x[idx]), model.transitions[None], y[idx], loss, cost).mean()
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            opt.step()
            total = total + batch_loss.detach() * len(idx)
            n_steps += 1
            if averaged is not None:  # running mean of the parameters after each step
                for a, q in zip(averaged, params):
                    a.add_(q.detach() - a, alpha=1 / (n_steps + 1))
        mean_loss = float(total) / n  # one host sync per epoch
        seconds += time.perf_counter() - start
        if not math.isfinite(mean_loss):
            raise DivergenceError(f"epoch {epoch}: the {loss} loss became {mean_loss}. Lower lr (now {lr:g}), or "
                                  "standardise the features so that the unary scores stay moderate.")
        history["epoch"].append(epoch)
        history["loss"].append(mean_loss)
        history["seconds"].append(seconds)
        extra = callback(epoch, model) if callback is not None else None
        for key, value in (extra or {}).items():
            history.setdefault(key, []).append(value)
    if averaged is not None:
        with torch.no_grad():
            for a, q in zip(averaged, params):
                q.copy_(a)
    return history


def accuracies(predicted, y) -> Tuple[float, float]:
    """(per-position accuracy, whole-sequence accuracy) of predicted labels against y, both (n, T)."""
    predicted, y = _as_tensor(predicted, "predicted"), _as_tensor(y, "y")
    if predicted.shape != y.shape or y.dim() != 2:
        raise ValueError(f"predicted and y must both be (n, T); got {tuple(predicted.shape)} and {tuple(y.shape)}.")
    right = predicted.to(y.device) == y
    return float(right.float().mean()), float(right.all(1).float().mean())


# --------------------------------------------------------------------------------------------- the chapter's data
def counting_grammar(n_labels: int = 10, steps=(1, 2), probs=None) -> torch.Tensor:
    """A Markov chain on labels 0..K-1 that counts up: y_{t+1} = y_t + step (mod K), step drawn from ``steps``.

    probs: the probability of each step (default: equal). Returns the (K, K) transition matrix (float64),
    row i = p(y_{t+1} | y_t = i). With steps (1, 2) each label has two possible successors, so the
    neighbours of a position pin it down far better than its own (noisy) image does.
    """
    K = check_int(n_labels, "n_labels", minimum=2)
    steps = [check_int(s, "each step", minimum=0) for s in steps]
    if not steps:
        raise ValueError("steps must list at least one step.")
    probs = [1 / len(steps)] * len(steps) if probs is None else [check_probability(p, "each prob") for p in probs]
    if len(probs) != len(steps) or abs(sum(probs) - 1) > 1e-9:
        raise ValueError(f"probs must give one probability per step and sum to 1; got {probs} for steps {steps}.")
    P = torch.zeros(K, K, dtype=torch.float64)
    for s, q in zip(steps, probs):
        P[torch.arange(K), (torch.arange(K) + s) % K] += q
    return P


def digit_sequences(images, labels, n_sequences: int, length: int, transition, noise_std: float = 0.0,
                    generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sequences of digit images whose labels follow a Markov chain: x (n, T, d) and y (n, T) (long).

    y_1 is uniform over the K labels, y_{t+1} ~ transition[y_t]; position t shows a random image (drawn
    uniformly, with replacement) among ``images`` whose label is y_t, plus N(0, noise_std^2) noise per pixel.
    images: (m, d) (e.g. :func:`ebm_teach.data.load_digits`, flattened); labels: (m,) in 0..K-1 with every label
    present; transition: (K, K) rows summing to 1 (:func:`counting_grammar`). All randomness from ``generator``;
    x has the images' dtype and device.
    """
    images = _as_tensor(images, "images")
    if images.dim() != 2 or not images.dtype.is_floating_point:
        raise ValueError(f"images must be a float tensor (m, d), one flattened image per row; got {tuple(images.shape)} "
                         f"{images.dtype}.")
    transition = _as_tensor(transition, "transition").to(torch.float64)
    K = transition.shape[0] if transition.dim() == 2 else 0
    if transition.shape != (K, K) or K < 2 or bool((transition < 0).any()) \
            or not torch.allclose(transition.sum(1), torch.ones(K, dtype=torch.float64)):
        raise ValueError("transition must be a (K, K) matrix of probabilities whose rows sum to 1, "
                         "e.g. counting_grammar(10).")
    labels = _check_label_values(labels, (len(images),), K, "labels", "one label per image").to(images.device)
    counts = torch.bincount(labels, minlength=K)
    if bool((counts == 0).any()):
        raise ValueError(f"every label needs at least one image; labels {(counts == 0).nonzero().flatten().tolist()} have none.")
    n, T = check_int(n_sequences, "n_sequences", minimum=1), check_int(length, "length", minimum=1)
    noise_std = float(noise_std)
    if not (math.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be a finite number >= 0; got {noise_std}.")
    dev = generator.device if generator is not None else torch.device("cpu")
    P = transition.to(dev)
    ys = [torch.randint(0, K, (n,), generator=generator, device=dev)]
    for _ in range(T - 1):
        ys.append(torch.multinomial(P[ys[-1]], 1, generator=generator).squeeze(1))
    y = torch.stack(ys, 1)
    by_label = torch.argsort(labels.to(dev), stable=True)  # image indices grouped by label
    first = torch.cumsum(counts.to(dev), 0) - counts.to(dev)
    u = torch.rand(n, T, generator=generator, device=dev, dtype=torch.float64)
    pick = first[y] + (u * counts.to(dev)[y]).long().clamp(max=counts.to(dev)[y] - 1)
    x = images[by_label[pick].to(images.device)]
    if noise_std > 0:
        x = x + noise_std * torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)
    return x, y.to(images.device)


# --------------------------------------------------------------------------------------------- a 2-D grid
def _check_field(field, name: str = "field") -> Tuple[torch.Tensor, bool]:
    field = _check_scores(field, name, None)
    if field.dim() not in (2, 3):
        raise ValueError(f"{name} must be (H, W) or (batch, H, W): one score per pixel; got {tuple(field.shape)}.")
    return (field, True) if field.dim() == 3 else (field[None], False)


def _check_coupling(J, like: torch.Tensor) -> torch.Tensor:
    if isinstance(J, (int, float)) and not isinstance(J, bool):
        J = torch.tensor(float(J), dtype=like.dtype)
    J = _as_tensor(J, "J")
    if J.numel() != 1 or not J.dtype.is_floating_point and J.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"J must be a single number (the coupling of neighbouring pixels); got shape {tuple(J.shape)}.")
    if not bool(torch.isfinite(J.detach()).all()):
        raise ValueError(f"J must be finite; got {float(J)}.")
    return J.reshape(()).to(device=like.device, dtype=like.dtype)


def _check_spins(s, field: torch.Tensor, batched: bool) -> torch.Tensor:
    s = _as_tensor(s, "s").to(device=field.device, dtype=field.dtype)
    want = tuple(field.shape) if batched else tuple(field.shape[1:])
    if tuple(s.shape) != want:
        raise ValueError(f"s must have the shape of field, {want}; got {tuple(s.shape)}.")
    if not bool(((s == 1) | (s == -1)).all()):
        raise ValueError("s must hold spins -1 or +1; map 0/1 pixels b to spins with s = 2 b - 1.")
    return s if batched else s[None]


def grid_row_states(width: int, device=None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """All 2^W rows of W spins in {-1, +1}: (2^W, W); row r has spin +1 in column c where bit c of r is set."""
    W = check_int(width, "width", minimum=1)
    if 2**W > MAX_ROW_STATES:
        raise ValueError(f"a row of width {W} has 2^{W} = {2**W} states, more than MAX_ROW_STATES = {MAX_ROW_STATES}: "
                         "exact inference by rows would need a (2^W, 2^W) matrix per row. Use grid_gibbs instead.")
    idx = torch.arange(2**W, device=device)
    return (((idx[:, None] >> torch.arange(W, device=device)) & 1) * 2 - 1).to(dtype)


def grid_as_chain(field, J) -> Tuple[torch.Tensor, torch.Tensor]:
    """The grid CRF s(y) = sum_i field_i y_i + J sum_<ij> y_i y_j (4 neighbours, free edges) as a chain of rows.

    Each row of W spins is one "super-label" with 2^W values, so the grid is a chain of H such labels:
    unary[r, a] = sum_c field[r, c] S[a, c] + J sum_c S[a, c] S[a, c+1]  (the row's own terms),
    pairwise[a, b] = J sum_c S[a, c] S[b, c]                            (the vertical bonds to the next row),
    with S = :func:`grid_row_states`. Then :func:`chain_log_partition`, :func:`chain_marginals` and
    :func:`viterbi` are exact on the grid, at a cost H 4^W that explodes with the width.
    field: (H, W) or (batch, H, W); J: a number or 0-d tensor (may require grad).
    Returns unary (H, 2^W) or (batch, H, 2^W), and pairwise (2^W, 2^W).
    """
    field, batched = _check_field(field)
    J = _check_coupling(J, field)
    S = grid_row_states(field.shape[2], device=field.device, dtype=field.dtype)
    unary = field @ S.T + J * (S[:, :-1] * S[:, 1:]).sum(1)
    pairwise = J * (S @ S.T)
    return (unary if batched else unary[0]), pairwise


def grid_log_partition(field, J, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Exact log Z of the grid CRF of :func:`grid_as_chain` by the forward algorithm over rows: () or (batch,).

    Cost H 4^W per grid: fine for W <= 8 or so, hopeless for a 28 x 28 image (28 * 4^28 ~ 2e18 terms).
    Differentiable in field and J, so exact maximum likelihood is possible where this is.
    """
    unary, pairwise = grid_as_chain(field, J)
    return chain_log_partition(unary, pairwise, dtype=dtype)


def _neighbour_sum(s: torch.Tensor) -> torch.Tensor:
    """The sum of the (up to four) neighbours of each pixel of s: (batch, H, W), free edges (zero outside)."""
    n = torch.zeros_like(s)
    n[:, 1:] += s[:, :-1]
    n[:, :-1] += s[:, 1:]
    n[:, :, 1:] += s[:, :, :-1]
    n[:, :, :-1] += s[:, :, 1:]
    return n


def grid_score(s, field, J) -> torch.Tensor:
    """s(y) = sum_i field_i y_i + J sum over neighbouring pairs <ij> of y_i y_j (each pair once), per grid.

    s: spins in {-1, +1} shaped like field, (H, W) or (batch, H, W). Returns () or (batch,).
    """
    field, batched = _check_field(field)
    J = _check_coupling(J, field)
    s = _check_spins(s, field, batched)
    pairs = (s[:, 1:] * s[:, :-1]).sum((1, 2)) + (s[:, :, 1:] * s[:, :, :-1]).sum((1, 2))
    out = (field * s).sum((1, 2)) + J * pairs
    return out if batched else out[0]


def grid_pseudo_log_likelihood(s, field, J) -> torch.Tensor:
    """sum_i log p(y_i | y_-i) = sum_i log sigma(2 y_i (field_i + J sum_{j ~ i} y_j)), per grid: no Z needed.

    Each factor is a one-pixel conditional, a ratio of two scores, so the partition function cancels
    (Besag 1975). s: spins shaped like field, (H, W) or (batch, H, W); J a number or 0-d tensor. Returns
    () or (batch,), differentiable in field and J.
    """
    field, batched = _check_field(field)
    J = _check_coupling(J, field)
    s = _check_spins(s, field, batched)
    out = F.logsigmoid(2 * s * (field + J * _neighbour_sum(s))).sum((1, 2))
    return out if batched else out[0]


class GridGibbs(NamedTuple):
    """What :func:`grid_gibbs` returns: the last state and the average spin over the kept sweeps."""

    s: torch.Tensor
    mean: torch.Tensor


def grid_gibbs(field, J, n_sweeps: int, burn_in: int = 0, s=None,
               generator: Optional[torch.Generator] = None) -> GridGibbs:
    """Checkerboard Gibbs sampling of p(y) ~ exp(sum_i field_i y_i + J sum_<ij> y_i y_j) on a free-edge grid.

    Pixels with i + j even only neighbour pixels with i + j odd, so each colour is resampled at once from
    p(y_i = +1 | rest) = sigma(2 (field_i + J sum_{j ~ i} y_j)): chapter 2's block Gibbs sweep, with a field.
    field: (H, W) or (batch, H, W); s: the start (default: uniform random spins); ``n_sweeps`` sweeps, of which
    the first ``burn_in`` are not averaged. Returns GridGibbs(s, mean), mean = the average of y over the kept
    sweeps (an estimate of E[y_i], i.e. 2 p(y_i = +1) - 1), both shaped like field.
    """
    field, batched = _check_field(field)
    J = _check_coupling(J, field).detach()
    field = field.detach()
    n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=1)
    burn_in = check_int(burn_in, "burn_in", minimum=0, maximum=n_sweeps - 1)
    if generator is not None and generator.device.type != field.device.type:
        raise ValueError(f"the generator lives on {generator.device} but field on {field.device}; use one on {field.device}.")
    if s is None:
        u = torch.rand(field.shape, generator=generator, device=field.device, dtype=field.dtype)
        s = torch.where(u < 0.5, 1.0, -1.0).to(field.dtype)
    else:
        s = _check_spins(s, field, batched).clone()
    H, W = field.shape[1:]
    rows, cols = torch.arange(H, device=field.device), torch.arange(W, device=field.device)
    red = ((rows[:, None] + cols[None, :]) % 2 == 0)
    total = torch.zeros_like(field)
    for sweep in range(n_sweeps):
        for mask in (red, ~red):
            p_up = torch.sigmoid(2 * (field + J * _neighbour_sum(s)))
            u = torch.rand(s.shape, generator=generator, device=s.device, dtype=s.dtype)
            s = torch.where(mask, torch.where(u < p_up, 1.0, -1.0).to(s.dtype), s)
        if sweep >= burn_in:
            total += s
    mean = total / (n_sweeps - burn_in)
    return GridGibbs(s if batched else s[0], mean if batched else mean[0])


def grid_map_graph_cut(field, J) -> torch.Tensor:
    """The MAP image argmax_y [sum_i field_i y_i + J sum_<ij> y_i y_j], exactly, for J >= 0, by a minimum cut.

    With bits b_i = (1 + y_i) / 2, y_i y_j = 1 - 2 [b_i != b_j] and field_i y_i = 2 field_i b_i - field_i, so the
    MAP image minimises  sum_i 2 field_i [b_i = 0] (for field_i > 0) or 2 |field_i| [b_i = 1] (for field_i < 0),
    plus 2 J [b_i != b_j] for every neighbouring pair. That is the cost of an s-t cut in a graph with an edge
    s -> i of capacity 2 max(field_i, 0), an edge i -> t of capacity 2 max(-field_i, 0) and edges i <-> j of
    capacity 2 J; pixels left on the source's side get y_i = +1. A minimum cut (= maximum flow) is found in
    polynomial time at any grid size (Greig, Porteous & Seheult 1989), whereas log Z and the marginals are not
    tractable on wide grids. J < 0 (anti-ferromagnetic) would need negative capacities: the method then fails.

    field: (H, W) or (batch, H, W); J >= 0 a number. Returns spins in {-1, +1} shaped like field (its dtype and
    device); ties between equally good images go either way. Runs on the CPU in Python (networkx's max-flow),
    one image at a time: a teaching implementation; dedicated codes (Boykov & Kolmogorov 2004) are much faster.
    """
    import networkx as nx  # a dependency of torch itself

    field, batched = _check_field(field)
    J = float(_check_coupling(J, field))
    if J < 0:
        raise ValueError(f"J must be >= 0 for a minimum cut (a ferromagnetic, i.e. submodular, coupling); got {J}. "
                         "For J < 0 use grid_as_chain and viterbi on narrow grids.")
    B, H, W = field.shape
    h = field.detach().to("cpu", torch.float64).numpy()
    out = torch.empty(B, H, W, dtype=torch.float64)
    for k in range(B):
        G = nx.DiGraph()
        G.add_nodes_from(["s", "t"] + [(r, c) for r in range(H) for c in range(W)])
        for r in range(H):
            for c in range(W):
                f = float(h[k, r, c])
                if f > 0:
                    G.add_edge("s", (r, c), capacity=2 * f)
                elif f < 0:
                    G.add_edge((r, c), "t", capacity=-2 * f)
                for nb in ((r + 1, c), (r, c + 1)):
                    if J > 0 and nb[0] < H and nb[1] < W:
                        G.add_edge((r, c), nb, capacity=2 * J)
                        G.add_edge(nb, (r, c), capacity=2 * J)
        _, (source_side, _) = nx.minimum_cut(G, "s", "t")
        for r in range(H):
            for c in range(W):
                out[k, r, c] = 1.0 if (r, c) in source_side else -1.0
    out = out.to(device=field.device, dtype=field.dtype)
    return out if batched else out[0]
