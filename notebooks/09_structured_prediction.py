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
# all possible data: for a small RBM on $8\times 8$ binary images, a sum over all $2^{64}$ images (or, summed
# the other way, over all states of its hidden units); for a neural energy, an integral we could only
# estimate. This chapter turns the model around. The input $\mathbf x$ is given; the energy
# $E(\mathbf x, \mathbf y)$ scores candidate *outputs* $\mathbf y$, and the output is structured: a sequence
# of labels, a segmentation, a parse. The partition function is now a sum over outputs, one per input. For
# outputs that form a chain that sum is exact and cheap, by dynamic programming; and if we only want the best
# output, we need not compute it at all. This is where *learning without probabilities* lives.
#
# **Learning objectives.** After this chapter you can
# 1. write a conditional EBM $p(\mathbf y\mid\mathbf x) = e^{-E(\mathbf x,\mathbf y)}/Z(\mathbf x)$ and say over
#    what $Z(\mathbf x)$ sums;
# 2. derive the forward algorithm for $\log Z$ of a linear chain, forward–backward for its marginals, and
#    Viterbi for its best sequence, and check them against brute-force enumeration;
# 3. train a linear-chain conditional random field (CRF) by maximum likelihood, and explain why the gradient of
#    its log-likelihood is "observed minus expected counts" (and that of the negative log-likelihood, which we
#    minimise, "expected minus observed");
# 4. train the same model without $Z$, by the structured perceptron and by the structured hinge loss with
#    loss-augmented inference; compare all three with a per-position classifier and with a piecewise-trained
#    baseline, and say where the gain comes from;
# 5. draw LeCun et al.'s (2006) energy, perceptron, hinge, log and negative log-likelihood losses, and say which
#    wrong answers each pushes up, which need a margin and which need $Z$;
# 6. see exact inference end on a 2-D grid (all but the best image, which a minimum cut still finds), and fall
#    back on chapter 2's Gibbs sampler and pseudo-likelihood.

# %%
import copy
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
    LinearChainCRF, accuracies, bigram_log_probs, chain_log_partition, chain_marginals, chain_sample,
    counting_grammar, crf_nll, digit_sequences, energy_losses, fit_crf, grid_as_chain, grid_gibbs,
    grid_log_partition, grid_map_graph_cut, grid_pseudo_log_likelihood, grid_row_states, grid_score,
    observed_counts, structured_hinge_loss, viterbi,
)
from ebm_teach.data import load_binarized_mnist, load_digits, train_test_split
from ebm_teach.expect import claim, exact, expect, expectations
from ebm_teach.plotting.crf import (
    plot_chain_marginals, plot_digit_sequences, plot_embeddings, plot_error_vs_sweeps, plot_exact_cost,
    plot_image_rows_labelled, plot_loss_plane, plot_method_comparison, plot_transition_scores,
)

SCALE = 1  # integer; raise it on a GPU: more training epochs and steps, longer Gibbs runs
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
# A chain of three positions ($T = 3$), each with one of two labels ($K = 2$), and two inputs: here is every
# output with its energy and probability. The transition scores reward neighbours that agree; the inputs
# differ only in their unary scores, and so do their $Z$.

# %%
pairwise_small = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=D)  # A[i, j]: +1 for agreeing neighbours
inputs = {"x": torch.tensor([[1.0, -1.0], [0.2, 0.0], [-0.5, 0.5]], dtype=D),
          "x'": torch.tensor([[-2.0, 2.0], [0.0, 0.5], [0.3, -0.2]], dtype=D)}
outputs = torch.tensor(list(itertools.product(range(2), repeat=3)))  # all 2^3 label sequences
for name, unary in inputs.items():
    s = unary[torch.arange(3), outputs].sum(1) + pairwise_small[outputs[:, :-1], outputs[:, 1:]].sum(1)
    p = torch.softmax(s, 0)
    print(f"input {name}: log Z({name}) = {exact(torch.logsumexp(s, 0), '.4f')}")
    print(f"   y      E = -s      p(y | {name})")
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
# $$Z = \sum_{y_T}\!\cdots\!\sum_{y_2}
#   \exp\Big(\sum_{t=2}^{T} u_t(y_t) + \sum_{t=2}^{T-1} A_{y_t y_{t+1}}\Big)\;
#   \underbrace{\sum_{y_1} e^{u_1(y_1) + A_{y_1 y_2}}}_{\text{a function of } y_2 \text{ only}} .$$
#
# This is the move that turned an RBM's sum over hidden units into the free energy in chapter 2: a variable
# that touches few others can be summed out, leaving a function of those others. Repeating it along the chain
# gives the **forward algorithm** (Rabiner 1989 tells its history for hidden Markov models). With
# $\alpha_t(k)$ the summed weight of all label prefixes that end in label $k$ at position $t$,
#
# $$\log\alpha_1(k) = u_1(k), \qquad
#   \log\alpha_{t+1}(j) = u_{t+1}(j) + \operatorname*{logsumexp}_i\big(\log\alpha_t(i) + A_{ij}\big), \qquad
#   \log Z = \operatorname*{logsumexp}_k \log\alpha_T(k).$$
#
# That is $T K^2$ operations instead of $K^T$, all in log space so that scores of $\pm 1000$ neither
# overflow nor underflow. Here it is in `ebm_teach.crf`. The code runs a batch of $B$ chains at once: each
# $\log\alpha_t$ is a $(B, K)$ tensor, `log_alpha[-1][:, :, None] + pairwise` is the $(B, K, K)$ table of
# $\log\alpha_t(i) + A_{ij}$ (previous label $i$ down, next label $j$ across), and `logsumexp(dim=1)` is the
# log-sum-exp over $i$.

# %%
print(inspect.getsource(crf._forward))

# %% [markdown]
# Replacing the sum by a max gives **Viterbi** (Viterbi 1967): $\delta_{t+1}(j) = u_{t+1}(j) +
# \max_i(\delta_t(i) + A_{ij})$ is the best score of a prefix ending in $j$; remembering which $i$ won at each
# step and walking back from the best final label recovers the best sequence itself. The two algorithms are
# one recursion run with two pairs of operations, (log-sum-exp, $+$) for sums and (max, $+$) for best
# sequences; the same pair of recursions works on any tree-shaped model, and on the "chain of rows" of
# section 5.

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
# The marginals come from the same recursion run from the other end. The backward quantity $\beta_t(k)$ sums
# the weights of all *suffixes* that follow label $k$ at position $t$:
#
# $$\log\beta_T(i) = 0, \qquad
#   \log\beta_t(i) = \operatorname*{logsumexp}_j\big(A_{ij} + u_{t+1}(j) + \log\beta_{t+1}(j)\big),$$
#
# and a prefix ending in $k$ joined to a suffix after $k$ is a whole sequence through $y_t = k$, so
# (**forward–backward**)
#
# $$p(y_t = k) = \frac{\alpha_t(k)\,\beta_t(k)}{Z}, \qquad
#   p(y_t = i, y_{t+1} = j) = \frac{\alpha_t(i)\,e^{A_{ij} + u_{t+1}(j)}\,\beta_{t+1}(j)}{Z}.$$

# %%
print(inspect.getsource(crf._backward))

# %% [markdown]
# **Extreme scores.** Multiply every score by 1000: a sum of $e^{s}$ overflows at once, the log-space
# recursion does not. It never forms $e^{s}$ at all, so it works in single precision too (float32, which GPUs
# prefer), to float32's seven or so significant digits.

# %%
naive = torch.exp(1000 * scores).sum()
print(f"sum of exp(scores): {naive.item()}; logsumexp of the enumeration: "
      f"{exact(torch.logsumexp(1000 * scores, 0), '.4f')}; "
      f"forward algorithm: {exact(chain_log_partition(1000 * unary, 1000 * pairwise), '.4f')}")
print(f"forward algorithm in float32: "
      f"{exact(chain_log_partition((1000 * unary).float(), (1000 * pairwise).float()), '.0f', rel=1e-5)}")

# %% [markdown]
# **Best sequence versus best labels.** The marginal $p(y_t = k)$ tells how sure the model is about each
# position. Picking the most probable label at every position separately need not give the most probable
# *sequence*: in the picture below the darkest cell of some columns is off the Viterbi path.

# %%
per_position = node.argmax(1)
print(f"most probable label at each position: {per_position.tolist()}, "
      f"p = {exact(p_all[(ys == per_position).all(1)].sum(), '.4f')}")
print(f"most probable sequence (Viterbi):     {best.tolist()}, p = {exact(p_all[(ys == best).all(1)].sum(), '.4f')}")
fig, ax = plt.subplots(figsize=(5.5, 3.4))
plot_chain_marginals(node, {"Viterbi path": best, "per-position argmax": per_position}, ax=ax,
                     title="node marginals $p(y_t = k)$ of a random chain")
plt.show()

# %% [markdown]
# The cost difference is what makes chains practical:

# %%
for K_, T_ in [(4, 6), (10, 8), (10, 50)]:
    print(f"K = {K_:2d}, T = {T_:2d}: enumeration {float(K_) ** T_:.1e} sequences; "
          f"forward algorithm T K^2 = {T_ * K_ * K_}")

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
g = make_generator(0, device)  # replay seed 0: the same training draw, then the test draw without its noise,
digit_sequences(img_train, lab_train, N_TRAIN, LENGTH, grammar, NOISE, g)  # which comes last: the same digits
x_test_clean, y_again = digit_sequences(img_test, lab_test, N_TEST, LENGTH, grammar, 0.0, g)  # and images, clean
print(f"{len(x_train)} training and {len(x_test)} test sequences of {LENGTH} noisy digits; "
      f"images from {len(img_train)} and {len(img_test)} digits; clean replay matches: {torch.equal(y_again, y_test)}")
plot_digit_sequences(x_test[:3], y_test[:3], {}, clean=x_test_clean[:3],
                     title="test sequences: each digit is the previous + 1 or + 2 (mod 10)")
plt.show()

# %% [markdown]
# ### The model and three ways to train it
# `LinearChainCRF` computes the unary scores with a linear map of each position's 64 pixels,
# $u_t(k) = \mathbf w_k^\top \mathbf x_t + b_k$, and learns the $10 \times 10$ transition scores $A$. Holding
# $A = 0$ makes $p(\mathbf y\mid\mathbf x)$ a product over positions: that is the **per-position classifier**
# (multinomial logistic regression), and its negative log-likelihood is the summed cross-entropy of the
# positions (which is how `fit_crf` computes it: no dynamic program). Three ways to train the CRF:
#
# - **Negative log-likelihood** (NLL; Lafferty et al. 2001): $\ell = \log Z(\mathbf x) - s(\mathbf x, \mathbf y)$.
#   Because $s$ is linear in the *counts* of $\mathbf y$ (which label sits where, which transitions occur) and
#   $\partial \log Z / \partial u_t(k) = p(y_t = k\mid\mathbf x)$,
#   $\partial \log Z/\partial A_{ij} = \sum_t p(y_t = i, y_{t+1} = j\mid\mathbf x)$, the gradient of the
#   log-likelihood $-\ell$ is **observed minus expected counts**, and that of the NLL we minimise is expected
#   minus observed: the same "data minus model" as every EBM gradient in this book, with the expectation exact
#   (forward–backward) instead of sampled. For the weights $\mathbf w_k$ the counts are weighted by the inputs:
#   $\partial\ell/\partial\mathbf w_k = \sum_t \big(p(y_t = k\mid\mathbf x) - [y_t = k]\big)\,\mathbf x_t$.
# - **Structured perceptron** (Collins 2002): $\ell = \max_{\mathbf y'} s(\mathbf x, \mathbf y') - s(\mathbf x,
#   \mathbf y)$, found by Viterbi. Its gradient step adds the counts of the truth and subtracts those of the
#   prediction, and does nothing when the prediction is right. If some unit-norm weights separate the
#   training data with a margin $\delta$ (the truth beats every other sequence by $\delta$), and the counts of
#   the truth and of any other sequence differ by at most $R$ in norm, it makes at most $R^2/\delta^2$
#   mistakes, however many sequences it sees (Collins 2002). Collins returns the parameters averaged over all
#   steps, a cheap stand-in for Freund & Schapire's (1999) voted perceptron, and found it to generalise better
#   than the last iterate.
# - **Structured hinge loss**, the structured SVM (Taskar et al. 2003; Tsochantaridis et al. 2005):
#   $\ell = \max_{\mathbf y'}\big[s(\mathbf x, \mathbf y') + \Delta(\mathbf y, \mathbf y')\big] - s(\mathbf x,
#   \mathbf y)$ with the Hamming loss $\Delta$ (the number of wrong labels). It is zero only when the truth
#   beats every other sequence by a margin that grows with how wrong that sequence is. Because $\Delta$ is a
#   sum over positions, the max is a Viterbi run on the unary scores plus 1 for every wrong label:
#   **loss-augmented inference**. And it bounds the errors we care about: with $\hat{\mathbf y}$ the
#   prediction, $s(\hat{\mathbf y}) \ge s(\mathbf y)$ gives $\Delta(\mathbf y, \hat{\mathbf y}) \le
#   s(\hat{\mathbf y}) + \Delta(\mathbf y, \hat{\mathbf y}) - s(\mathbf y) \le \ell$: the number of wrong labels
#   never exceeds the loss, a convex upper bound. That is why the margin is scaled by $\Delta$ ("margin rescaling";
#   Tsochantaridis et al. also scale the slack instead). The SVM proper minimises
#   $\tfrac{\lambda}{2}\lVert\theta\rVert^2 + \text{mean}\,\ell$ with cutting planes (Tsochantaridis et al.),
#   subgradient steps or block-coordinate Frank–Wolfe (Lacoste-Julien et al. 2013); we take Adam steps on
#   the same objective.
#
# In the code, Viterbi runs on *detached* scores. That is not a shortcut: Viterbi only chooses which sequence
# attains the max, and the (sub)gradient of $\max_{\mathbf y'} g(\mathbf y')$ is the gradient of $g$ at the
# maximiser (Danskin's theorem). So the gradient flows through the scores of the chosen sequence and of the
# truth, exactly the counts above.

# %%
print(inspect.getsource(crf._per_sequence_loss))

# %% [markdown]
# All four models start from zero weights and take the same minibatch steps (20 sequences, 12 epochs); the
# NLL, the hinge and the per-position classifier use Adam with a small L2 penalty, the perceptron Collins'
# plain update (SGD with step 1, for which the step size does not matter from zero weights; with 20 sequences
# per step it is the *minibatch* perceptron, which adds the mean of 20 updates computed under the same
# weights). Every model ends with its parameters averaged over all steps (Polyak–Ruppert averaging, the
# same device as Collins' averaged perceptron): the average of a noisy optimiser's iterates is less noisy than
# the last one, and since it includes the early steps near zero it also shrinks the weights a little. We use
# it for all four so that they differ only in their loss.
#
# A fifth model needs no new training. The **piecewise** baseline (Sutton & McCallum 2005) trains the pieces
# separately: the per-position classifier $p(y_t\mid\mathbf x_t)$ alone, and the transition probabilities
# $p(y_{t+1}\mid y_t)$ by counting the steps of the training labels (`bigram_log_probs`, with add-0.1
# smoothing); then it decodes with Viterbi on unary scores $\log p(y_t\mid\mathbf x_t)$ and transition scores
# $\log p(y_{t+1}\mid y_t)$. (The classifier's own linear scores serve as well: they differ from the log
# probabilities by one constant per position, which no sequence can change.) We repeat everything with three
# seeds (new sequences, new minibatch order).

# %%
METHODS = {
    "per-position": dict(transitions=False, loss="nll", lr=0.05, weight_decay=1e-3),
    "CRF (NLL)": dict(transitions=True, loss="nll", lr=0.05, weight_decay=1e-3),
    "perceptron": dict(transitions=True, loss="perceptron", optimizer="sgd", lr=1.0),
    "SVM (hinge)": dict(transitions=True, loss="hinge", lr=0.05, weight_decay=1e-3),
}
N_EPOCHS, SEEDS = 12 * SCALE, [0, 1, 2]
NAMES = list(METHODS) + ["piecewise"]
results = {name: {"position": [], "sequence": [], "seconds": []} for name in NAMES}
repaired, grammatical = [], []  # per seed: classifier errors the CRF gets right; CRF outputs the grammar allows
unaries_alone, bound_holds = [], []  # per seed: per-position accuracy of the CRF's unaries; Hamming <= hinge
models = {}
for seed in SEEDS:
    x_tr, y_tr, x_te, y_te = make_sequences(seed)
    trained, predicted = {}, {}
    for name, cfg in METHODS.items():
        cfg = dict(cfg)
        model = LinearChainCRF(64, 10, transitions=cfg.pop("transitions")).to(device)
        history = fit_crf(model, x_tr, y_tr, n_epochs=N_EPOCHS, batch_size=20, average=True,
                          generator=make_generator(100 + seed, device), **cfg)
        trained[name], predicted[name] = model, model.predict(x_te)
        results[name]["seconds"].append(history["seconds"][-1])
    start = time.perf_counter()
    piecewise = copy.deepcopy(trained["per-position"])  # the same classifier ...
    piecewise.transitions = bigram_log_probs(y_tr, 10).to(device)  # ... with the counted transitions
    results["piecewise"]["seconds"].append(results["per-position"]["seconds"][-1] + time.perf_counter() - start)
    trained["piecewise"], predicted["piecewise"] = piecewise, piecewise.predict(x_te)
    for name in NAMES:
        position, sequence = accuracies(predicted[name], y_te)
        results[name]["position"].append(position)
        results[name]["sequence"].append(sequence)
    wrong_alone, pred = predicted["per-position"] != y_te, predicted["CRF (NLL)"]
    repaired.append(float((pred == y_te)[wrong_alone].float().mean()))
    allowed = grammar.to(device)[pred[:, :-1], pred[:, 1:]] > 0  # (n, T - 1): is each predicted step allowed?
    grammatical.append((float(allowed.all(1).float().mean()), float(allowed.float().mean())))
    with torch.no_grad():
        unaries_alone.append(float((trained["CRF (NLL)"](x_te).argmax(-1) == y_te).float().mean()))
        svm = trained["SVM (hinge)"]
        hinge = structured_hinge_loss(svm(x_te), svm.transitions, y_te)
    bound_holds.append(bool(((predicted["SVM (hinge)"] != y_te).sum(1) <= hinge + 1e-4).all()))
    if seed == SEEDS[0]:
        models = trained
print(f"trained {len(METHODS)} models (and built the piecewise one) on each of {len(SEEDS)} seeds, "
      f"{N_EPOCHS} epochs each")


def mean_sd(values):
    v = torch.tensor(values, dtype=D)
    return float(v.mean()), float(v.std())


# %% tags=["nbval-ignore-output"]
print(f"{'test accuracy':14s} {'per position':>16s} {'whole sequence':>16s} {'training seconds':>18s}")
for name, r in results.items():
    (mp, sp), (ms, ss), (mt, st) = mean_sd(r["position"]), mean_sd(r["sequence"]), mean_sd(r["seconds"])
    print(f"{name:14s} {mp:9.3f} ± {sp:.3f} {ms:9.3f} ± {ss:.3f} {mt:11.2f} ± {st:.2f} s")

# %% [markdown]
# (Mean ± standard deviation over the three seeds; the last digits change from machine to machine. The
# piecewise model's time is its classifier's plus the counting.) The checked figures follow. Each "expected"
# range in this book is the mean ± about 4 standard deviations of that figure over 8 reruns of the chapter
# with other seeds, so a correct run on any machine falls inside and a wrong implementation, as a rule, does
# not.

# %%
EXPECTED_POS = {"per-position": (0.709, 0.015), "CRF (NLL)": (0.927, 0.014), "perceptron": (0.911, 0.02),
                "SVM (hinge)": (0.926, 0.015), "piecewise": (0.945, 0.01)}
EXPECTED_SEQ = {"per-position": (0.062, 0.02), "CRF (NLL)": (0.629, 0.06), "perceptron": (0.575, 0.076),
                "SVM (hinge)": (0.625, 0.063), "piecewise": (0.691, 0.052)}
for name, r in results.items():
    (acc_pos, tol_pos), (acc_seq, tol_seq) = EXPECTED_POS[name], EXPECTED_SEQ[name]
    print(f"{name:14s} per position {expect(mean_sd(r['position'])[0], acc_pos, tol_pos)}, "
          f"whole sequence {expect(mean_sd(r['sequence'])[0], acc_seq, tol_seq)}")
pos = {name: r["position"] for name, r in results.items()}
seq = {name: r["sequence"] for name, r in results.items()}
structured = ["CRF (NLL)", "perceptron", "SVM (hinge)"]
print(claim(all(a > b + 0.15 for name in structured + ["piecewise"] for a, b in zip(pos[name], pos["per-position"])),
            "every model that decodes with transitions beats the per-position classifier by more than 15 points "
            "per position, on every seed"))
print(claim(all(a > 5 * b for name in structured + ["piecewise"] for a, b in zip(seq[name], seq["per-position"])),
            "and gets more than five times as many whole sequences right, on every seed"))
gap = max(max(pos[a][i] for a in structured) - min(pos[a][i] for a in structured) for i in range(len(SEEDS)))
print(claim(gap < 0.03, "the three structured losses end within 3 points of each other per position, on every seed"))
print(claim(all(b <= 1e-9 + a for a, b in zip(pos["piecewise"], pos["CRF (NLL)"])),
            "the piecewise baseline reads at least as many digits as the jointly trained CRF, on every seed"))
print(claim(all(bound_holds), "the SVM's number of wrong labels is at most its hinge loss, on every test sequence "
                              "of every seed"))

# %%
plot_method_comparison(results, ["position", "sequence"], ylabels=["per-position accuracy", "whole-sequence accuracy"],
                       title=f"test accuracy on {len(SEEDS)} seeds (dots) and their mean (bars)")
plt.show()

# %% [markdown]
# Transitions are what the per-position classifier lacks, and the whole-sequence accuracy shows it most:
# one wrong digit in eight spoils a sequence, so per-position errors compound ($0.7^8 \approx 6\%$).
# The three structured losses land close together here; they differ in what they need. The NLL needs
# $Z(\mathbf x)$ and its gradient (forward–backward); the perceptron and the hinge need only a Viterbi run
# and the scores of two sequences. All three run one dynamic program per sequence and step, $O(T K^2)$, which
# the per-position classifier does not; the table's training times show what that costs on this machine.
#
# **Where does the gain come from?** Not from training jointly. The piecewise model, whose two pieces never
# saw each other during training, reads at least as many digits as the CRF on every seed. On this data that is
# no accident: each image depends only on its own digit (the data are a hidden Markov model), so Bayes' rule
# gives the posterior exactly as the piecewise model scores it,
# $p(\mathbf y\mid\mathbf x) \propto p(y_1)\prod_t p(y_{t+1}\mid y_t)\prod_t p(y_t\mid\mathbf x_t)/p(y_t)$, where
# the uniform label marginals $p(y_t) = 1/10$ drop out. A well-calibrated classifier plus the true transition
# probabilities is the Bayes decoder, which no training can beat; the piecewise model estimates exactly those
# two pieces, and on this data joint training does not improve on it. The gain over the per-position
# classifier comes from **decoding with transitions**. Here the CRF even lags a little, and two differences are
# visible. Its forbidden steps score only a few units below the allowed ones, where the counted transitions
# put them much lower (printed below). And its unary weights end weaker than the classifier's: when the
# transitions explain much of each label, joint training has less reason to sharpen the unaries, which Sutton,
# Sindelar and McCallum (2006) call *weight undertraining*. The check below reads the digits with the CRF's
# unary scores alone.
#
# Joint training can only pay where the pieces are wrong: features that overlap across positions (a window
# of neighbouring images, a feature of the whole sentence), whose evidence a locally trained classifier and
# the transitions would count twice; a local model that cannot be calibrated; and, against locally normalised
# sequence models (maximum-entropy Markov models), the "label bias" that motivated the CRF (Lafferty et al.
# 2001). Sutton and McCallum (2012) discuss when each happens.

# %%
print(f"per-position accuracy of the CRF's unary scores alone: {expect(mean_sd(unaries_alone)[0], 0.683, 0.016)}; "
      f"of the classifier: {expect(mean_sd(pos['per-position'])[0], 0.709, 0.015)} (means over seeds)")
print(claim(all(a < b for a, b in zip(unaries_alone, pos["per-position"])),
            "the CRF's unary scores alone read fewer digits than the classifier trained alone, on every seed"))

# %% [markdown]
# What did the CRF learn? Its transition scores $A$ (left) beside the grammar that made the data (right):
# high where the grammar steps, low everywhere else, including the diagonal, which the grammar never uses.
# Only *differences* between entries of $A$ mean something: a constant added to every entry changes every
# sequence's score alike, and a constant added to a row trades off against the label biases $b_k$ of the
# unary scores. So we compare allowed with disallowed steps: the mean gap between them, in the CRF and in the
# piecewise model's log-probabilities.

# %%
crf_model = models["CRF (NLL)"]
allowed_steps = grammar.to(device) > 0


def step_gap(A):
    """Mean score of the steps the grammar allows minus that of the steps it forbids."""
    return float(A[allowed_steps].mean() - A[~allowed_steps].mean())


print(f"allowed minus forbidden steps, CRF (NLL):  {expect(step_gap(crf_model.transitions.detach()), 3.46, 0.18)}")
print(f"allowed minus forbidden steps, piecewise:  {expect(step_gap(models['piecewise'].transitions), 7.466, 0.003)}")
fig, axes = plt.subplots(1, 2, figsize=(8, 3.3))
plot_transition_scores(crf_model.transitions.detach().cpu(), ax=axes[0], title="learned transition scores $A$")
plot_transition_scores(grammar, ax=axes[1], label="probability", title=r"the grammar $p(y_{t+1} \mid y_t)$")
plt.tight_layout()
plt.show()

# %% [markdown]
# The gradient identity, checked on the trained CRF (in float64): autograd of the summed NLL of 50 training
# sequences equals the expected minus the observed counts, for the transition scores and for the unary
# weights.

# %%
W = crf_model.unary.weight.detach().double().requires_grad_(True)
b = crf_model.unary.bias.detach().double()
A = crf_model.transitions.detach().double().requires_grad_(True)
x50, y50 = x_train[:50].double(), y_train[:50]
grad_W, grad_A = torch.autograd.grad(crf_nll(x50 @ W.T + b, A, y50).sum(), (W, A))
node_marginals, edge_marginals = chain_marginals(x50 @ W.T.detach() + b, A.detach())
node_counts, edge_counts = observed_counts(y50, 10)
diff_A = grad_A - (edge_marginals - edge_counts.to(D)).sum((0, 1))
diff_W = grad_W - torch.einsum("ntk,ntd->kd", node_marginals - node_counts.to(D), x50)
print(claim(float(diff_A.abs().max()) < 1e-10, "dNLL/dA = expected minus observed transition counts (to 1e-10)"))
print(claim(float(diff_W.abs().max()) < 1e-10, "dNLL/dw_k = sum_t (p(y_t = k | x) - [y_t = k]) x_t (to 1e-10)"))

# %% [markdown]
# Some test sequences, read by the per-position classifier and by the CRF (red: wrong). Where the classifier
# misreads a digit, the CRF mostly repairs it from its neighbours. Its own outputs mostly obey the grammar,
# but not always: its transition scores for forbidden steps are only a few units below the allowed ones (the
# gap printed above), not $-\infty$, so an image read confidently enough can still override them.

# %%
print(f"classifier errors that the CRF gets right: {expect(mean_sd(repaired)[0], 0.783, 0.027)} (mean over seeds)")
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
# answer $E(\mathbf y)$ down *and* the energies of the wrong answers up, at least that of the **most
# offending** one $\bar{\mathbf y}$ (the wrong answer with the lowest energy). Their sufficient condition for
# a good loss is, in short, that minimising it makes $E(\mathbf y)$ lower than $E(\bar{\mathbf y})$ by some
# margin. Five of the losses they list, for one example:
#
# | loss | $\ell$ | pushes up | needs $Z$? |
# |---|---|---|---|
# | energy | $E(\mathbf y)$ | nothing | no |
# | perceptron | $E(\mathbf y) - \min_{\mathbf y'} E(\mathbf y')$ | the best answer, until the truth wins | no |
# | hinge | $\max\big(0,\ m + E(\mathbf y) - E(\bar{\mathbf y})\big)$ | the most offending, until a margin $m$ | no |
# | log | $\log\big(1 + e^{E(\mathbf y) - E(\bar{\mathbf y})}\big)$ | the most offending, ever more weakly | no |
# | negative log-likelihood | $E(\mathbf y) + \frac1\beta\log\sum_{\mathbf y'} e^{-\beta E(\mathbf y')}$ | every answer, by its $p(\mathbf y')$ | yes |
#
# The **log loss** is a soft hinge on the most offending answer and needs no partition function; the
# **negative log-likelihood (NLL)** pushes on every answer and needs $Z$ ($\beta$ is an inverse temperature;
# we take $\beta = 1$). With only two answers they are the same function. The tutorial lists more margin
# losses (square-square, square-exponential, LVQ2, MCE) that we do not draw. Section 3's three losses are the
# NLL, the perceptron and the hinge, with $E = -s$ and $\mathbf y'$ ranging over sequences (the structured SVM
# makes the margin $m = \Delta(\mathbf y, \mathbf y')$). With two answers each loss is a function of two
# numbers, $E(\text{correct})$ and $E(\text{wrong})$, and we can draw it; arrows point where gradient descent
# moves the two energies.

# %%
print(inspect.getsource(crf._energy_losses))
notes = {"energy": "only pushes down", "perceptron": "no margin", "hinge": "margin m = 1", "log": "soft margin, no Z"}
plot_loss_plane(energy_losses, margin=1.0, notes=notes, names=["energy", "perceptron", "hinge", "log"],
                titles={"log": "log loss (= NLL for two answers)"})
plt.show()

# %% [markdown]
# Above the dashed diagonal the correct answer wins. The **energy loss** ignores the wrong answer: its
# contours are vertical. That is fine when the architecture itself forbids lowering every energy at once (a
# regression onto fixed targets), and a disaster when it does not: the energy surface can become flat, every
# answer equally good, a **collapse**. The **perceptron loss** is zero on the whole upper half, including the
# diagonal where both energies are equal, so it does not prevent a flat surface either. The **hinge** insists
# on a gap $m$; the **log loss** keeps pushing, ever more weakly, however large the gap.
#
# To see the difference, give the model a way to lower every energy together. LeCun et al.'s example is an
# architecture that embeds both the input and the answers and measures their distance:
#
# $$E(\mathbf x, y) = \tfrac12 \lVert f(\mathbf x) - \mathbf e_y\rVert^2, \qquad
#   f(\mathbf x) = W\mathbf x + \mathbf c \in \mathbb R^2,$$
#
# with the ten answer embeddings $\mathbf e_0, \dots, \mathbf e_9$ learned along with $W$ and $\mathbf c$.
# Mapping every image and every answer to one point makes every energy zero: the energy loss's minimum.
# The embedding is two-dimensional so that we can draw it; a linear map into the plane cannot keep ten
# classes of digits well apart, which limits every loss here. Note also that $E$ is not convex in
# $(W, \mathbf c, \mathbf e)$, unlike section 3's scores, so training can stop in a poor configuration. We
# train on single clean digits with each loss (200 full-batch Adam steps, three seeds) and measure, on the
# test digits, the **energy spread** $\max_y E(\mathbf x, y) - \min_y E(\mathbf x, y)$ (zero means collapsed),
# the accuracy of $\arg\min_y E$, and the distance between the two **closest answer embeddings**, relative to
# the spread of the embedded digits (the root-mean-square distance of $f(\mathbf x)$ from its mean). On the
# training digits we count the **margin violations**, $E(\mathbf y) + 1 > E(\bar{\mathbf y})$.

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


LOSS_NAMES = ["energy", "perceptron", "hinge", "log", "nll"]
collapse = {kind: {"spread": [], "accuracy": [], "closest": [], "violated": []} for kind in LOSS_NAMES}
embeddings = {}
for seed in SEEDS:
    for kind in LOSS_NAMES:
        params = train_embedding(kind, seed)
        energies, z = embedding_energies(params, img_test)
        answers = params[2]
        distances = torch.cdist(answers, answers) + torch.diag(torch.full((10,), math.inf, device=device))
        data_spread = float(((z - z.mean(0)) ** 2).sum(1).mean().sqrt())
        train_energies, _ = embedding_energies(params, img_train)
        collapse[kind]["spread"].append(float((energies.max(1).values - energies.min(1).values).mean()))
        collapse[kind]["accuracy"].append(float((energies.argmin(1) == lab_test).float().mean()))
        collapse[kind]["closest"].append(float(distances.min()) / data_spread)
        hinge_train = energy_losses(train_energies, lab_train)["hinge"]
        collapse[kind]["violated"].append(float((hinge_train > 0).float().mean()))
        if seed == SEEDS[0]:
            embeddings[kind] = (z, answers)
print(f"trained the embedding model with {len(LOSS_NAMES)} losses on each of {len(SEEDS)} seeds")

# %% tags=["nbval-ignore-output"]
print(f"{'loss':11s} {'energy spread':>17s} {'test accuracy':>16s} {'closest answers':>17s} {'margin violated':>17s}")
for kind, r in collapse.items():
    print(f"{kind:11s} " + " ".join(f"{m:9.3f} ± {s:5.3f}" for m, s in (mean_sd(r[key]) for key in r)))
print(f"(mean ± sd over {len(SEEDS)} seeds; closest answers: distance / spread of the embedded test digits)")

# %%
spread, acc, closest, violated = ({k: r[key] for k, r in collapse.items()}
                                  for key in ("spread", "accuracy", "closest", "violated"))
print(f"energy spread, NLL:              {expect(mean_sd(spread['nll'])[0], 30, 15)}")
print(f"test accuracy, hinge:            {expect(mean_sd(acc['hinge'])[0], 0.56, 0.25)}")
print(f"test accuracy, NLL:              {expect(mean_sd(acc['nll'])[0], 0.73, 0.1)}")
print(f"closest answers, NLL:            {expect(mean_sd(closest['nll'])[0], 0.3, 0.2)}")
print(f"margin violated, hinge:          {expect(mean_sd(violated['hinge'])[0], 0.62, 0.13)}")
margin_losses = ["perceptron", "hinge", "log"]
print(claim(max(spread["energy"]) < 0.1, "the energy loss collapses: energy spread below 0.1 on every seed"))
print(claim(all(max(closest[k]) < 0.05 for k in margin_losses),
            "perceptron, hinge and log loss each leave two answers closer than 5 % of the data's spread "
            "(merged), on every seed"))
print(claim(min(closest["nll"]) > 0.05, "the NLL keeps every pair of answers more than 5 % of the spread apart, "
                                        "on every seed"))
print(claim(min(violated["hinge"]) > 0.4, "the hinge's margin is violated on more than 40 % of the training digits, "
                                          "on every seed"))
print(claim(all(acc["nll"][i] > max(acc[k][i] for k in LOSS_NAMES if k != "nll") for i in range(len(SEEDS))),
            "the NLL reads more test digits than every other loss, on every seed"))

# %%
fig, axes = plt.subplots(2, 3, figsize=(8, 5.6))
for ax, kind in zip(axes.flat, LOSS_NAMES):
    z, answers = embeddings[kind]
    plot_embeddings(z[:400], lab_test[:400], answers, ax=ax, title="NLL" if kind == "nll" else f"{kind} loss")
plot_method_comparison({k: {"closest": closest[k]} for k in LOSS_NAMES}, ["closest"], axes=[axes[1, 2]],
                       ylabels=["closest answers / data spread"], ylim=None, log=True, rotation=40)
axes[1, 2].set_title("closest pair of answers, 3 seeds", fontsize=9)
fig.suptitle("f(x) of test digits (dots) and answer embeddings (boxes; answers closer than a box share one), "
             "seed 0", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# (Each panel has its own scale: the energy loss's points sit within a tiny patch. A box lists every answer
# within about a box's width of it, on that panel's scale.) The energy loss has
# pulled every image and every answer onto one spot, as predicted. The tiny differences left still rank the
# answers better than chance, but an energy surface this flat has no margin at all: any perturbation reorders
# it.
#
# The other four do not collapse as a whole, but only the NLL keeps all ten answers apart. The perceptron,
# the hinge and the log loss end with groups of answers merged into one point (the boxes that list several
# digits): on every seed their two closest answers lie within 5 % of the data's spread of each other, while the
# NLL's never do. Those three push on the single most offending answer only, and gradient descent stops where
# several answers sit on one spot together with the digits of their classes: a **partial collapse**. Nothing
# in these losses forbids it (the energy is not convex in $(W, \mathbf c, \mathbf e)$, so where training stops
# need not be a good minimum), and it is far from the margin they ask for: the hinge's margin is violated on
# more than 40 % of the training digits on every seed. Digits whose answers merged can only be told apart by
# chance, which is why the margin losses read far fewer test digits than the NLL. The NLL pushes up *every*
# wrong answer in proportion to its probability, so two answers cannot share a spot without a cost.
#
# Two lessons carry over to structured outputs. A loss that never pushes up wrong answers needs an
# architecture that does it instead. And a loss that pushes up only the most offending answer relies on the
# model to move the others with it: fine for section 3's CRF, whose loss is convex in its weights, but not for
# a learned embedding of the answers, where pushing on every answer (the NLL) is what kept all ten apart here.
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
# with coupling $J$, Bayes' rule makes the posterior exactly this CRF. Since $x_i y_i = \pm 1$,
#
# $$\log p(x_i\mid y_i) = \begin{cases}\log(1-\varepsilon) & x_i = y_i\\ \log\varepsilon & x_i \ne y_i\end{cases}
#   \;=\; \tfrac12\log\big(\varepsilon(1-\varepsilon)\big) + \tfrac12\log\tfrac{1-\varepsilon}{\varepsilon}\,x_i y_i,$$
#
# and adding the prior's score $J\sum y_i y_j$ gives $\alpha = \tfrac12\log\frac{1-\varepsilon}{\varepsilon}$,
# $b = 0$ (the first term does not depend on $\mathbf y$). This is the setting in which Geman and Geman
# (1984) introduced the Gibbs sampler for image restoration.
#
# Summing out one pixel no longer leaves a chain: each pixel has four neighbours, and summing it out couples
# them all. The trick that still works treats each **row** as one label with $2^W$ values: rows form a chain,
# the row's own bonds go into its unary score, the vertical bonds into a $2^W \times 2^W$ transition matrix
# (`grid_as_chain`). Then `chain_log_partition`, `chain_marginals`, `viterbi` and `chain_sample` are exact on
# the grid, at a cost of $H\cdot 4^W$. (In the language of graphical models the rows are the cliques of a
# junction tree, and the cost of exact inference grows exponentially with the *treewidth*, here $W$.) First,
# a check against all $2^{16} = 65{,}536$ configurations of a $4\times 4$ grid:

# %%
g = torch.Generator().manual_seed(3)  # a fixed worked example
field44, J44 = 0.5 * torch.randn(4, 4, generator=g, dtype=D), 0.4
configs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=16)), dtype=D).reshape(-1, 4, 4)
log_z_bf = torch.logsumexp(grid_score(configs, field44.expand(len(configs), 4, 4), J44), 0)
print(f"4x4 grid: log Z by enumeration {exact(log_z_bf, '.6f')}, as a chain of 4 rows with 16 states "
      f"{exact(grid_log_partition(field44, J44), '.6f')}")

# %% [markdown]
# The price of exactness grows like $4^W$: each step of the row chain is a $2^W \times 2^W$ log-sum-exp.
# Timed on grids of 8 rows (for the narrowest grids the fixed cost of each call dominates):

# %% tags=["nbval-ignore-output"]
widths, seconds = list(range(2, 11)), []
for W_ in widths:
    f = torch.zeros(4, 8, W_, dtype=D, device=device)
    grid_log_partition(f, 0.3)  # warm-up
    best_time = math.inf
    for _ in range(3 if W_ <= 8 else 1):  # the fastest of three runs, where runs are cheap: less noise from load
        start = time.perf_counter()
        float(grid_log_partition(f, 0.3).sum())
        best_time = min(best_time, time.perf_counter() - start)
    seconds.append(best_time / 4)
plot_exact_cost(widths, seconds, n_rows=8, title="exact log Z of a grid: the cost explodes with its width")
plt.show()
print(f"a 28x28 image (MNIST) would need 28 * 4^28 = {28 * 4.0 ** 28:.1e} terms: at this machine's rate about "
      f"{seconds[-1] / (8 * 4 ** 10) * 28 * 4.0 ** 28 / 3.15e7:.0e} years; long before that, memory ends: one "
      f"row-to-row matrix has 2^56 = {2.0 ** 56:.1e} entries ({2.0 ** 56 * 8 / 1e15:.0f} petabytes in float64)")

# %% [markdown]
# Below that limit we can still do everything exactly, which lets us check the approximations we would use
# above it. The data: clean $8 \times 6$ images drawn **exactly** from an Ising model with $J = 0.5$ (by
# forward filtering, backward sampling on the row chain), and noisy copies with $\varepsilon = 0.25$.
#
# Mind the phase. Chapter 2 met the Ising model's critical temperature $T_c = 2/\ln(1+\sqrt2)$; in terms of the
# coupling that is $J_c = \tfrac12\ln(1+\sqrt2)$. Our $J = 0.5$ is above it, in the **ordered phase**: most
# clean images are dominated by one colour (large $|m|$, the mean spin of an image), with islands of the other.
# That will matter for the denoising.

# %%
H, W, J_TRUE, EPS = 8, 6, 0.5, 0.25
ALPHA_TRUE = 0.5 * math.log((1 - EPS) / EPS)
J_CRITICAL = 0.5 * math.log(1 + math.sqrt(2))
states = grid_row_states(W, device=device)  # (64, 6): the spins of each row state


def make_grids(seed, n):
    """n clean Ising images (exact samples) and their noisy copies, (n, H, W) in {-1, +1}."""
    g = make_generator(seed, device)
    clean = states[chain_sample(*grid_as_chain(torch.zeros(H, W, dtype=D, device=device), J_TRUE), n, generator=g)]
    flip = torch.rand(clean.shape, generator=g, dtype=D, device=device) < EPS
    return clean, torch.where(flip, -clean, clean)


def uniform_fraction(images):
    """The fraction of images whose pixels all have one colour."""
    return float((images == images[:, :1, :1]).all(2).all(1).double().mean())


clean_train, noisy_train = make_grids(0, 100)
clean_test, noisy_test = make_grids(1000, 300)
print(f"J = {J_TRUE} against the critical coupling J_c = {exact(J_CRITICAL, '.4f')}")
print(f"mean |m| of the clean test images: {expect(float(clean_test.mean((1, 2)).abs().mean()), 0.6, 0.065)}; "
      f"all one colour: {expect(uniform_fraction(clean_test), 0.025, 0.025)}")
print(f"pixels flipped by the noise in the test images: "
      f"{expect(float((noisy_test != clean_test).double().mean()), 0.248, 0.015)}")

# %% [markdown]
# ### Learning the grid CRF: exact likelihood against pseudo-likelihood
# Suppose we do not know $\alpha, b, J$ and learn them from 100 (clean, noisy) pairs. Maximum conditional
# likelihood needs $\log Z(\mathbf x)$ of every training image: exact here through the rows, impossible for
# wide images. **Pseudo-likelihood** (Besag 1975, building on the conditional approach of Besag 1974;
# chapter 2 met it as scikit-learn's RBM score) replaces $\log p(\mathbf y\mid\mathbf x)$ by
# $\sum_i \log p(y_i \mid \mathbf y_{-i}, \mathbf x)$, and each factor is a one-pixel conditional,
# $\sigma\big(2 y_i (h_i + J\sum_{j\sim i} y_j)\big)$, in which $Z$ cancels. It is consistent: with enough
# data from the model, its maximiser is the true parameter too. Both are maximised with L-BFGS over the three
# numbers $(\alpha, b, J)$, pseudo-likelihood from zero and the exact likelihood from the pseudo-likelihood
# estimate (a good start saves most of its expensive steps), on 8 training sets:

# %%
def fit_grid(objective, start=None):
    """Maximise objective(theta) over theta = (alpha, b, J) with L-BFGS from ``start`` (default 0)."""
    theta = (torch.zeros(3, dtype=D, device=device) if start is None else start.clone()).requires_grad_(True)
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


GRID_SETS = list(range(8))
fits = {"exact likelihood": [], "pseudo-likelihood": []}
fit_seconds = {name: [] for name in fits}
for seed in GRID_SETS:
    clean, noisy = (clean_train, noisy_train) if seed == 0 else make_grids(seed, 100)
    start = time.perf_counter()
    fits["pseudo-likelihood"].append(fit_grid(lambda th: pseudo_ll(th, clean, noisy)))
    fit_seconds["pseudo-likelihood"].append(time.perf_counter() - start)
    start = time.perf_counter()
    start_from = fits["pseudo-likelihood"][-1]
    fits["exact likelihood"].append(fit_grid(lambda th: conditional_ll(th, clean, noisy), start_from))
    fit_seconds["exact likelihood"].append(time.perf_counter() - start)
theta_ml, theta_pl = fits["exact likelihood"][0], fits["pseudo-likelihood"][0]
print(f"fitted (alpha, b, J) by both objectives on {len(GRID_SETS)} training sets of 100 images")

# %% tags=["nbval-ignore-output"]
truth = torch.tensor([ALPHA_TRUE, 0.0, J_TRUE], dtype=D, device=device)
print(f"truth:             alpha = {ALPHA_TRUE:.3f}, b = 0, J = {J_TRUE}")
for name, thetas in fits.items():
    t = torch.stack(thetas)
    print(f"{name:18s} alpha = {float(t[:, 0].mean()):.3f} ± {float(t[:, 0].std()):.3f}, "
          f"b = {float(t[:, 1].mean()):+.3f} ± {float(t[:, 1].std()):.3f}, J = {float(t[:, 2].mean()):.3f} ± "
          f"{float(t[:, 2].std()):.3f}   ({sum(fit_seconds[name]) / len(GRID_SETS):.3f} s per fit)")
print(f"(mean ± sd over {len(GRID_SETS)} training sets)")

# %%
J_ml = [float(t[2]) for t in fits["exact likelihood"]]
J_pl = [float(t[2]) for t in fits["pseudo-likelihood"]]
rms_error = {name: float(((torch.stack(t) - truth) ** 2).sum(1).mean().sqrt()) for name, t in fits.items()}
print(f"J by exact likelihood (set 0): {expect(J_ml[0], 0.498, 0.048)}; "
      f"by pseudo-likelihood: {expect(J_pl[0], 0.497, 0.065)}")
print(f"root-mean-square error of (alpha, b, J): exact likelihood {expect(rms_error['exact likelihood'], 0.03, 0.015)}, "
      f"pseudo-likelihood {expect(rms_error['pseudo-likelihood'], 0.037, 0.024)}")
print(claim(all(abs(j - J_TRUE) < 0.1 for j in J_ml + J_pl), "both are within 0.1 of the true J on every training set"))
print(claim(rms_error["pseudo-likelihood"] > rms_error["exact likelihood"],
            f"pseudo-likelihood's estimates scatter more around the truth than the exact likelihood's, over "
            f"{len(GRID_SETS)} training sets"))

# %% [markdown]
# When the model is right, pseudo-likelihood lands near maximum likelihood without ever computing $Z$: its
# cost per image is one pass over the pixels, against $H\cdot 4^W$ for the exact likelihood (the table above
# times both, the exact fit even with its head start). That is why it is the standard fallback for grids too
# wide for exact inference. The price is statistical efficiency: its estimates scatter more from training
# set to training set. That loss grows with the coupling, where a pixel's neighbours all but decide it and
# the one-pixel conditionals say little about $J$. On real images (which are not Ising models) the two
# estimators can also settle on different compromises.
#
# ### Denoising: exact answers, and what is left where they are out of reach
# With the learned parameters the posterior gives two answers per pixel. The **MAP** image (Viterbi over rows)
# is the single most probable clean image: it minimises the chance that the image is not exactly right. The
# sign of the **marginal** $E[y_i\mid\mathbf x] = 2p(y_i = +1\mid\mathbf x) - 1$ decides each pixel on its
# own: it minimises the expected number of wrong pixels (the Bayes decision for the pixel error), just as
# section 2 contrasted the best labels with the best sequence. A trivial baseline sets every pixel to the
# majority colour of the noisy image.
#
# For a wide grid the marginals and $\log Z$ are no longer exact. The MAP image is: for two labels and
# $J \ge 0$, maximising the score is a **minimum cut** in a graph with one node per pixel, solvable in
# polynomial time at any size (Greig, Porteous and Seheult 1989; `grid_map_graph_cut`). For the marginals,
# chapter 2's checkerboard Gibbs sampler (now with a field) averages the spins over sweeps; here we can
# measure its error against the exact marginals.

# %%
field_test = theta_ml[0] * noisy_test + theta_ml[1]
unary_rows, pairwise_rows = grid_as_chain(field_test, theta_ml[2])
map_rows, _ = viterbi(unary_rows, pairwise_rows)
map_images = states[map_rows]
row_marginals, _ = chain_marginals(unary_rows, pairwise_rows)
mean_spin = row_marginals @ states  # E[y_i | x] = 2 p(y_i = +1 | x) - 1, exact
majority = torch.where(noisy_test.mean((1, 2), keepdim=True) >= 0, 1.0, -1.0).to(D).expand_as(noisy_test)
cut_images = grid_map_graph_cut(field_test[:40], theta_ml[2])
cut_gap = grid_score(map_images[:40], field_test[:40], theta_ml[2]) - grid_score(cut_images, field_test[:40], theta_ml[2])
print(claim(float(cut_gap.abs().max()) < 1e-9, "on the first 40 test images the minimum cut's image scores exactly as "
                                               "high as the row-Viterbi MAP"))
sweep_counts, gibbs_error = [10, 30, 100, 300], []
for n_sweeps in sweep_counts:
    run = grid_gibbs(field_test, theta_ml[2], n_sweeps=n_sweeps * SCALE + 5, burn_in=5,
                     generator=make_generator(7, device))
    gibbs_error.append(float((run.mean - mean_spin).abs().mean()))
    gibbs_mean = run.mean


def pixel_error(images):
    return float((images != clean_test).double().mean())


errors = {"noisy input": pixel_error(noisy_test), "majority colour": pixel_error(majority),
          "MAP image": pixel_error(map_images),
          "sign of E[y_i | x]": pixel_error(torch.where(mean_spin > 0, 1.0, -1.0)),
          f"sign of the Gibbs estimate ({sweep_counts[-1]} sweeps)": pixel_error(torch.where(gibbs_mean > 0, 1.0, -1.0))}
EXPECTED_ERRORS = [(0.248, 0.015), (0.214, 0.032), (0.169, 0.043), (0.147, 0.025), (0.149, 0.022)]
for (name, err), (want, tol) in zip(errors.items(), EXPECTED_ERRORS):
    print(f"pixel error, {name:38s} {expect(err, want, tol)}")
print(f"MAP images all one colour: {expect(uniform_fraction(map_images), 0.7, 0.16)} "
      f"(clean images: {expect(uniform_fraction(clean_test), 0.025, 0.025)})")
print(claim(uniform_fraction(map_images) > max(0.5, 10 * uniform_fraction(clean_test)),
            "most MAP images are a single colour, more than ten times as often as the clean images"))
for n_sweeps, err, (want, tol) in zip(sweep_counts, gibbs_error,
                                      [(0.23, 0.045), (0.142, 0.03), (0.079, 0.018), (0.046, 0.009)]):
    print(f"mean |Gibbs estimate - exact E[y_i]| after {n_sweeps:3d} sweeps: {expect(err, want, tol)}")
err = list(errors.values())
print(claim(err[3] < err[2] < err[1] < err[0], "pixel errors: marginals' signs < MAP image < majority colour "
                                               "< noisy input"))
print(claim(abs(err[4] - err[3]) < 0.015, "the Gibbs estimate's decisions are within 1.5 points of the exact ones"))
print(claim(all(a > b for a, b in zip(gibbs_error, gibbs_error[1:])), "the Gibbs error falls with every step up in sweeps"))

# %%
fig, ax = plt.subplots(figsize=(4.2, 3.0))
plot_error_vs_sweeps(sweep_counts, {"checkerboard Gibbs": gibbs_error}, ax=ax,
                     ylabel=r"mean $|$estimate $-$ exact $E[y_i]|$", title="Gibbs marginals converge to the exact ones")
plt.show()
plot_image_rows_labelled({"clean": clean_test, "noisy": noisy_test, "MAP": map_images,
                          "E[y | x]": mean_spin, "Gibbs": gibbs_mean}, n_cols=12,
                         title="denoising Ising images: exact MAP, exact marginals and their Gibbs estimate")
plt.show()

# %% [markdown]
# The Gibbs estimate's error shrinks like $1/\sqrt{\text{sweeps}}$, the Monte Carlo rate of chapter 4. That
# is an asymptotic rate: its constant is set by the sampler's integrated autocorrelation time (chapter 4's
# effective sample size), which grows near the critical coupling and where the field is weak. Its pixel
# decisions already match the exact ones closely.
#
# The MAP row is striking: most MAP images are a single colour, although few clean images are. This is the
# ordered phase at work. For any $J > 0$ the prior's most probable images are the two uniform ones; above
# $J_c$ the prior also puts most of its mass near them, and an island of the other colour costs $2J$ for every
# bond along its boundary. The single most probable image drops every island whose evidence does not pay for
# its boundary, and keeps the majority colour (Greig et al. 1989 saw this over-smoothing at strong coupling).
# It still beats the majority-colour baseline, which is always uniform, because it keeps the islands the
# evidence does pay for. The marginals' signs keep more of them: each pixel is decided by its own posterior
# probability, a sum over all images, not by the single best image. With a coupling below $J_c$ (try
# `J_TRUE = 0.35`) the images look less uniform, and the prior has less to contribute. Denoising removes a good part of the flipped pixels,
# not all: at $\varepsilon = 0.25$ many flips are indistinguishable from real structure, and the marginals'
# signs are the best any method can do in expected pixel error, given the model.
#
# Exact MAP at a size no row chain could reach: four binarized MNIST digits ($28\times 28$), 10 % of their
# pixels flipped, denoised by a minimum cut under a guessed Ising prior ($J = 0.5$, $\alpha$ from Bayes' rule).
# The prior is not fitted to digits, so where a stroke is thin it can be smoothed away with the noise.

# %%
digits28 = 2 * load_binarized_mnist("test", device=device, dtype=D)[[7, 2507, 5007, 7507]].reshape(-1, 28, 28) - 1
flip = torch.rand(digits28.shape, generator=make_generator(11, device), dtype=D, device=device) < 0.1
noisy28 = torch.where(flip, -digits28, digits28)
start = time.perf_counter()
map28 = grid_map_graph_cut(0.5 * math.log(0.9 / 0.1) * noisy28, 0.5)
print(f"exact MAP of four 28x28 images by minimum cut in {time.perf_counter() - start:.2f} s")
print(f"pixel error: noisy {expect(float((noisy28 != digits28).double().mean()), 0.105, 0.025)}, "
      f"MAP {expect(float((map28 != digits28).double().mean()), 0.032, 0.015)}")
plot_image_rows_labelled({"clean": digits28, "noisy": noisy28, "MAP (cut)": map28}, n_cols=4,
                         title="exact MAP on 28x28 grids, by a minimum cut")
plt.show()

# %% [markdown]
# On a $28 \times 28$ image the exact marginals and $\log Z$ disappear, and the approximations take over:
# Gibbs sampling for the marginals (Geman and Geman 1984; chapters 2 and 3), or deterministic approximations
# such as mean field (each pixel sees only the average of its neighbours), loopy belief propagation
# (forward–backward's messages passed around a graph with cycles, with no guarantee of being exact) and its
# tree-reweighted variants, which bound $\log Z$;
# iterated conditional modes (Besag 1986) for a quick local optimum of the MAP; pseudo-likelihood or
# contrastive divergence for learning (chapters 2–3); annealed importance sampling if $\log Z$ itself is
# wanted (chapter 3). Only the binary, ferromagnetic MAP stays exact, by a minimum cut; with more than two
# labels or $J < 0$ it becomes hard in general.
#
# ## Summary
#
# - A conditional EBM $p(\mathbf y\mid\mathbf x) = e^{s(\mathbf x,\mathbf y)}/Z(\mathbf x)$ has one partition
#   function per input, a sum over outputs. Prediction is $\arg\max_{\mathbf y} s$ and needs no $Z$.
# - On a chain, the forward algorithm sums out one label at a time: $\log Z$ in $O(TK^2)$, in log space;
#   forward–backward gives the marginals, Viterbi (the same recursion with max) the best sequence. The most
#   probable labels, position by position, need not form the most probable sequence.
# - The gradient of the CRF's log-likelihood is observed minus expected counts (that of the NLL, expected
#   minus observed). The structured perceptron (Viterbi) and the structured SVM (loss-augmented Viterbi,
#   Hamming margin, an upper bound on the Hamming error) train the same model without $Z$. On digit sequences
#   with a grammar all three far outperform a per-position classifier, but a piecewise model (the classifier
#   plus counted transitions, decoded by Viterbi) does at least as well: on data generated by an HMM the gain
#   comes from decoding with transitions, not from joint training.
# - LeCun et al.'s losses: the energy loss only pushes down and can collapse; the perceptron has no margin;
#   the hinge and the log loss push up only the most offending answer and need no $Z$; the negative
#   log-likelihood pushes up every answer and needs $Z$. With learned answer embeddings, only the NLL kept
#   all answers apart.
# - On a grid, exact $\log Z$ and marginals cost $H\cdot 4^W$ through rows; beyond a few columns we are back to
#   Gibbs sampling and pseudo-likelihood. The binary MAP image with $J \ge 0$ stays exact at any size, by a
#   minimum cut. With $J$ above the critical coupling the MAP over-smooths.
#
# **References.** Lafferty, McCallum and Pereira (2001), "Conditional random fields"; Collins (2002),
# "Discriminative training methods for hidden Markov models"; Freund and Schapire (1999), "Large margin
# classification using the perceptron algorithm"; Taskar, Guestrin and Koller (2003), "Max-margin Markov
# networks"; Tsochantaridis, Joachims, Hofmann and Altun (2005), "Large margin methods for structured and
# interdependent output variables"; Lacoste-Julien, Jaggi, Schmidt and Pletscher (2013), "Block-coordinate
# Frank–Wolfe optimization for structural SVMs"; LeCun, Chopra, Hadsell, Ranzato and Huang (2006), "A tutorial
# on energy-based learning"; Sutton and McCallum (2005), "Piecewise training for undirected models"; Sutton,
# Sindelar and McCallum (2006), "Reducing weight undertraining in structured discriminative learning"; Sutton
# and McCallum (2012), "An introduction to conditional random fields"; Rabiner (1989), "A tutorial on hidden
# Markov models and selected applications in speech recognition"; Viterbi (1967), "Error bounds for
# convolutional codes and an asymptotically optimum decoding algorithm"; Geman and Geman (1984), "Stochastic
# relaxation, Gibbs distributions, and the Bayesian restoration of images"; Greig, Porteous and Seheult
# (1989), "Exact maximum a posteriori estimation for binary images"; Besag (1974), "Spatial interaction and
# the statistical analysis of lattice systems"; Besag (1975), "Statistical analysis of non-lattice data";
# Besag (1986), "On the statistical analysis of dirty pictures".
