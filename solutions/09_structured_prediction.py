# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises for Chapter 9: energy-based structured prediction
#
# Four exercises on a linear chain of $T$ positions with $K$ labels and the score (score = −energy)
#
# $$s(\mathbf y) = \sum_{t=1}^{T} u_t(y_t) + \sum_{t=1}^{T-1} A_{y_t, y_{t+1}},$$
#
# given as `unary` (a $(T, K)$ tensor, `unary[t, k]` $= u_t(k)$, positions counted from 0 in the code) and
# `pairwise` (a $(K, K)$ tensor, `pairwise[i, j]` $= A_{ij}$, the score of the step from label $i$ to label
# $j$ — mind the order). Write exercises 9.1 and 9.2 with plain torch operations (not with `ebm_teach.crf`).
# Replace every `raise NotImplementedError()` with your code, then run the **self-check** cell below the
# exercise: it tries your function on one case you can verify by hand. The grader runs further, hidden
# checks on other inputs, comparing with a brute-force enumeration of every label sequence:
#
# ```
# python -m ebm_teach.grade 09_structured_prediction.ipynb
# ```
#
# Keep the function names and arguments as they are, and keep the first line of the next cell: it tells
# the grader which chapter this file belongs to.

# %%
# ebm-teach exercises: 09_structured_prediction
import itertools
import math

import torch

# %% [markdown]
# ## Exercise 9.1: the forward algorithm (3 points)
#
# Compute $\log Z = \log \sum_{\mathbf y} e^{s(\mathbf y)}$ over all $K^T$ sequences without listing them:
#
# $$\log\alpha_1(k) = u_1(k), \qquad
#   \log\alpha_{t+1}(j) = u_{t+1}(j) + \operatorname*{logsumexp}_i\big(\log\alpha_t(i) + A_{ij}\big), \qquad
#   \log Z = \operatorname*{logsumexp}_k \log\alpha_T(k).$$
#
# Stay in log space (`torch.logsumexp`): the hidden checks use scores of size 1000, for which `exp`
# overflows. A sum over the previous label $i$ for every next label $j$ is one `logsumexp` over the first
# dimension of the $(K, K)$ matrix `log_alpha[:, None] + pairwise`.

# %%
def chain_log_partition(unary, pairwise):
    """log Z of a linear chain by the forward algorithm in log space.

    unary: (T, K) float tensor, unary[t, k] = score of label k at position t; pairwise: (K, K) float tensor,
    pairwise[i, j] = score of the step from label i to label j. Returns log Z as a 0-d tensor (or a float).
    """
    if unary.dim() != 2 or pairwise.shape != (unary.shape[1], unary.shape[1]):
        raise ValueError(f"need unary (T, K) and pairwise (K, K); got {tuple(unary.shape)} and {tuple(pairwise.shape)}.")
    ### BEGIN SOLUTION
    log_alpha = unary[0]
    for t in range(1, unary.shape[0]):
        log_alpha = unary[t] + torch.logsumexp(log_alpha[:, None] + pairwise, dim=0)
    return torch.logsumexp(log_alpha, dim=0)
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: with all scores 0 every one of the K^T sequences has weight 1, so log Z = T log K.
value = float(chain_log_partition(torch.zeros(3, 4, dtype=torch.float64), torch.zeros(4, 4, dtype=torch.float64)))
print(f"log Z = {value:.6f}, expected 3 log 4 = {3 * math.log(4):.6f}")
assert abs(value - 3 * math.log(4)) < 1e-9, "not yet right: with zero scores Z counts the sequences"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("09_structured_prediction", "9.1", chain_log_partition)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 9.2: Viterbi (3 points)
#
# Find the best sequence $\hat{\mathbf y} = \arg\max_{\mathbf y} s(\mathbf y)$ and its score. Replace the
# log-sum-exp of the forward algorithm by a max, $\delta_{t+1}(j) = u_{t+1}(j) + \max_i\big(\delta_t(i) +
# A_{ij}\big)$, and keep, for every $t$ and $j$, the $i$ that won (`torch.max(..., dim=0)` returns both the
# values and the indices). Then start from the best last label, $\arg\max_k \delta_T(k)$, and follow the stored
# indices back to the first position.

# %%
def viterbi(unary, pairwise):
    """The highest-scoring label sequence of a linear chain, and its score.

    unary: (T, K); pairwise: (K, K), pairwise[i, j] scoring the step i -> j. Returns (labels, score):
    labels a (T,) integer tensor (torch.long), score a float (or 0-d tensor) equal to s(labels).
    """
    if unary.dim() != 2 or pairwise.shape != (unary.shape[1], unary.shape[1]):
        raise ValueError(f"need unary (T, K) and pairwise (K, K); got {tuple(unary.shape)} and {tuple(pairwise.shape)}.")
    ### BEGIN SOLUTION
    delta, back = unary[0], []
    for t in range(1, unary.shape[0]):
        best, arg = torch.max(delta[:, None] + pairwise, dim=0)
        delta = unary[t] + best
        back.append(arg)
    score, last = torch.max(delta, dim=0)
    labels = [int(last)]
    for arg in reversed(back):
        labels.append(int(arg[labels[-1]]))
    return torch.tensor(labels[::-1], dtype=torch.long), float(score)
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: transitions that only allow 0 -> 1 -> 2 (everything else scores -10) force the path [0, 1, 2].
pairwise = torch.full((3, 3), -10.0, dtype=torch.float64)
pairwise[0, 1] = pairwise[1, 2] = 2.0
labels, score = viterbi(torch.zeros(3, 3, dtype=torch.float64), pairwise)
print("labels:", torch.as_tensor(labels).tolist(), "(expected [0, 1, 2]); score:", float(score), "(expected 4.0)")
assert torch.as_tensor(labels).tolist() == [0, 1, 2] and abs(float(score) - 4.0) < 1e-9, "not yet right"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("09_structured_prediction", "9.2", viterbi)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 9.3: the structured hinge loss, with loss-augmented inference (4 points)
#
# The structured SVM's loss for the true sequence $\mathbf y$ is
#
# $$\ell(\mathbf y) = \max_{\mathbf y'}\Big[s(\mathbf y') + c\,\Delta(\mathbf y, \mathbf y')\Big] - s(\mathbf y),
#   \qquad \Delta(\mathbf y, \mathbf y') = \#\{t : y'_t \ne y_t\}\ \text{(the Hamming loss)},$$
#
# with a cost $c \ge 0$ per wrong label. The max looks hard, but $\Delta$ is a sum over positions, so it can be
# folded into the unary scores: add $c$ to `unary[t, k]` for every $k \neq y_t$, and one Viterbi run on the
# augmented scores finds the **most violating** sequence $\mathbf y^*$. Return the loss and $\mathbf y^*$.
# Run that Viterbi with `decode`, an argument: any function that takes `(unary, pairwise)` and returns the
# best labels and their score, as your `viterbi` of exercise 9.2 does. The grader passes the package's
# `ebm_teach.crf.viterbi`, so a mistake in 9.2 cannot fail this exercise too; the self-check below passes
# a brute-force search over every sequence. Check for yourself: why is $\ell \ge 0$ always, and when is it exactly 0? And why is
# $\ell$ at least $c$ times the number of labels that the prediction $\arg\max_{\mathbf y'} s(\mathbf y')$
# gets wrong?

# %%
def structured_hinge_loss(unary, pairwise, y, cost, decode):
    """The margin-rescaled structured hinge loss of the true labels y, and the most violating sequence.

    unary: (T, K); pairwise: (K, K); y: (T,) long tensor of true labels; cost: c >= 0, the margin per wrong
    label; decode: a Viterbi, decode(unary, pairwise) -> (labels (T,), their score). Returns (loss, y_star): loss = max_y' [s(y') + cost * Hamming(y, y')] - s(y) as a float (or 0-d
    tensor), y_star a (T,) long tensor attaining the max.
    """
    T, K = unary.shape
    if pairwise.shape != (K, K) or y.shape != (T,):
        raise ValueError(f"need unary (T, K), pairwise (K, K), y (T,); got {tuple(unary.shape)}, {tuple(pairwise.shape)}, "
                         f"{tuple(y.shape)}.")
    ### BEGIN SOLUTION
    augmented = unary + cost * (1 - torch.nn.functional.one_hot(y, K).to(unary.dtype))
    y_star, best = decode(augmented, pairwise)
    y_star = torch.as_tensor(y_star, dtype=torch.long)
    true_score = unary[torch.arange(T), y].sum() + pairwise[y[:-1], y[1:]].sum()
    return float(best) - float(true_score), y_star
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check: the truth beats every wrong label by 3 at each of 4 positions. With cost 2.9 the margin holds
# (loss 0); with cost 3.1 every label can be flipped at a profit of 0.1, so the loss is 4 * 0.1 = 0.4.
def brute_force_decode(unary, pairwise):
    """The best of all K^T label sequences and its score: slow, but certainly right."""
    T, K = unary.shape
    ys = torch.tensor(list(itertools.product(range(K), repeat=T)))
    scores = unary[torch.arange(T), ys].sum(1) + pairwise[ys[:, :-1], ys[:, 1:]].sum(1)
    best = int(scores.argmax())
    return ys[best], scores[best]


y = torch.tensor([0, 1, 2, 1])
unary = 3.0 * torch.nn.functional.one_hot(y, 3).double()
for c, want in [(2.9, 0.0), (3.1, 0.4)]:
    loss, y_star = structured_hinge_loss(unary, torch.zeros(3, 3, dtype=torch.float64), y, c,
                                         brute_force_decode)
    print(f"cost {c}: loss = {float(loss):.6f} (expected {want}), most violating sequence {torch.as_tensor(y_star).tolist()}")
    assert abs(float(loss) - want) < 1e-9, "not yet right"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("09_structured_prediction", "9.3", structured_hinge_loss)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 9.4: a chain you can sum by hand — a derivation (3 points)
#
# Take a "sticky" chain with $K \ge 2$ labels: all unary scores are 0 and the transitions reward staying on the
# same label, $A = c\,I$ (score $c$ for $y_{t+1} = y_t$, 0 for any change). Derive, on paper, closed forms in
# $K$, $T$ and $c$ for
#
# 1. $\log Z$. *Hint:* build a sequence left to right: $K$ choices for $y_1$; then at each of the $T-1$ steps,
#    either repeat the label (one way, weight $e^c$) or change it ($K-1$ ways, weight 1 each).
# 2. the expected number of repeats, $\mathbb E\big[\#\{t : y_{t+1} = y_t\}\big]$. *Hint:* the score is $c$
#    times the number of repeats, so this expectation is $\partial \log Z / \partial c$ — the "expected counts"
#    of the chapter.
#
# Then code your formulas. They must hold for chains far too long to enumerate ($T = 200$, $K = 50$) and stay
# finite for $c = \pm 800$: write $\log(e^c + K - 1)$ as `torch.logaddexp` (or as $c + \log(1 + (K-1)e^{-c})$
# for large $c$). Enumeration is not an answer here: the checks use chains with $50^{200}$ sequences.

# %%
def sticky_chain(K, T, c):
    """Closed forms for the chain with unary = 0 and pairwise = c * I (K labels, T positions).

    K >= 2, T >= 1 integers; c a float. Returns (log_Z, expected_repeats), two floats:
    log_Z = log of the sum over all K^T sequences of exp(c * number of repeats),
    expected_repeats = the expected number of positions t with y_{t+1} = y_t.
    """
    ### BEGIN SOLUTION
    c = torch.tensor(float(c), dtype=torch.float64)
    log_step = torch.logaddexp(c, torch.tensor(math.log(K - 1) if K > 1 else -math.inf, dtype=torch.float64))
    log_z = math.log(K) + (T - 1) * float(log_step)
    expected_repeats = (T - 1) * float(torch.exp(c - log_step))
    return log_z, expected_repeats
    ### END SOLUTION


# %% tags=["self-check"]
# Self-check against an enumeration of all 3^4 = 81 sequences for c = 0.7.
K, T, c = 3, 4, 0.7
ys = torch.tensor(list(itertools.product(range(K), repeat=T)))
repeats = (ys[:, 1:] == ys[:, :-1]).sum(1).double()
log_z_enum = float(torch.logsumexp(c * repeats, 0))
mean_enum = float((torch.softmax(c * repeats, 0) * repeats).sum())
log_z, mean_repeats = sticky_chain(K, T, c)
print(f"log Z = {float(log_z):.6f} (enumeration {log_z_enum:.6f}); expected repeats = {float(mean_repeats):.6f} "
      f"(enumeration {mean_enum:.6f})")
assert abs(float(log_z) - log_z_enum) < 1e-9 and abs(float(mean_repeats) - mean_enum) < 1e-9, "not yet right"

# %% tags=["hidden-test"]
### BEGIN HIDDEN TESTS
from ebm_teach.grade import run_checks

run_checks("09_structured_prediction", "9.4", sticky_chain)
### END HIDDEN TESTS
