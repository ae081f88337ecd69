# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 9: Energy-based structured prediction — CRFs, the structured perceptron and the structured SVM
#
# Every EBM so far put an energy on the *data*, $E(\mathbf x)$, and paid for it with a partition function over
# all possible data: a 64-pixel sum for a small RBM, an integral we could only estimate for a neural energy.
# This chapter turns the model around. The input $\mathbf x$ is given; the energy $E(\mathbf x, \mathbf y)$
# scores candidate *outputs* $\mathbf y$, and the output is structured: a sequence of labels, a segmentation,
# a parse. The partition function is now a sum over outputs, one per input. For outputs that form a chain
# that sum is exact and cheap, by dynamic programming; and if we only want the best output, we need not
# compute it at all. This is where *learning without probabilities* lives.
#
# **Learning objectives.** After this chapter you can
# 1. write a conditional EBM $p(\mathbf y\mid\mathbf x) = e^{-E(\mathbf x,\mathbf y)}/Z(\mathbf x)$ and say over
#    what $Z(\mathbf x)$ sums;
# 2. derive the forward algorithm for $\log Z$ of a linear chain, forward–backward for its marginals, and
#    Viterbi for its best sequence, and check them against brute-force enumeration;
# 3. train a linear-chain conditional random field (CRF) by maximum likelihood, and explain why its gradient
#    is "observed minus expected counts";
# 4. train the same model without $Z$: by the structured perceptron and by the structured hinge loss with
#    loss-augmented inference, and compare all three with a per-position classifier;
# 5. draw LeCun et al.'s (2006) energy, perceptron, hinge and log losses, and say which ones collapse, which
#    need a margin and which need $Z$;
# 6. see exact inference end on a 2-D grid, and fall back on chapter 2's Gibbs sampler and pseudo-likelihood.

# %%
import inspect
import itertools
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import ebm_teach.crf as crf
from ebm_teach import get_device, make_generator, seed_everything
from ebm_teach.crf import (
    LinearChainCRF, accuracies, chain_log_partition, chain_marginals, chain_sample, counting_grammar, crf_nll,
    digit_sequences, energy_losses, fit_crf, grid_as_chain, grid_gibbs, grid_log_partition,
    grid_pseudo_log_likelihood, grid_row_states, grid_score, observed_counts, viterbi,
)
from ebm_teach.data import load_digits, train_test_split
from ebm_teach.expect import claim, exact, expect, expectations
from ebm_teach.plotting.crf import (
    plot_chain_marginals, plot_digit_sequences, plot_embeddings, plot_error_vs_sweeps, plot_exact_cost,
    plot_image_rows_labelled, plot_loss_plane, plot_method_comparison, plot_transition_scores,
)

SCALE = 1  # integer; raise it on a GPU: more epochs, more seeds, longer Gibbs runs
device = get_device()
seed_everything(0)
expectations(SCALE == 1)  # the "expected" ranges printed below hold at SCALE = 1
if device.type == "cpu":
    torch.set_num_threads(1)  # chains of 8 labels, 10 classes: thousands of tiny ops that a second thread only slows
D = torch.float64  # the exact comparisons run in double precision
print(f"device: {device.type}, SCALE = {SCALE}")

# %% [markdown]
# ## 1. From $p(\mathbf x)$ to $p(\mathbf y \mid \mathbf x)$
#
# A **conditional EBM** gives each pair of an input $\mathbf x$ and an output $\mathbf y$ an energy, and reads
# it as a distribution over outputs for that input:
#
# $$p(\mathbf y \mid \mathbf x) = \frac{e^{-E(\mathbf x, \mathbf y)}}{Z(\mathbf x)}, \qquad
#   Z(\mathbf x) = \sum_{\mathbf y'} e^{-E(\mathbf x, \mathbf y')}.$$
#
# Two things changed from chapters 1–8. The sum runs over *outputs*, not inputs: we never model how the
# data $\mathbf x$ arise. And there is one partition function *per input*: a training set of $n$ examples has
# $n$ of them. Chapter 7's classifier was the simplest case, $K$ outputs and $Z(\mathbf x)$ a sum of $K$ terms
# (the softmax's denominator). Here the output is a sequence $\mathbf y = (y_1, \dots, y_T)$ of labels, each
# in $\{0, \dots, K-1\}$, so $Z(\mathbf x)$ has $K^T$ terms.
#
# From now on we write **scores** $s = -E$ (higher is better), as the CRF literature does. A *linear chain*
# lets each label talk only to its neighbours:
#
# $$s(\mathbf x, \mathbf y) = \sum_{t=1}^{T} u_t(y_t) + \sum_{t=1}^{T-1} A_{y_t, y_{t+1}},$$
#
# with **unary** scores $u_t(k)$, computed from the input (a network looking at position $t$), and
# **transition** scores $A_{ij}$ for the step from label $i$ to label $j$. In the code, `unary` is a $(T, K)$
# tensor and `pairwise` a $(K, K)$ one (a batch dimension in front is allowed for both).
#
# Three labels, two classes, two inputs: here is every output with its energy and probability. The transition
# scores reward neighbours that agree; the inputs differ only in their unary scores, and so do their $Z$.

# %%
pairwise_small = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=D)  # A[i, j]: +1 for agreeing neighbours
inputs = {"x": torch.tensor([[1.0, -1.0], [0.2, 0.0], [-0.5, 0.5]], dtype=D),
          "x'": torch.tensor([[-2.0, 2.0], [0.0, 0.5], [0.3, -0.2]], dtype=D)}
outputs = torch.tensor(list(itertools.product(range(2), repeat=3)))  # all 2^3 label sequences
for name, unary in inputs.items():
    s = unary[torch.arange(3), outputs].sum(1) + pairwise_small[outputs[:, :-1], outputs[:, 1:]].sum(1)
    p = torch.softmax(s, 0)
    print(f"input {name}: log Z({name}) = {exact(torch.logsumexp(s, 0), '.4f')}")
    print("   y      E = -s      p(y | x)")
    for y, e, q in zip(outputs.tolist(), (-s).tolist(), p.tolist()):
        print(f"   {y}  {exact(e, '6.2f')}   {exact(q, '.4f')}")

# %% [markdown]
# **Prediction needs no $Z$.** The most probable output is the one with the highest score, so predicting is
# an optimisation, $\hat{\mathbf y} = \arg\max_{\mathbf y} s(\mathbf x, \mathbf y)$ (LeCun et al. 2006 call it
# inference by energy minimisation). **Likelihood training needs $Z(\mathbf x)$** for every training input.
# With eight outputs we just listed them; with $K = 10$ labels and $T = 8$ positions there are $10^8$. The
# next section computes both sums without listing anything.
#
# ## 2. A chain: sum out one label at a time
#
# Write $Z$ as nested sums and push each sum as far in as it goes. Only $u_1$ and $A_{y_1 y_2}$ involve $y_1$,
# so $y_1$ can be summed out first, once for each value of its neighbour $y_2$:
#
# $$Z = \sum_{y_T}\!\cdots\!\sum_{y_2} e^{u_T(y_T) + \dots + u_2(y_2)}\;
#   \underbrace{\sum_{y_1} e^{u_1(y_1) + A_{y_1 y_2}}}_{\text{a function of } y_2 \text{ only}} .$$
#
# This is the move that turned an RBM's sum over hidden units into the free energy in chapter 2: a variable
# that touches few others can be summed out, leaving a function of those others. Repeating it along the chain
# gives the **forward algorithm**. With $\alpha_t(k)$ the summed weight of all label prefixes that end in
# label $k$ at position $t$,
#
# $$\log\alpha_1(k) = u_1(k), \qquad
#   \log\alpha_{t+1}(j) = u_{t+1}(j) + \operatorname*{logsumexp}_i\big(\log\alpha_t(i) + A_{ij}\big), \qquad
#   \log Z = \operatorname*{logsumexp}_k \log\alpha_T(k).$$
#
# That is $T K^2$ operations instead of $K^T$, all in log space so that scores of $\pm 1000$ neither
# overflow nor underflow. Here it is in `ebm_teach.crf` (vectorised over a batch of chains):

# %%
print(inspect.getsource(crf._forward))

# %% [markdown]
# Replacing the sum by a max gives **Viterbi**: $\delta_{t+1}(j) = u_{t+1}(j) + \max_i(\delta_t(i) + A_{ij})$
# is the best score of a prefix ending in $j$; remembering which $i$ won at each step and walking back from
# the best final label recovers the best sequence itself.

# %%
print(inspect.getsource(crf._viterbi))

# %% [markdown]
# Both against brute force: a chain of $T = 6$ positions and $K = 4$ labels has $4^6 = 4096$ sequences, few
# enough to list. The enumeration below scores every sequence from the definition.

# %%
g = torch.Generator().manual_seed(2)  # a fixed worked example (exact numbers, no training)
T, K = 6, 4
unary, pairwise = torch.randn(T, K, generator=g, dtype=D), 1.5 * torch.randn(K, K, generator=g, dtype=D)
ys = torch.tensor(list(itertools.product(range(K), repeat=T)))  # (4096, 6)
scores = unary[torch.arange(T), ys].sum(1) + pairwise[ys[:, :-1], ys[:, 1:]].sum(1)
p_all = torch.softmax(scores, 0)
node_bf = torch.stack([(p_all[:, None] * F.one_hot(ys[:, t], K)).sum(0) for t in range(T)])  # p(y_t = k)

log_z = chain_log_partition(unary, pairwise)
node, edge = chain_marginals(unary, pairwise)
best, best_score = viterbi(unary, pairwise)
print(f"log Z: brute force over {len(ys)} sequences {exact(torch.logsumexp(scores, 0), '.6f')}, "
      f"forward algorithm {exact(log_z, '.6f')}")
print(claim(float((node - node_bf).abs().max()) < 1e-12, "forward-backward marginals = enumerated marginals (to 1e-12)"))
print(f"Viterbi: {best.tolist()} with score {exact(best_score, '.6f')}; "
      f"best of the enumeration: {ys[scores.argmax()].tolist()} with score {exact(scores.max(), '.6f')}")

# %% [markdown]
# The marginals come from the same recursion run from both ends: the backward quantity $\beta_t(k)$ sums
# all *suffixes* after label $k$ at $t$, and $p(y_t = k) = \alpha_t(k)\,\beta_t(k)/Z$,
# $p(y_t = i, y_{t+1} = j) = \alpha_t(i)\,e^{A_{ij} + u_{t+1}(j)}\,\beta_{t+1}(j)/Z$ (forward–backward).
#
# **Extreme scores.** Multiply every score by 1000: a sum of $e^{s}$ overflows at once, the log-space
# recursion does not.

# %%
naive = torch.exp(1000 * scores).sum()
print(f"sum of exp(scores): {naive.item()}; logsumexp of the enumeration: {exact(torch.logsumexp(1000 * scores, 0), '.4f')}; "
      f"forward algorithm: {exact(chain_log_partition(1000 * unary, 1000 * pairwise), '.4f')}")
print(f"in float32: {exact(chain_log_partition((1000 * unary).float(), (1000 * pairwise).float()), '.0f', rel=1e-5)}")

# %% [markdown]
# **Best sequence versus best labels.** The marginal $p(y_t = k)$ tells how sure the model is about each
# position. Picking the most probable label at every position separately need not give the most probable
# *sequence*: in the picture below the darkest cell of some columns is off the Viterbi path.

# %%
per_position = node.argmax(1)
print(f"most probable label at each position: {per_position.tolist()}, p = {exact(p_all[(ys == per_position).all(1)].sum(), '.4f')}")
print(f"most probable sequence (Viterbi):     {best.tolist()}, p = {exact(p_all[(ys == best).all(1)].sum(), '.4f')}")
fig, ax = plt.subplots(figsize=(5.5, 3.4))
plot_chain_marginals(node, {"Viterbi path": best, "per-position argmax": per_position}, ax=ax,
                     title="node marginals p(y_t = k) of a random chain")
plt.show()

# %% [markdown]
# The cost difference is what makes chains practical:

# %%
for K_, T_ in [(4, 6), (10, 8), (10, 50)]:
    print(f"K = {K_:2d}, T = {T_:2d}: enumeration {float(K_) ** T_:.1e} sequences; forward algorithm T K^2 = {T_ * K_ * K_}")

# %% [markdown]
# ## 3. Sequences of digits: a CRF against a per-position classifier
#
# Data where structure matters, built offline from scikit-learn's 1,797 $8\times 8$ digits. A label sequence
# follows a small grammar: the first digit is uniform, and each next digit is the previous one **plus 1 or
# plus 2** (mod 10), with probability ½ each. Position $t$ shows a random image of digit $y_t$ with strong
# Gaussian noise ($\sigma = 0.5$ on pixels in $[0, 1]$). The images of the training sequences come from one
# half of the digits, those of the test sequences from the other half.
#
# A digit read alone is often ambiguous under this noise; but once its neighbours are read, the grammar
# leaves at most two candidates (if $y_{t-1} = 3$, then $y_t \in \{4, 5\}$), and often one. A per-position
# classifier cannot use that; a CRF learns it in its transition scores $A$. The grammar carries 1 bit per
# step, against $\log_2 10 = 3.3$ bits for a free digit.

# %%
images, digit_labels = load_digits(return_labels=True, device=device)
img_train, img_test, lab_train, lab_test = train_test_split(images, digit_labels, test_fraction=0.5, seed=0)
grammar = counting_grammar(10, steps=(1, 2))  # row i: p(y_{t+1} | y_t = i)
LENGTH, NOISE, N_TRAIN, N_TEST = 8, 0.5, 500, 500


def make_sequences(seed):
    """Training and test sequences (x: (n, T, 64), y: (n, T)) for one seed."""
    g = make_generator(seed, device)
    return (digit_sequences(img_train, lab_train, N_TRAIN, LENGTH, grammar, NOISE, g)
            + digit_sequences(img_test, lab_test, N_TEST, LENGTH, grammar, NOISE, g))


x_train, y_train, x_test, y_test = make_sequences(0)
print(f"{len(x_train)} training and {len(x_test)} test sequences of {LENGTH} noisy digits; "
      f"images from {len(img_train)} and {len(img_test)} digits")
plot_digit_sequences(x_test[:3], y_test[:3], {}, title="test sequences: each digit is the previous + 1 or + 2 (mod 10)")
plt.show()

# %% [markdown]
# ### The model and three ways to train it
# `LinearChainCRF` computes the unary scores with a linear map of each position's 64 pixels,
# $u_t(k) = \mathbf w_k^\top \mathbf x_t + b_k$, and learns the $10 \times 10$ transition scores $A$. Holding
# $A = 0$ makes $p(\mathbf y\mid\mathbf x)$ a product over positions: that is the **per-position classifier**
# (multinomial logistic regression), and its negative log-likelihood is the summed cross-entropy of the
# positions. Three ways to train the CRF:
#
# - **Negative log-likelihood** (Lafferty et al. 2001): $\ell = \log Z(\mathbf x) - s(\mathbf x, \mathbf y)$.
#   Because $s$ is linear in the *counts* of $\mathbf y$ (which label sits where, which transitions occur) and
#   $\partial \log Z / \partial u_t(k) = p(y_t = k\mid\mathbf x)$,
#   $\partial \log Z/\partial A_{ij} = \sum_t p(y_t = i, y_{t+1} = j\mid\mathbf x)$, the gradient is
#   **expected minus observed counts**: the same "model minus data" as every EBM gradient in this book, with
#   the expectation exact (forward–backward) instead of sampled.
# - **Structured perceptron** (Collins 2002): $\ell = \max_{\mathbf y'} s(\mathbf x, \mathbf y') - s(\mathbf x,
#   \mathbf y)$, found by Viterbi. Its gradient step adds the counts of the truth and subtracts those of the
#   prediction, and does nothing when the prediction is right. Collins averages the parameters over all steps;
#   we do too.
# - **Structured hinge loss**, the structured SVM (Taskar et al. 2003; Tsochantaridis et al. 2005):
#   $\ell = \max_{\mathbf y'}\big[s(\mathbf x, \mathbf y') + \Delta(\mathbf y, \mathbf y')\big] - s(\mathbf x,
#   \mathbf y)$ with the Hamming loss $\Delta$ (the number of wrong labels). It is zero only when the truth
#   beats every other sequence by a margin that grows with how wrong that sequence is. Because $\Delta$ is a
#   sum over positions, the max is a Viterbi run on the unary scores plus 1 for every wrong label:
#   **loss-augmented inference**.

# %%
print(inspect.getsource(crf._per_sequence_loss))

# %% [markdown]
# All four models start from zero weights and take the same minibatch steps (20 sequences, 12 epochs,
# parameters averaged over the steps); the NLL, the hinge and the per-position classifier use Adam with a
# small L2 penalty, the perceptron Collins' plain update (SGD with step 1, for which the step size does not
# matter from zero weights). We repeat everything with three seeds (new sequences, new minibatch order).

# %%
METHODS = {
    "per-position": dict(transitions=False, loss="nll", lr=0.05, weight_decay=1e-3),
    "CRF (NLL)": dict(transitions=True, loss="nll", lr=0.05, weight_decay=1e-3),
    "perceptron": dict(transitions=True, loss="perceptron", optimizer="sgd", lr=1.0),
    "SVM (hinge)": dict(transitions=True, loss="hinge", lr=0.05, weight_decay=1e-3),
}
N_EPOCHS, SEEDS = 12 * SCALE, [0, 1, 2]
results = {name: {"position": [], "sequence": [], "seconds": []} for name in METHODS}
repaired, grammatical = [], []  # per seed: classifier errors the CRF gets right; CRF outputs the grammar allows
models = {}
for seed in SEEDS:
    x_tr, y_tr, x_te, y_te = make_sequences(seed)
    for name, cfg in METHODS.items():
        cfg = dict(cfg)
        model = LinearChainCRF(64, 10, transitions=cfg.pop("transitions")).to(device)
        history = fit_crf(model, x_tr, y_tr, n_epochs=N_EPOCHS, batch_size=20, average=True,
                          generator=make_generator(100 + seed, device), **cfg)
        position, sequence = accuracies(model.predict(x_te), y_te)
        results[name]["position"].append(position)
        results[name]["sequence"].append(sequence)
        results[name]["seconds"].append(history["seconds"][-1])
        if seed == SEEDS[0]:
            models[name] = model
        if name == "per-position":
            wrong_alone = model.predict(x_te) != y_te
        if name == "CRF (NLL)":
            pred = model.predict(x_te)
            repaired.append(float((pred == y_te)[wrong_alone].float().mean()))
            allowed = grammar.to(device)[pred[:, :-1], pred[:, 1:]] > 0  # (n, T - 1): is each predicted step allowed?
            grammatical.append((float(allowed.all(1).float().mean()), float(allowed.float().mean())))
print(f"trained {len(METHODS)} models on each of {len(SEEDS)} seeds, {N_EPOCHS} epochs each")


def mean_sd(values):
    v = torch.tensor(values, dtype=D)
    return float(v.mean()), float(v.std())


# %% tags=["nbval-ignore-output"]
print(f"{'test accuracy':14s} {'per position':>16s} {'whole sequence':>16s} {'training seconds':>18s}")
for name, r in results.items():
    (mp, sp), (ms, ss), (mt, st) = mean_sd(r["position"]), mean_sd(r["sequence"]), mean_sd(r["seconds"])
    print(f"{name:14s} {mp:9.3f} ± {sp:.3f} {ms:9.3f} ± {ss:.3f} {mt:11.2f} ± {st:.2f} s")

# %% [markdown]
# (Mean ± standard deviation over the three seeds; the last digits change from machine to machine. The checked
# figures follow: each "expected" range in this book is the mean ± 4 standard deviations over 8 runs with
# other seeds.)

# %%
EXPECTED_POS = {"per-position": (0.709, 0.02), "CRF (NLL)": (0.927, 0.015), "perceptron": (0.911, 0.03),
                "SVM (hinge)": (0.926, 0.015)}
EXPECTED_SEQ = {"per-position": (0.062, 0.02), "CRF (NLL)": (0.63, 0.06), "perceptron": (0.575, 0.1), "SVM (hinge)": (0.625, 0.065)}
for name, r in results.items():
    (acc_pos, tol_pos), (acc_seq, tol_seq) = EXPECTED_POS[name], EXPECTED_SEQ[name]
    print(f"{name:14s} per position {expect(mean_sd(r['position'])[0], acc_pos, tol_pos)}, "
          f"whole sequence {expect(mean_sd(r['sequence'])[0], acc_seq, tol_seq)}")
pos = {name: r["position"] for name, r in results.items()}
seq = {name: r["sequence"] for name, r in results.items()}
structured = ["CRF (NLL)", "perceptron", "SVM (hinge)"]
print(claim(all(a > b + 0.15 for name in structured for a, b in zip(pos[name], pos["per-position"])),
            "every structured model beats the per-position classifier by more than 15 points per position, on every seed"))
print(claim(all(a > 5 * b for name in structured for a, b in zip(seq[name], seq["per-position"])),
            "and gets more than five times as many whole sequences right, on every seed"))
gap = max(max(pos[a][i] for a in structured) - min(pos[a][i] for a in structured) for i in range(len(SEEDS)))
print(claim(gap < 0.03, f"the three structured losses end within 3 points of each other per position on every seed "
                        f"(largest gap {gap:.3f})"))

# %%
plot_method_comparison(results, ["position", "sequence"], ylabels=["per-position accuracy", "whole-sequence accuracy"],
                       title=f"test accuracy on {len(SEEDS)} seeds (dots) and their mean (bars)")
plt.show()

# %% [markdown]
# Transitions are what the per-position classifier lacks, and the whole-sequence accuracy shows it most:
# one wrong digit in eight spoils a sequence, so per-position errors compound ($0.7^8 \approx 6\%$).
# The three structured losses land close together here; they differ in what they need. The NLL needs
# $Z(\mathbf x)$ and its gradient (forward–backward); the perceptron and the hinge need only a Viterbi run
# and the scores of two sequences. All three run one dynamic program per sequence and step, $O(T K^2)$;
# the table's training times show what that costs on this machine.
#
# What did the CRF learn? Its transition scores $A$ (left) beside the grammar that made the data (right):
# high where the grammar steps, low everywhere else — including the diagonal, which the grammar never uses.

# %%
crf_model = models["CRF (NLL)"]
fig, axes = plt.subplots(1, 2, figsize=(8, 3.3))
plot_transition_scores(crf_model.transitions.detach().cpu(), ax=axes[0], title="learned transition scores A")
plot_transition_scores(grammar, ax=axes[1], label="probability", title="the grammar p(y_{t+1} | y_t)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The gradient identity, checked on the trained CRF (in float64): autograd of the summed NLL of 50 training
# sequences with respect to $A$ equals the expected transition counts minus the observed ones.

# %%
u = crf_model(x_train[:50]).detach().double()
A = crf_model.transitions.detach().double().requires_grad_(True)
(grad_A,) = torch.autograd.grad(crf_nll(u, A, y_train[:50]).sum(), A)
_, edge_marginals = chain_marginals(u, A.detach())
_, edge_counts = observed_counts(y_train[:50], 10)
diff = (grad_A - (edge_marginals - edge_counts.to(edge_marginals)).sum((0, 1))).abs().max()
print(claim(float(diff) < 1e-10, "dNLL/dA = expected minus observed transition counts (to 1e-10)"))

# %% [markdown]
# Some test sequences, read by the per-position classifier and by the CRF (red: wrong). Where the classifier
# misreads a digit, the CRF mostly repairs it from its neighbours. Its own outputs mostly obey the grammar,
# but not always: the transition scores it learned for impossible steps are finite (about $-2$ in the
# picture above), not $-\infty$, so an image read confidently enough can still override them.

# %%
print(f"classifier errors that the CRF gets right: {expect(mean_sd(repaired)[0], 0.78, 0.03)} (mean over seeds)")
print(claim(min(repaired) > 0.7, "the CRF repairs more than 70 % of the per-position classifier's errors, on every seed"))
print(claim(all(whole > 0.85 and step > 0.97 for whole, step in grammatical),
            "more than 85 % of the CRF's test outputs obey the grammar at every step, and more than 97 % of its "
            "steps are allowed, on every seed"))
with torch.no_grad():
    pred_pos, pred_crf = models["per-position"].predict(x_test), crf_model.predict(x_test)
shown = ((pred_pos != y_test).sum(1) >= 2).nonzero().flatten()[:3].cpu()
plot_digit_sequences(x_test[shown], y_test[shown], {"per-position": pred_pos[shown], "CRF": pred_crf[shown]},
                     title="test sequences: truth, per-position classifier, CRF")
plt.show()

# %% [markdown]
# ## 4. LeCun et al.'s losses on one picture
#
# LeCun, Chopra, Hadsell, Ranzato and Huang (2006, "A tutorial on energy-based learning") ask what a loss
# must do to train an EBM. Inference picks the lowest energy; so training must push the energy of the correct
# answer $E(\mathbf y)$ down *and* the energies of the wrong answers up, at least of the **most offending**
# one $\bar{\mathbf y}$ (the wrong answer with the lowest energy). Four losses, for one example:
#
# | loss | $\ell$ | pushes up wrong answers? | needs $Z$? |
# |---|---|---|---|
# | energy | $E(\mathbf y)$ | no | no |
# | perceptron | $E(\mathbf y) - \min_{\mathbf y'} E(\mathbf y')$ | the best one, until the truth wins | no |
# | hinge | $\max\big(0,\ m + E(\mathbf y) - E(\bar{\mathbf y})\big)$ | the most offending, until a margin $m$ | no |
# | log (NLL) | $E(\mathbf y) + \log\sum_{\mathbf y'} e^{-E(\mathbf y')}$ | all, in proportion to $p(\mathbf y')$ | yes |
#
# Section 3's three losses are the last three with $E = -s$ and $\mathbf y'$ ranging over sequences (the
# structured SVM makes the margin $m = \Delta(\mathbf y, \mathbf y')$). With two answers each loss is a function
# of two numbers, $E(\text{correct})$ and $E(\text{wrong})$, and we can draw it; arrows point where gradient
# descent moves the two energies.

# %%
print(inspect.getsource(energy_losses).split('"""')[-1])
notes = {"energy": "only pushes down", "perceptron": "no margin", "hinge": "margin m = 1", "log": "needs Z"}
plot_loss_plane(energy_losses, margin=1.0, notes=notes)
plt.show()

# %% [markdown]
# Above the dashed diagonal the correct answer wins. The **energy loss** ignores the wrong answer: its
# contours are vertical. That is fine when the architecture itself forbids lowering every energy at once (a
# regression onto fixed targets), and a disaster when it does not: the energy surface can become flat, every
# answer equally good — a **collapse**. The **perceptron loss** is zero on the whole upper half, including the
# diagonal where both energies are equal, so it does not prevent a flat surface either. The **hinge** insists
# on a gap $m$; the **log loss** keeps pushing, ever more weakly, and is the only one that needs $Z$.
#
# To see a collapse, give the model a way to lower every energy together. LeCun et al.'s example is an
# architecture that embeds both the input and the answers and measures their distance:
#
# $$E(\mathbf x, y) = \tfrac12 \lVert f(\mathbf x) - \mathbf e_y\rVert^2, \qquad f(\mathbf x) = W\mathbf x + \mathbf c \in \mathbb R^2,$$
#
# with the ten answer embeddings $\mathbf e_0, \dots, \mathbf e_9$ learned along with $W$ and $\mathbf c$.
# Mapping every image and every answer to one point makes every energy zero: the energy loss's minimum.
# We train it on single clean digits with each loss (200 full-batch Adam steps, three seeds) and measure, on
# the test digits, the **energy spread** $\max_y E(\mathbf x, y) - \min_y E(\mathbf x, y)$ (zero means
# collapsed) and the accuracy of $\arg\min_y E$.

# %%
def embedding_energies(params, x):
    """E(x, y) = |f(x) - e_y|^2 / 2 for every answer: (n, 10), and the embeddings f(x): (n, 2)."""
    W, c, e = params
    z = x @ W + c
    return 0.5 * ((z[:, None, :] - e[None]) ** 2).sum(-1), z


def train_embedding(kind, seed, n_steps=200 * SCALE, lr=0.05):
    g = make_generator(seed, device)
    params = [(0.1 * torch.randn(64, 2, generator=g, device=device)).requires_grad_(True),
              torch.zeros(2, device=device, requires_grad=True),
              torch.randn(10, 2, generator=g, device=device).requires_grad_(True)]
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(n_steps):
        energies, _ = embedding_energies(params, img_train)
        loss = energy_losses(energies, lab_train)[kind].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach() for p in params]


LOSS_NAMES = ["energy", "perceptron", "hinge", "log"]
collapse = {kind: {"spread": [], "accuracy": []} for kind in LOSS_NAMES}
embeddings = {}
for seed in SEEDS:
    for kind in LOSS_NAMES:
        params = train_embedding(kind, seed)
        energies, z = embedding_energies(params, img_test)
        collapse[kind]["spread"].append(float((energies.max(1).values - energies.min(1).values).mean()))
        collapse[kind]["accuracy"].append(float((energies.argmin(1) == lab_test).float().mean()))
        if seed == SEEDS[0]:
            embeddings[kind] = (z, params[2])
print(f"trained the embedding model with {len(LOSS_NAMES)} losses on each of {len(SEEDS)} seeds")

# %% tags=["nbval-ignore-output"]
print(f"{'loss':11s} {'energy spread':>22s} {'test accuracy':>20s}   (mean ± sd over {len(SEEDS)} seeds)")
for kind, r in collapse.items():
    (ms, ss), (ma, sa) = mean_sd(r["spread"]), mean_sd(r["accuracy"])
    print(f"{kind:11s} {ms:13.3f} ± {ss:6.3f} {ma:12.3f} ± {sa:.3f}")

# %%
spread, acc = ({k: r[key] for k, r in collapse.items()} for key in ("spread", "accuracy"))
print(f"energy spread, energy loss:     {expect(mean_sd(spread['energy'])[0], 0.012, 0.035)}")
print(f"energy spread, log loss:        {expect(mean_sd(spread['log'])[0], 30, 15)}")
print(f"test accuracy, log loss:        {expect(mean_sd(acc['log'])[0], 0.73, 0.1)}")
print(claim(max(spread["energy"]) < 0.1, "the energy loss collapses: energy spread below 0.1 on every seed"))
print(claim(all(p < h for p, h in zip(spread["perceptron"], spread["hinge"])),
            "the perceptron's energies spread less than the hinge's, on every seed"))
print(claim(min(spread["hinge"]) > 1 and min(spread["log"]) > 1, "hinge and log loss keep a spread above 1 on every seed"))
print(claim(all(lg > h for lg, h in zip(spread["log"], spread["hinge"])), "the log loss spreads the energies more "
            "than the hinge, on every seed"))

# %%
fig, axes = plt.subplots(1, 4, figsize=(8, 2.4))
for ax, kind in zip(axes, LOSS_NAMES):
    z, centres = embeddings[kind]
    plot_embeddings(z[:400], lab_test[:400], centres, ax=ax, title=f"{kind} loss")
fig.suptitle("f(x) of test digits (dots) and answer embeddings e_y (boxes), seed 0", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# (Each panel has its own scale: the energy loss's points sit within a tiny patch.) The energy loss has
# pulled every image and every answer onto one spot, as predicted. The tiny differences left still rank the
# answers better than chance (the table's accuracy), but an energy surface this flat has no margin at all:
# any perturbation reorders it. The perceptron stops as soon as the truth
# wins by any amount, so its energies stay close together and its answers crowd; the hinge keeps them a margin
# apart, and the log loss spreads them furthest. Two lessons carry over to structured outputs: a loss that
# never pushes up wrong answers needs an architecture that does it instead, and a margin (or a partition
# function) is what keeps a learned energy from going flat.
#
# ## 5. Where exact inference ends: a 2-D grid
#
# Now let the labels form an image: $\mathbf y \in \{-1, +1\}^{H\times W}$ on a grid, with the Ising model's
# coupling between neighbours (chapter 2) and a field from the input,
#
# $$s(\mathbf x, \mathbf y) = \sum_i h_i(\mathbf x)\, y_i + J \sum_{\langle ij\rangle} y_i y_j ,$$
#
# a grid CRF. For **denoising**, $\mathbf x$ is a noisy copy of a clean image $\mathbf y$ (each pixel flipped
# with probability $\varepsilon$), and $h_i = \alpha x_i + b$. If the clean images come from an Ising model
# with coupling $J$, Bayes' rule makes the posterior exactly this CRF with $\alpha = \tfrac12\log\frac{1-
# \varepsilon}{\varepsilon}$, $b = 0$.
#
# Summing out one pixel no longer leaves a chain: each pixel has four neighbours, and summing it out couples
# them all. The trick that still works treats each **row** as one label with $2^W$ values: rows form a chain,
# the row's own bonds go into its unary score, the vertical bonds into a $2^W \times 2^W$ transition matrix
# (`grid_as_chain`). Then `chain_log_partition`, `chain_marginals`, `viterbi` and `chain_sample` are exact on
# the grid, at a cost of $H\cdot 4^W$. First, a check against all $2^{16} = 65{,}536$ configurations of a
# $4\times 4$ grid:

# %%
g = torch.Generator().manual_seed(3)  # a fixed worked example
field44, J44 = 0.5 * torch.randn(4, 4, generator=g, dtype=D), 0.4
configs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=16)), dtype=D).reshape(-1, 4, 4)
log_z_bf = torch.logsumexp(grid_score(configs, field44.expand(len(configs), 4, 4), J44), 0)
print(f"4x4 grid: log Z by enumeration {exact(log_z_bf, '.6f')}, as a chain of 4 rows with 16 states "
      f"{exact(grid_log_partition(field44, J44), '.6f')}")

# %% [markdown]
# The price of exactness grows like $4^W$: each step of the row chain is a $2^W \times 2^W$ log-sum-exp.
# Timed on an 8-row grid (for the narrowest grids the fixed cost of each call dominates):

# %% tags=["nbval-ignore-output"]
widths, seconds = list(range(2, 11)), []
for W_ in widths:
    f = torch.zeros(4, 8, W_, dtype=D, device=device)
    grid_log_partition(f, 0.3)  # warm-up
    start = time.perf_counter()
    float(grid_log_partition(f, 0.3).sum())
    seconds.append((time.perf_counter() - start) / 4)
plot_exact_cost(widths, seconds, n_rows=8, title="exact log Z of a grid: the cost explodes with its width")
plt.show()
print(f"a 28x28 image (MNIST) would need 28 * 4^28 = {28 * 4.0 ** 28:.1e} terms: at this machine's rate "
      f"about {seconds[-1] / (8 * 4 ** 10) * 28 * 4.0 ** 28 / 3.15e7:.0e} years")

# %% [markdown]
# Below that limit we can still do everything exactly, which lets us check the approximations we would use
# above it. The data: clean $8 \times 6$ images drawn **exactly** from an Ising model with $J = 0.5$ (by
# forward filtering, backward sampling on the row chain), and noisy copies with $\varepsilon = 0.25$.

# %%
H, W, J_TRUE, EPS = 8, 6, 0.5, 0.25
ALPHA_TRUE = 0.5 * math.log((1 - EPS) / EPS)
states = grid_row_states(W, device=device)  # (64, 6): the spins of each row state


def make_grids(seed, n):
    """n clean Ising images (exact samples) and their noisy copies, (n, H, W) in {-1, +1}."""
    g = make_generator(seed, device)
    clean = states[chain_sample(*grid_as_chain(torch.zeros(H, W, dtype=D, device=device), J_TRUE), n, generator=g)]
    flip = torch.rand(clean.shape, generator=g, dtype=D, device=device) < EPS
    return clean, torch.where(flip, -clean, clean)


clean_train, noisy_train = make_grids(0, 100)
clean_test, noisy_test = make_grids(1000, 300)
print(f"pixels flipped by the noise in the test images: {expect(float((noisy_test != clean_test).double().mean()), 0.25, 0.02)}")

# %% [markdown]
# ### Learning the grid CRF: exact likelihood against pseudo-likelihood
# Suppose we do not know $\alpha, b, J$ and learn them from 100 (clean, noisy) pairs. Maximum conditional
# likelihood needs $\log Z(\mathbf x)$ of every training image: exact here through the rows, impossible for
# wide images. **Pseudo-likelihood** (Besag 1975; chapter 2 met it as scikit-learn's RBM score) replaces
# $\log p(\mathbf y\mid\mathbf x)$ by $\sum_i \log p(y_i \mid \mathbf y_{-i}, \mathbf x)$, and each factor is
# a one-pixel conditional, $\sigma\big(2 y_i (h_i + J\sum_{j\sim i} y_j)\big)$, in which $Z$ cancels. It is
# consistent: with enough data from the model, its maximiser is the true parameter too. Both are maximised
# with L-BFGS over the three numbers $(\alpha, b, J)$:

# %%
def fit_grid(objective):
    """Maximise objective(theta) over theta = (alpha, b, J) from zero with L-BFGS; returns theta."""
    theta = torch.zeros(3, dtype=D, device=device, requires_grad=True)
    opt = torch.optim.LBFGS([theta], lr=1, max_iter=60, line_search_fn="strong_wolfe", tolerance_grad=1e-7)

    def closure():
        opt.zero_grad()
        loss = -objective(theta)
        loss.backward()
        return loss

    opt.step(closure)
    return theta.detach()


def conditional_ll(theta, clean, noisy):
    """Mean exact log p(y | x) = s(x, y) - log Z(x) per image."""
    field = theta[0] * noisy + theta[1]
    return (grid_score(clean, field, theta[2]) - grid_log_partition(field, theta[2])).mean()


def pseudo_ll(theta, clean, noisy):
    return grid_pseudo_log_likelihood(clean, theta[0] * noisy + theta[1], theta[2]).mean()


fits = {"exact likelihood": [], "pseudo-likelihood": []}
fit_seconds = {name: [] for name in fits}
for seed in SEEDS:
    clean, noisy = (clean_train, noisy_train) if seed == SEEDS[0] else make_grids(seed, 100)
    for name, objective in [("exact likelihood", conditional_ll), ("pseudo-likelihood", pseudo_ll)]:
        start = time.perf_counter()
        fits[name].append(fit_grid(lambda th: objective(th, clean, noisy)))
        fit_seconds[name].append(time.perf_counter() - start)
theta_ml, theta_pl = fits["exact likelihood"][0], fits["pseudo-likelihood"][0]
print(f"fitted (alpha, b, J) by both objectives on {len(SEEDS)} training sets of 100 images")

# %% tags=["nbval-ignore-output"]
print(f"truth:             alpha = {ALPHA_TRUE:.3f}, b = 0, J = {J_TRUE}")
for name, thetas in fits.items():
    t = torch.stack(thetas)
    print(f"{name:18s} alpha = {float(t[:, 0].mean()):.3f} ± {float(t[:, 0].std()):.3f}, "
          f"b = {float(t[:, 1].mean()):+.3f} ± {float(t[:, 1].std()):.3f}, J = {float(t[:, 2].mean()):.3f} ± "
          f"{float(t[:, 2].std()):.3f}   ({sum(fit_seconds[name]) / len(SEEDS):.3f} s per fit)")

# %%
J_ml = [float(t[2]) for t in fits["exact likelihood"]]
J_pl = [float(t[2]) for t in fits["pseudo-likelihood"]]
print(f"J by exact likelihood (seed 0): {expect(J_ml[0], 0.49, 0.065)}; by pseudo-likelihood: {expect(J_pl[0], 0.49, 0.07)}")
print(claim(all(abs(a - b) < 0.05 for a, b in zip(J_ml, J_pl)),
            "pseudo-likelihood's J is within 0.05 of the exact-likelihood J on every seed"))
print(claim(all(abs(j - J_TRUE) < 0.1 for j in J_ml + J_pl), "both are within 0.1 of the true J on every seed"))

# %% [markdown]
# When the model is right, pseudo-likelihood lands next to maximum likelihood without ever computing $Z$: its
# cost per image is one pass over the pixels, against $H\cdot 4^W$ for the exact likelihood (the table above
# times both). That is why it is the standard fallback
# for grids too wide for exact inference (Besag 1975); the price, in general, is statistical efficiency, and
# on real images (which are not Ising models) the two estimators can settle on different compromises.
#
# ### Denoising: exact answers, and Gibbs sampling where they are out of reach
# With the learned parameters the posterior gives two answers per pixel: the **MAP** image (Viterbi over
# rows: the single most probable clean image) and the **marginal** $p(y_i = +1\mid\mathbf x)$, whose sign is
# the best guess pixel by pixel (the decision that minimises the expected number of wrong pixels, where the
# MAP minimises the chance of any wrong pixel, as section 2's best labels and best sequence). For a wide grid neither is exact any more; chapter 2's checkerboard Gibbs
# sampler (now with a field) estimates the marginals by averaging the spins over sweeps. Here we can measure
# its error against the exact marginals.

# %%
field_test = theta_ml[0] * noisy_test + theta_ml[1]
unary_rows, pairwise_rows = grid_as_chain(field_test, theta_ml[2])
map_rows, _ = viterbi(unary_rows, pairwise_rows)
map_images = states[map_rows]
row_marginals, _ = chain_marginals(unary_rows, pairwise_rows)
mean_spin = row_marginals @ states  # E[y_i | x] = 2 p(y_i = +1 | x) - 1, exact
sweep_counts, gibbs_error = [10, 30, 100, 300], []
for n_sweeps in sweep_counts:
    run = grid_gibbs(field_test, theta_ml[2], n_sweeps=n_sweeps * SCALE + 5, burn_in=5,
                     generator=make_generator(7, device))
    gibbs_error.append(float((run.mean - mean_spin).abs().mean()))
    gibbs_mean = run.mean


def pixel_error(images):
    return float((images != clean_test).double().mean())


errors = {"noisy input": pixel_error(noisy_test), "MAP image": pixel_error(map_images),
          "sign of E[y_i | x]": pixel_error(torch.where(mean_spin > 0, 1.0, -1.0)),
          f"sign of the Gibbs estimate ({sweep_counts[-1]} sweeps)": pixel_error(torch.where(gibbs_mean > 0, 1.0, -1.0))}
for (name, err), (want, tol) in zip(errors.items(), [(0.25, 0.02), (0.17, 0.045), (0.147, 0.025), (0.149, 0.025)]):
    print(f"pixel error, {name:38s} {expect(err, want, tol)}")
for n_sweeps, err, (want, tol) in zip(sweep_counts, gibbs_error, [(0.23, 0.045), (0.14, 0.03), (0.079, 0.018), (0.046, 0.01)]):
    print(f"mean |Gibbs estimate - exact E[y_i]| after {n_sweeps:3d} sweeps: {expect(err, want, tol)}")
err = list(errors.values())
print(claim(err[2] < err[1] < err[0], "the marginals' signs make fewer pixel errors than the MAP image, "
                                      "and both far fewer than the noisy input"))
print(claim(abs(err[3] - err[2]) < 0.015, "the Gibbs estimate's decisions are within 1.5 points of the exact ones"))
print(claim(all(a > b for a, b in zip(gibbs_error, gibbs_error[1:])), "the Gibbs error falls with every step up in sweeps"))

# %%
fig, ax = plt.subplots(figsize=(4.2, 3.0))
plot_error_vs_sweeps([n + 0 for n in sweep_counts], {"checkerboard Gibbs": gibbs_error}, ax=ax,
                     ylabel="mean |estimate - exact E[y_i]|", title="Gibbs marginals converge to the exact ones")
plt.show()
plot_image_rows_labelled({"clean": clean_test, "noisy": noisy_test, "MAP": map_images,
                          "E[y | x]": mean_spin, "Gibbs": gibbs_mean}, n_cols=12,
                         title="denoising Ising images: exact MAP, exact marginals and their Gibbs estimate")
plt.show()

# %% [markdown]
# The Gibbs estimate's error shrinks like $1/\sqrt{\text{sweeps}}$, the Monte Carlo rate of chapter 4, and its
# pixel decisions already match the exact ones closely. Denoising removes a good part of the flipped pixels,
# not all: at $\varepsilon = 0.25$ many flips are indistinguishable from real structure, whatever the method. On a $28 \times 28$ image the exact column disappears
# and only the approximations remain: Gibbs or Langevin sampling for the marginals (chapters 2 and 4),
# pseudo-likelihood or contrastive divergence for learning (chapters 2–3), annealed importance sampling if
# $\log Z$ itself is wanted (chapter 3).
#
# ## Summary
#
# - A conditional EBM $p(\mathbf y\mid\mathbf x) = e^{s(\mathbf x,\mathbf y)}/Z(\mathbf x)$ has one partition
#   function per input, a sum over outputs. Prediction is $\arg\max_{\mathbf y} s$ and needs no $Z$.
# - On a chain, the forward algorithm sums out one label at a time: $\log Z$ in $O(TK^2)$, in log space;
#   forward–backward gives the marginals, Viterbi the best sequence. The most probable labels, position by
#   position, need not form the most probable sequence.
# - The CRF's NLL gradient is expected minus observed counts. The structured perceptron (Viterbi) and the
#   structured SVM (loss-augmented Viterbi, Hamming margin) train the same model without $Z$; on digit sequences
#   with a grammar all three far outperform a per-position classifier.
# - LeCun et al.'s losses: the energy loss only pushes down and can collapse; the perceptron has no margin;
#   the hinge has one; the log loss needs $Z$.
# - On a grid, exact inference costs $H\cdot 4^W$ through rows; beyond a few columns we are back to Gibbs
#   sampling and pseudo-likelihood.
#
# **References.** Lafferty, McCallum and Pereira (2001), "Conditional random fields"; Collins (2002),
# "Discriminative training methods for hidden Markov models"; Taskar, Guestrin and Koller (2003), "Max-margin
# Markov networks"; Tsochantaridis, Joachims, Hofmann and Altun (2005), "Large margin methods for structured
# and interdependent output variables"; LeCun, Chopra, Hadsell, Ranzato and Huang (2006), "A tutorial on
# energy-based learning"; Besag (1975), "Statistical analysis of non-lattice data".
