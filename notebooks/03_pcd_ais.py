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
# # Chapter 3: Persistent contrastive divergence and annealed importance sampling
#
# Chapter 2 trained restricted Boltzmann machines (RBMs) with CD-$k$ and judged them by their exact
# log-likelihood, summing over the $2^{16}$ states of the hidden layer. This chapter changes one thing in the
# training, and one thing in the evaluation:
#
# - **Persistent contrastive divergence (PCD)** keeps the negative-phase Markov chains alive from one update
#   to the next instead of restarting them at the data (Tieleman, 2008). It is an instance of an older
#   algorithm, *stochastic maximum likelihood* (Younes, 1989).
# - **Annealed importance sampling (AIS)** estimates $\log Z$ when no layer is small enough to enumerate, by
#   walking from a distribution whose $Z$ we know to the RBM through many intermediate distributions
#   (Neal, 2001; Salakhutdinov & Murray, 2008).
#
# Every AIS estimate below is first checked against an exact $\log Z$, so that we know how far to trust it
# when no exact value exists.
#
# **Learning objectives.** After this chapter you can
# 1. say where CD's negative chains start, why that biases the gradient, and what persistent chains change;
# 2. explain PCD as stochastic maximum likelihood, why its step size should decay, and list its costs:
#    memory for the chains, chains that lag behind the parameters;
# 3. compare CD and PCD at equal Gibbs work by exact log-likelihood, and recognise a model where CD's bias is
#    large;
# 4. derive AIS for an RBM: the path of intermediate RBMs, the Gibbs transitions, the importance weights, and
#    why $\mathbb E[\hat Z] = Z$;
# 5. choose the base distribution and the number of temperatures, and read off an estimate's uncertainty;
# 6. explain why $\log \hat Z$ is a stochastic lower bound, so that AIS tends to flatter a model, and why it
#    rarely overestimates $\log Z$ by much.

# %%
import inspect
import math
import textwrap
import time

import matplotlib.pyplot as plt
import torch

from ebm_teach import get_device, make_generator, seed_everything
from ebm_teach.data import load_binarized_mnist, load_digits, train_test_split
from ebm_teach.evaluate import (ais_log_likelihood, ais_log_partition, ais_reference,
                                base_rate_bias, log_mean_exp)
from ebm_teach.expect import claim, exact, expect, expectations
from ebm_teach.plotting import (plot_ais_convergence, plot_image_rows,
                                plot_log_likelihood_curves, plot_log_z_errors, plot_seed_points)
from ebm_teach.rbm import BernoulliRBM

# integer; raise it on a GPU for more epochs, larger models, more temperatures and AIS runs
SCALE = 1
device = get_device()
seed_everything(0)
expectations(SCALE == 1)  # the "expected" ranges printed below hold at SCALE = 1
if device.type == "cpu":
    torch.set_num_threads(1)  # small matrices: a second thread costs more than it saves
x_train, x_test = train_test_split(load_digits(binarize=True, device=device), seed=0)
print(f"device: {device.type}, SCALE = {SCALE}")
print(f"binarized digits: {len(x_train)} train, {len(x_test)} test, {x_train.shape[1]} pixels")


def listing(fn):
    """The source of a package function without its docstring: the signature, then the body."""
    head, _, rest = textwrap.dedent(inspect.getsource(fn)).partition('"""')
    return head.rstrip() + "\n" + rest.partition('"""')[2].lstrip("\n")

# %% [markdown]
# As in chapters 1 and 2, a number from training or Monte Carlo is printed with the range this chapter
# expects, `-18.32 (expected -18.37 ± 0.3)`: the mean over reruns of the chapter with other seeds, plus or
# minus about 4 standard deviations, checked on further seeds. A value outside stops the notebook: investigate,
# it is not necessarily a bug. The range of a single run's number can be wider than a difference discussed
# next to it: the range covers how far the seed moves each run, while differences between methods are checked
# separately, paired seed by seed.
#
# ## 1. Where the negative chains start
#
# The gradient of the mean log-likelihood of an RBM over $N$ training images is a difference of two averages
# (chapter 2),
#
# $$\frac{\partial}{\partial W_{ij}}\,\frac1N\sum_{n=1}^N \log p(\mathbf v_n)
#   = \underbrace{\frac1N\sum_{n=1}^N v_{n,i}\, p(h_j{=}1\mid\mathbf v_n)}_{\text{data}}
#   \;-\; \underbrace{\mathbb E_{p(\mathbf v, \mathbf h)}\big[v_i h_j\big]}_{\text{model}} .$$
#
# The positive phase is exact. The negative phase needs samples from the model, and the two algorithms differ
# only in **where the Gibbs chains that supply them start**:
#
# - **CD-$k$** starts them at the current minibatch and runs $k$ steps. The samples stay close to the data,
#   so the model is only ever corrected near the data: a spurious mode far from every training image is
#   never visited, and never pushed down. That is CD's bias, and it shrinks only as $k$ grows.
# - **PCD-$k$** keeps a set of $M$ chains, the *fantasy particles*, that is never reset: each update advances
#   them $k$ steps under the current parameters, and the next update continues from where they stopped.
#   Because the parameters change a little per update, the chains stay close to the model's distribution and
#   can travel to wherever the model puts its mass, spurious modes included, which the update then
#   lowers.
#
# **PCD is stochastic maximum likelihood.** Younes (1989, 1999) studied exactly this scheme for Markov random
# fields: parameters $\theta_t$ updated with a Monte Carlo gradient whose negative samples $\mathbf x_t$ come
# from a Markov chain, $\mathbf x_{t+1} \sim T_{\theta_t}(\mathbf x_t, \cdot)$, whose transition $T_\theta$
# leaves the current model $p_\theta$ invariant (here: $k$ block Gibbs steps). It is a stochastic
# approximation in the sense of Robbins and Monro (1951), with step sizes that satisfy
#
# $$\sum_t \varepsilon_t = \infty, \qquad \sum_t \varepsilon_t^2 < \infty,$$
#
# for example $\varepsilon_t = c/t$. Both conditions have a plain meaning. The first lets the parameters
# travel any distance. The second makes the noise of the negative phase average out: with a constant
# $\varepsilon$, $\theta_t$ never settles but keeps fluctuating with a spread that grows with $\varepsilon$.
# What the theory then guarantees is modest and precise: under conditions (step sizes $c/t$ with $c$ small
# enough, parameters kept in a bounded set on which the Gibbs chains mix uniformly well), $\theta_t$ converges
# almost surely to a *stationary point* of the likelihood. For a Boltzmann machine without hidden units the
# log-likelihood is concave and that point is the maximum; an RBM's log-likelihood is not concave (the hidden
# units are summed out), so the point can be a local maximum. A decaying step does one more thing: once the
# parameters move slowly compared with how fast the chain mixes, the chain keeps up with the model it is
# supposed to sample. With a large step the model moves faster than the chains mix, and the particles
# describe a model that no longer exists (section 5 measures what that costs). In this chapter the step
# decays linearly to zero over a fixed number of epochs, a finite-horizon version of the same idea; averaging
# the parameters over the last updates instead of decaying the step (Polyak & Juditsky, 1992) is the other
# standard way to tame the noise of stochastic approximation.
#
# Keeping chains alive has costs too. **Memory:** $M$ states of the visible layer, nothing for an RBM on
# digits, but a real buffer for a large image model (chapter 4's replay buffer is the same idea). **Stale
# chains:** the particles were sampled under older parameters, which is fine only while the step size is
# small. **Chains stuck in one mode:** the standard remedies for RBMs are better transitions, such as parallel
# tempering (Desjardins et al., 2010; Cho, Raiko & Ilin, 2010) or tempered transitions (Salakhutdinov, 2010),
# and *fast weights*, a second, quickly decaying copy of the parameters that pushes the particles out of the
# modes they have just visited (Tieleman & Hinton, 2009). Learning itself helps: each update raises the
# energy where the particles sit, so they move on faster than a Gibbs chain of a fixed model would (Tieleman
# & Hinton, 2009; Welling, 2009, takes this to its limit with herding). Re-initialising a fraction of the
# particles, common for the replay buffers of deep EBMs (Du & Mordatch, 2019; chapter 4), is measured in
# section 6.
#
# In code, the two differ in one argument: `cd_gradient` starts the negative chains at `v_negative_start`
# when it is given (the persistent chains) and at the data otherwise. (`check_int`, `_gen` and
# `_one_thread_if_small` are housekeeping: the input check, the model's default random generator, and one
# CPU thread for small products.)

# %%
print(listing(BernoulliRBM.cd_gradient))

# %% [markdown]
# ## 2. PCD by hand, and what `fit` does
#
# A few PCD updates with the package's pieces: the chains returned by one update are the start of the next.
# Each update draws $\mathbf h \sim p(\mathbf h\mid\mathbf v)$ for the chains under the *current*
# parameters, then $\mathbf v \sim p(\mathbf v\mid\mathbf h)$: the persistent state is $\mathbf v$.

# %%
rbm = BernoulliRBM(64, 16, device=device, seed=0)
g = make_generator(0, device)
# M = 100 particles, from noise
chains = (torch.rand(100, 64, generator=g, device=device) < 0.5).float()
# (mean, 4 sd) over 8 seeds of (pixels flipped, pixels on) after these updates
by_hand = {1: ((0.50, 0.02), (0.50, 0.025)), 10: ((0.363, 0.035), (0.40, 0.03)),
           50: ((0.269, 0.03), (0.309, 0.035)), 200: ((0.262, 0.025), (0.296, 0.025))}
print(f"pixels on in the data: {exact(x_train.mean(), '.3f', rel=1e-6)}")
for update in range(1, 201):
    start = 20 * update % (len(x_train) - 20)  # minibatch: the next 20 images, wrapping round the set
    before = chains
    minibatch = x_train[start:start + 20]
    grad, chains = rbm.cd_gradient(minibatch, k=1, v_negative_start=chains, generator=g)
    rbm.update(grad, step_size=0.1)
    if update in (1, 10, 50, 200):
        flipped, on = float((chains != before).float().mean()), float(chains.mean())
        print(f"update {update:3d}: pixels flipped {expect(flipped, *by_hand[update][0])}, "
              f"pixels on {expect(on, *by_hand[update][1])}")

# %% [markdown]
# The particles start as noise, with half their pixels on; within a few dozen updates they have the data's
# density of ink, and each Gibbs step (one per update) flips fewer of their pixels as the model acquires
# structure.
#
# `fit(..., persistent=True)` runs the same algorithm, fast. (One detail differs: it keeps the hidden state
# $\mathbf h$ of the chains from the end of the previous update, as scikit-learn does, which saves a matrix
# product; the random numbers are then used in another order, so the two do not give identical numbers.)
#
# ## 3. CD and PCD on binarized digits, at equal Gibbs work
#
# The setting of chapter 2: 16 hidden units, minibatches of 20, the step size decaying linearly from 0.1 to 0,
# here over 100 epochs. What a method costs is mostly its Gibbs sampling: CD-$k$ runs $k$ steps for each of
# the 20 images of a minibatch, PCD-$k$ runs $k$ steps for each of its $M$ particles. So we compare in pairs
# that do the same Gibbs work per update:
#
# - **20 chain-steps**: CD-1 against PCD-1 with $M = 20$ particles;
# - **200 chain-steps**: CD-10 against PCD-1 with $M = 200$ particles (ten times more particles instead of ten
#   times longer chains).
#
# Equal Gibbs work is not equal time on a CPU (the timings below): CD-10's ten steps are ten small matrix
# products one after the other, PCD-1's 200 particles one product ten times wider, and for matrices this
# small the cost is mostly the number of operations, not their size. Each method runs with three seeds
# (initial weights and minibatch order), and we report the exact log-likelihood on the training and test
# sets.

# %%
n_hidden, batch_size, n_epochs = 16, 20, 100 * SCALE


def anneal(epoch):
    return 0.1 * (1 - (epoch - 1) / n_epochs)


def exact_log_lik(epoch, model):
    """fit's callback: the exact train and test log-likelihood every 10 epochs."""
    if epoch % (10 * SCALE):
        return None
    log_z = model.log_partition_exact()
    return {"at": epoch, "train": model.log_likelihood_exact(x_train, log_z),
            "test": model.log_likelihood_exact(x_test, log_z)}


# name: (Gibbs steps k per update, number of persistent particles M or None for CD)
methods = {"CD-1": (1, None), "PCD-1, M = 20": (1, 20), "CD-10": (10, None),
           "PCD-1, M = 200": (1, 200)}
histories, seconds = {}, {}
for name, (k, n_particles) in methods.items():
    for seed in range(3):
        model = BernoulliRBM(64, n_hidden, device=device, seed=seed)
        h = model.fit(x_train, n_epochs=n_epochs, batch_size=batch_size, step_size=anneal, k=k,
                      persistent=n_particles is not None, n_chains=n_particles,
                      generator=make_generator(1 + seed, device),
                      callback=exact_log_lik if seed == 0 else None)
        log_z = model.log_partition_exact()
        histories[name, seed] = {**h,
                                 "final train": model.log_likelihood_exact(x_train, log_z),
                                 "final test": model.log_likelihood_exact(x_test, log_z)}
        seconds[name, seed] = h["seconds"][-1]


def final(name, part):
    return torch.tensor([histories[name, s][f"final {part}"] for s in range(3)])


# means over 8 seeds of the 3-seed mean log-likelihood: (train, test)
expected_final = {"CD-1": (-17.97, -18.41), "PCD-1, M = 20": (-17.91, -18.37),
                  "CD-10": (-17.87, -18.33), "PCD-1, M = 200": (-17.88, -18.33)}
print("exact log-likelihood, mean over 3 seeds:")
for name in methods:
    train, test = final(name, "train"), final(name, "test")
    print(f"{name:15s} train {expect(train.mean(), expected_final[name][0], 0.3)}, "
          f"test {expect(test.mean(), expected_final[name][1], 0.95)} nats; "
          f"sd of test {expect(test.std(), 0.055, 0.13)}")
# pairs at equal Gibbs work: (mean, 4 sd) over 8 seeds of their differences (train, test)
equal_work = {("PCD-1, M = 20", "CD-1"): ((0.06, 0.3), (0.04, 0.33)),
              ("PCD-1, M = 200", "CD-10"): ((-0.01, 0.25), (-0.01, 0.23))}
for (a, b), (in_train, in_test) in equal_work.items():
    d_train = final(a, "train") - final(b, "train")
    d_test = final(a, "test") - final(b, "test")
    print(f"{a} minus {b}, seed by seed: train {expect(d_train, *in_train)}, "
          f"test {expect(d_test, *in_test)}")
pairs = [final(a, part) - final(b, part) for a, b in equal_work for part in ("train", "test")]
print(claim(all(bool((d.abs() < 0.3).all()) for d in pairs),
            "at equal Gibbs work, CD and PCD end within 0.3 nats of each other on every seed"))
ten_times = [("CD-10", "CD-1"), ("PCD-1, M = 200", "PCD-1, M = 20")]
more_work = [final(a, part).mean() - final(b, part).mean() for a, b in ten_times
             for part in ("train", "test")]
print(claim(all(-0.1 < float(d) < 0.2 for d in more_work),
            "ten times the Gibbs work moves the mean final log-likelihood by -0.1 to 0.2"))
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), gridspec_kw={"width_ratios": [3, 2]})
plot_log_likelihood_curves({name: histories[name, 0] for name in methods}, ax=axes[0],
                           parts=("test",), ncol=1, ylabel="exact test log-likelihood (nats)",
                           title="during training (seed 0)")
axes[0].set_ylim(min(histories[name, 0]["test"][1] for name in methods) - 0.1,
                 max(max(histories[name, 0]["test"]) for name in methods) + 0.1)
plot_seed_points({name.replace(", ", "\n"): final(name, "test") for name in methods}, ax=axes[1],
                 title="at the end, 3 seeds")
plt.tight_layout()
plt.show()

# %% tags=["nbval-ignore-output"]
for name in methods:
    per_seed = ", ".join(f"{v:.3f}" for v in final(name, "test").tolist())
    print(f"{name:15s}: {sum(seconds[name, s] for s in range(3)) / 3:.2f} s per run; test "
          f"log-likelihood per seed {per_seed} nats")

# %% [markdown]
# On these digits, at equal Gibbs work, CD and PCD end within 0.3 nats of each other on every seed, and the
# right panel shows how close: the differences between methods are of the order of the spread between seeds.
# Averaged over many seeds (the expected values of the paired differences printed above), PCD-1 with 20
# particles ends a few hundredths of a nat above CD-1, an amount that three seeds cannot resolve. Ten times
# the Gibbs work moves the mean final log-likelihood by $-0.1$ to $0.2$ nats. Chapter 2 found CD-1 within
# about a tenth of a nat of exact-gradient maximum likelihood on these digits, so there is little bias for
# PCD to remove. The next section shows a model where there is a lot.
#
# Below, the first 16 of 200 fantasy particles of a PCD-1 run at a few moments of training (the run is cut
# into four legs with `fit`, each continuing the previous leg's particles). They are samples of the model as
# it was being trained, not of the data: noisy strokes at first, then digit-like shapes that keep moving
# between classes.

# %%
pcd = BernoulliRBM(64, n_hidden, device=device, seed=0)
g, particles, chains, done = make_generator(1, device), {}, None, 0
for epochs in [5, 10, 35, 50]:
    h = pcd.fit(x_train, n_epochs=epochs * SCALE, batch_size=batch_size,
                step_size=lambda e: anneal(done + e), k=1, persistent=True,  # the schedule goes on
                n_chains=None if chains is not None else 200, v_chains=chains, generator=g)
    chains, done = h["v_chains"], done + epochs * SCALE
    particles[f"epoch {done}"] = chains[:16]
plot_image_rows(particles, n_cols=16, title="PCD fantasy particles (binary states), training")
plt.show()
on = torch.stack([v.sum(1).mean() for v in particles.values()])
print(f"pixels on per particle at epochs {', '.join(k.split()[1] for k in particles)}: "
      f"{expect(on, [18.9, 19.0, 18.6, 18.4], 3.7)}")
print(f"pixels on per training image: {exact(x_train.sum(1).mean(), '.1f', rel=1e-6)}")

# %% [markdown]
# ## 4. Where CD's bias is large: MNIST
#
# The digits above are an easy case. Take binarized MNIST instead ($28\times28$ pixels, the fixed binarization
# of Salakhutdinov & Murray, 2008, shipped with the package), 2,000 training images, and an RBM with 10 hidden
# units: small enough that $\log Z$ is a sum over $2^{10}$ hidden states, so the likelihood is still exact.
# Visible biases start at the pixels' log-odds (chapter 2's practical guide), the step size decays from 0.1 to 0
# over 25 epochs, minibatches of 20. CD-1 against PCD-1 with $M = 20$ particles, the same Gibbs work, three
# seeds each; the test set is 2,000 random test images.

# %%
g = make_generator(7)
mnist_train = load_binarized_mnist("train", device=device)
mnist_train = mnist_train[torch.randperm(len(mnist_train), generator=g)[:2000].to(device)]
mnist_test = load_binarized_mnist("test", device=device)
mnist_test = mnist_test[torch.randperm(len(mnist_test), generator=g)[:2000].to(device)]
mnist_epochs = 25 * SCALE
mnist_models, mnist_ll = {}, {}
for name, n_particles in [("CD-1", None), ("PCD-1", 20)]:
    for seed in range(3):
        model = BernoulliRBM(784, 10, device=device, seed=seed)
        model.init_visible_biases(mnist_train)
        model.fit(mnist_train, n_epochs=mnist_epochs, batch_size=20, k=1,
                  step_size=lambda e: 0.1 * (1 - (e - 1) / mnist_epochs),
                  persistent=n_particles is not None, n_chains=n_particles,
                  generator=make_generator(10 + seed, device))
        log_z = model.log_partition_exact()
        mnist_models[name, seed] = model
        mnist_ll[name, seed] = (model.log_likelihood_exact(mnist_train, log_z),
                                model.log_likelihood_exact(mnist_test, log_z))
gaps = torch.tensor([mnist_ll["PCD-1", s][1] - mnist_ll["CD-1", s][1] for s in range(3)])
# (mean, 4 sd) over 8 seeds of the train and test log-likelihood
mnist_expected = {"CD-1": ((-178.6, 6.5), (-180.0, 7.5)),
                  "PCD-1": ((-166.4, 6.0), (-167.9, 5.5))}
for name in ("CD-1", "PCD-1"):
    test = torch.tensor([mnist_ll[name, s][1] for s in range(3)])
    train = torch.tensor([mnist_ll[name, s][0] for s in range(3)])
    print(f"{name:5s}: exact log-likelihood, mean of 3 seeds: train "
          f"{expect(train.mean(), *mnist_expected[name][0])}, test "
          f"{expect(test.mean(), *mnist_expected[name][1])} nats")
print(f"PCD-1 minus CD-1 on the test set, seed by seed: {expect(gaps, 12.0, 12.5)} nats")
print(claim(bool((gaps > 4).all()),
            "PCD-1 is ahead of CD-1 by more than 4 nats per image on every seed"))

# %% [markdown]
# Now the gap is not a tenth of a nat but about twelve nats per image (between 5 and 19 in the 24 runs we
# used to set the expected ranges, and more than 4 on every one): a test digit is on average some $e^{12}$,
# about $10^5$, times more probable under the PCD model. Where does CD-1's model put the probability
# that the test digits lack? Long Gibbs chains show it: below, 8 chains of each seed-0 model, started from
# noise and run for 1,000 steps (we show $p(\mathbf v\mid\mathbf h)$ at the last step), and how different
# the 8 samples are from each other (the mean absolute difference of two of them, summed over the pixels,
# averaged over the three seeds' models).

# %%
g = make_generator(8, device)
noise = (torch.rand(8, 784, generator=g, device=device) < 0.5).float()
rows, spread = {}, {}
for name in ("CD-1", "PCD-1"):
    for seed in range(3):
        model = mnist_models[name, seed]
        v = model.gibbs(noise, n_steps=1000 * SCALE, generator=g)
        samples = model.p_v_given_h(model.sample_h_given_v(v, generator=g))
        # the mean L1 distance between two of the 8 samples (8 x 7 ordered pairs)
        spread[name, seed] = float(torch.cdist(samples, samples, p=1).sum() / (8 * 7))
        if seed == 0:
            rows[name] = samples
rows["training"] = mnist_train[:8]
plot_image_rows(rows, image_shape=(28, 28), n_cols=8, width=6.5,
                title="samples after 1,000 Gibbs steps, and data")
plt.show()
mean_spread = {name: sum(spread[name, s] for s in range(3)) / 3 for name in ("CD-1", "PCD-1")}
print(f"how different the 8 samples are, mean over 3 seeds: "
      f"CD-1 {expect(mean_spread['CD-1'], 16.6, 46.0)}, "
      f"PCD-1 {expect(mean_spread['PCD-1'], 55.4, 36.0)} pixels")
print(claim(mean_spread["CD-1"] < mean_spread["PCD-1"],
            "CD-1's long chains end in more alike images than PCD-1's"))

# %% [markdown]
# CD-1's negative samples never leave the neighbourhood of the minibatch, one Gibbs step away from real
# digits. Whatever the model does beyond that neighbourhood is never corrected. Here (seed 0, plotted) its
# chains, run long, pile into one blurred shape: the model has grown a broad mode that holds probability the
# digits should have, and no one-step chain from a digit ever went there to push it down. PCD's particles
# wander wherever the model puts mass, the update lowers it there, and long chains of the PCD model visit
# several kinds of digit.
#
# The same direction, much larger, is the best-known result on this data: better negative samples give a far
# better model. Salakhutdinov and Murray (2008, Table 2) trained RBMs with 500 hidden units on all of
# binarized MNIST with CD of several lengths (they did not run PCD) and measured their test log-likelihood
# with AIS: $-125.53$ nats per image after CD-1, $-105.50$ after CD-3 and $-86.34$ after CD-25. (We quote
# their numbers; reproducing them takes hours of training and AIS.) Tieleman (2008) compared PCD with CD on
# MNIST. Longer chains, or persistent ones, are not a refinement there: they decide whether the model is any
# good.

# %% [markdown]
# ## 5. The step size: what a large constant step costs
#
# Section 1 said stochastic maximum likelihood needs a decaying step size. Here is the comparison of
# section 3 with a large constant step size, 0.5 (five times the schedule's largest value), instead of the
# decaying schedule, for CD-1 and for PCD-1 with $M = 20$ particles (equal Gibbs work), three seeds each.

# %%
constant = {}
for name, n_particles in [("CD-1", None), ("PCD-1, M = 20", 20)]:
    for seed in range(3):
        model = BernoulliRBM(64, n_hidden, device=device, seed=seed)
        model.fit(x_train, n_epochs=n_epochs, batch_size=batch_size, step_size=0.5, k=1,
                  persistent=n_particles is not None, n_chains=n_particles,
                  generator=make_generator(1 + seed, device))
        constant[name, seed] = model.log_likelihood_exact(x_test)
loss = {name: final(name, "test") - torch.tensor([constant[name, s] for s in range(3)])
        for name in ("CD-1", "PCD-1, M = 20")}
print(f"what the constant step size 0.5 costs on the test set, seed by seed: CD-1 "
      f"{expect(loss['CD-1'], 0.75, 1.7)}, PCD-1 {expect(loss['PCD-1, M = 20'], 9.0, 10.0)}")
print(claim(bool((loss["PCD-1, M = 20"] > loss["CD-1"]).all()),
            "the constant step size costs PCD more than CD-1, on every seed"))

# %% [markdown]
# CD-1 loses a little, under a nat in the run above (up to about two nats on other seeds): its chains restart
# at the data every update, so they cannot fall behind. PCD loses several nats (3 to 7 above, more than ten on
# some other seeds): with a step this large the model changes faster than one Gibbs step per update can
# follow, and the particles describe a model that no longer exists. What this shows is that a *large* step
# hurts PCD far more than CD; it compares a large step with a decaying one, so it does not by itself show
# that a constant step of the schedule's own size would fail. That the step should decay comes from the
# theory of section 1: with any constant step the parameters keep fluctuating instead of settling.
#
# ## 6. Re-initialising a few chains
#
# `fit(..., reinit_fraction=0.05)` restarts 5 % of the particles before every update, picked at random,
# from the data's base rates (each pixel on with its frequency in the training set). With $M = 20$
# particles that is one per update. Same schedule and seeds as the PCD-1 runs of section 3:

# %%
reinit = {}
for seed in range(3):
    model = BernoulliRBM(64, n_hidden, device=device, seed=seed)
    model.fit(x_train, n_epochs=n_epochs, batch_size=batch_size, step_size=anneal, k=1,
              persistent=True, n_chains=20, reinit_fraction=0.05,
              generator=make_generator(1 + seed, device))
    reinit[seed] = model.log_likelihood_exact(x_test)
cost = final("PCD-1, M = 20", "test") - torch.tensor([reinit[s] for s in range(3)])
print(f"what 5 % re-initialisation costs on the test set, seed by seed: "
      f"{expect(cost, 0.065, 0.45)} nats")

# %% [markdown]
# Here re-initialisation costs between nothing and a few tenths of a nat. A restarted particle is far from
# the model's distribution for its first Gibbs steps, and with one Gibbs step per update a share of the
# particles is always young: the negative phase is pulled toward the base rates. With few particles that
# pull can cost much more than here. Re-initialisation is meant for particles that get *stuck*, in a model
# whose modes are separated by barriers that one Gibbs step rarely crosses; this chapter has no such case
# (our 16-unit digit model mixes fast, so it has nothing to gain), so treat it as an option to measure, not
# a default.

# %% [markdown]
# ## 7. Annealed importance sampling
#
# ### Importance sampling, and why it needs a path
#
# Let $p_A(\mathbf v) = p^*_A(\mathbf v)/Z_A$ be a distribution we can sample and whose $Z_A$ we know, and
# $p^*_B(\mathbf v) = e^{-F(\mathbf v)}$ the RBM's unnormalised marginal. Then
#
# $$\frac{Z_B}{Z_A} = \sum_{\mathbf v} p_A(\mathbf v)\,\frac{p^*_B(\mathbf v)}{p^*_A(\mathbf v)}
#   = \mathbb E_{p_A}\!\left[w(\mathbf v)\right],\qquad w = \frac{p^*_B}{p^*_A},$$
#
# and the average of $w$ over samples from $p_A$ is an unbiased estimate of $Z_B/Z_A$. But when $p_A$ and
# $p_B$ differ a lot, almost every sample lands where $p_B$ is tiny and one rare sample carries the
# whole sum: the variance is astronomical.
#
# AIS (Neal, 2001) puts a path of distributions $p_0 = p_A, p_1, \dots, p_K = p_B$ in between, close enough
# that each ratio $p^*_k / p^*_{k-1}$ is tame. A chain starts with $\mathbf v_1 \sim p_0$; at step $k$ it
# multiplies its weight by $p^*_k(\mathbf v_k)/p^*_{k-1}(\mathbf v_k)$ and then, unless $k = K$, moves to
# $\mathbf v_{k+1} \sim T_k(\mathbf v_k, \cdot)$ by a Markov transition $T_k$ that leaves $p_k$ invariant:
#
# $$w = \prod_{k=1}^{K} \frac{p^*_k(\mathbf v_k)}{p^*_{k-1}(\mathbf v_k)} .$$
#
# ### Why $\mathbb E[w] = Z_B/Z_A$, exactly
#
# The trick (Neal, 2001) is to see $w$ as an ordinary importance weight on the space of whole trajectories
# $(\mathbf v_1, \dots, \mathbf v_K)$. The chain *proposes* trajectories with probability
#
# $$q(\mathbf v_1, \dots, \mathbf v_K) = p_0(\mathbf v_1)\, T_1(\mathbf v_1, \mathbf v_2) \cdots
#   T_{K-1}(\mathbf v_{K-1}, \mathbf v_K).$$
#
# For the *target*, run time backwards: let $\tilde T_k(\mathbf v', \mathbf v) = T_k(\mathbf v, \mathbf v')\,
# p_k(\mathbf v)/p_k(\mathbf v')$ be the reversal of $T_k$. Because $T_k$ leaves $p_k$ invariant,
# $\sum_{\mathbf v} p_k(\mathbf v) T_k(\mathbf v, \mathbf v') = p_k(\mathbf v')$, so each row of
# $\tilde T_k$ sums to 1: it is a transition too. Define
#
# $$\pi(\mathbf v_1, \dots, \mathbf v_K) = p_K(\mathbf v_K)\, \tilde T_{K-1}(\mathbf v_K, \mathbf v_{K-1})
#   \cdots \tilde T_1(\mathbf v_2, \mathbf v_1):$$
#
# start at the target $p_K$ and walk back. It is normalised (sum over $\mathbf v_1$ first, then
# $\mathbf v_2$, ...), and its marginal of $\mathbf v_K$ is $p_K$. Its unnormalised version $\pi^* = Z_K\,\pi$
# uses $p^*_K$ in place of $p_K$. Now divide, using the definition of $\tilde T_k$ (the $Z_k$ cancel in
# $p_k(\mathbf v_k)/p_k(\mathbf v_{k+1})$):
#
# $$\frac{\pi^*}{q} = \frac{p^*_K(\mathbf v_K)}{p_0(\mathbf v_1)} \prod_{k=1}^{K-1}
#   \frac{\tilde T_k(\mathbf v_{k+1}, \mathbf v_k)}{T_k(\mathbf v_k, \mathbf v_{k+1})}
#   = Z_0\,\frac{p^*_K(\mathbf v_K)}{p^*_0(\mathbf v_1)} \prod_{k=1}^{K-1}\frac{p^*_k(\mathbf v_k)}{p^*_k(\mathbf v_{k+1})}
#   = Z_0 \prod_{k=1}^{K}\frac{p^*_k(\mathbf v_k)}{p^*_{k-1}(\mathbf v_k)} = Z_0\, w .$$
#
# So $Z_0\,\mathbb E_q[w] = \sum_{\text{trajectories}} q \cdot \frac{\pi^*}{q} = \sum \pi^* = Z_K$: the
# estimate $\hat Z = Z_0 \frac1M\sum_m w_m$ over $M$ independent chains is **unbiased**, for any $K$ and any
# transitions that leave each $p_k$ invariant. The path only changes the variance: the closer neighbouring
# $p_k$ are, the less the weights vary. (And since $\pi$'s marginal of $\mathbf v_K$ is $p_K$, the final
# states weighted by $w$ are weighted samples of the target.) We work with logs,
# $\log \hat Z = \log Z_0 + \operatorname{log\text{-}mean\text{-}exp}_m(\log w_m)$.
#
# ### The path for an RBM
#
# Take as base an RBM with no couplings, $W = 0$, visible biases $\mathbf b_A$ and the same hidden units,
# and mix the two *energies*: $E_\beta = (1-\beta) E_A + \beta E$, with inverse temperatures
# $0 = \beta_0 < \beta_1 < \dots < \beta_K = 1$. Then every $p_\beta$ is itself an RBM, with couplings
# $\beta W$, visible biases $(1-\beta)\mathbf b_A + \beta \mathbf b$ and hidden biases $\beta \mathbf c$:
#
# $$-F_\beta(\mathbf v) = (1-\beta)\,\mathbf b_A^\top \mathbf v + \beta\,\mathbf b^\top \mathbf v
#   + \sum_j \operatorname{softplus}\!\big(\beta\,(c_j + (\mathbf v^\top W)_j)\big),$$
#
# and its block Gibbs step is the transition $T_k$: $h_j \sim \sigma(\beta(c_j + (\mathbf v^\top W)_j))$,
# then $v_i \sim \sigma((1-\beta) b_{A,i} + \beta(b_i + (W\mathbf h)_i))$. At $\beta = 0$ the pixels are
# independent with $p(v_i{=}1) = \sigma(b_{A,i})$ and the hidden units are fair coins, so
# $\log Z_A = \sum_i \operatorname{softplus}(b_{A,i}) + n_h \log 2$. The log-weight collects
# $F_{\beta_{k-1}}(\mathbf v_k) - F_{\beta_k}(\mathbf v_k)$ at every step (in float64: up to 14,500 small
# increments). (Note that $\beta$ sits *inside* the softplus. Mixing the two free energies instead,
# $\beta F + (1-\beta) F_A$, gives a path whose distributions are not RBMs and have no block Gibbs sampler.)
#
# **The base.** $\mathbf b_A = 0$ is the uniform distribution over all $2^{64}$ images, far from any digit
# model. The *base-rate* RBM sets $b_{A,i} = \log\frac{\bar p_i}{1-\bar p_i}$ from the training pixels'
# means $\bar p_i$ (clipped away from 0 and 1): the best model with independent pixels, already much
# closer to the RBM. **The schedule** of Salakhutdinov & Murray (2008) takes 500 steps from 0 to 0.5, 4,000
# to 0.9 and 10,000 to 1, denser where the couplings reach full strength; `ais_betas(K)` scales it to $K$
# steps. Here is the whole algorithm, in the notation above (`ais_reference`):

# %%
print(inspect.getsource(ais_reference).split('"""')[-1])

# %% [markdown]
# The package's `ais_log_partition` computes the same thing faster (buffers allocated once, the units
# stored unit-major, random numbers drawn in chunks, the two products of a step fused), and returns an
# `AISResult` with the standard error and the effective sample size. It reads the same random numbers as the
# reference: on a float64 copy of the PCD model of section 3, with the same seed, the two agree to rounding.

# %%
b_A = base_rate_bias(x_train)
# on the CPU: the reference draws its random numbers there, one call per step
pcd64 = BernoulliRBM.from_arrays(pcd.W.double().cpu(), pcd.b.double().cpu(), pcd.c.double().cpu())
betas = torch.linspace(0, 1, 101, dtype=torch.float64)  # 100 equal steps
fast = ais_log_partition(pcd64, n_chains=20, betas=betas, base=b_A.double().cpu(), seed=4)
slow_log_z, slow_log_w = ais_reference(pcd64, betas.tolist(), b_A.double().cpu(), 20,
                                       generator=make_generator(4))
print(f"log Z^ from 20 chains and 100 temperatures: {expect(fast.log_z, 60.0, 5.0)}")
same = (abs(fast.log_z - slow_log_z) < 1e-9
        and torch.allclose(fast.log_weights, slow_log_w, rtol=0, atol=1e-9))
print(claim(same, "the fast and the reference AIS agree on log Z^ and the 20 log-weights"))

# %% [markdown]
# Every intermediate distribution is an RBM we can sample. Here are samples along the path from the
# base-rate RBM to the PCD model (each row: 300 Gibbs steps at that $\beta$, from base samples). Near
# $\beta = 0$ they are independent pixels with the digits' base rates; strokes appear by $\beta = 0.5$ and
# the digit shapes sharpen as $\beta$ approaches 1, where the distributions change fastest, which is why the
# schedule is densest there.

# %%
g = make_generator(2, device)
path_rows = {}
for beta in (0.0, 0.5, 0.8, 0.9, 0.95, 1.0):
    b_beta = (1 - beta) * b_A + beta * pcd.b
    p_beta = BernoulliRBM.from_arrays(beta * pcd.W, b_beta, beta * pcd.c)
    start = (torch.rand(16, 64, generator=g, device=device) < torch.sigmoid(b_A)).float()
    path_rows[rf"$\beta$ = {beta:g}"] = p_beta.gibbs(start, n_steps=300, generator=g)
plot_image_rows(path_rows, n_cols=16,
                title=r"samples of $p_\beta$, from the base rates to the PCD RBM")
plt.show()
print(f"base-rate biases b_A: from {exact(b_A.min(), '.2f', rel=1e-5)} "
      f"to {exact(b_A.max(), '.2f', rel=1e-5)}")

# %% [markdown]
# ### AIS against the exact $\log Z$
#
# On the 16-hidden-unit PCD model, $\log Z$ is exact, so we can measure AIS's error as the number of
# temperatures $K$ grows, for both bases. Each setting runs 10 independent AIS estimates of 100 chains each,
# as one vectorised call of 1,000 chains whose weights are split into 10 groups.

# %%
exact_log_z = pcd.log_partition_exact()
n_betas_list = [10, 30, 100, 300, 1000 * SCALE]
n_runs, per_run = 10, 100
errors = {"uniform base": [], "base-rate base": []}
seconds = {"uniform base": [], "base-rate base": []}
for label, base in [("uniform base", "uniform"), ("base-rate base", x_train)]:
    for i, n_betas in enumerate(n_betas_list):
        start = time.perf_counter()
        result = ais_log_partition(pcd, n_chains=n_runs * per_run, n_betas=n_betas, base=base,
                                   seed=i)
        seconds[label].append((time.perf_counter() - start) / n_runs)
        log_w = result.log_weights.view(n_runs, per_run)  # 10 runs of 100 chains
        log_z_hat = result.log_z_base + log_mean_exp(log_w, dim=1)
        errors[label].append(float(((log_z_hat - exact_log_z) ** 2).mean().sqrt()))
# the exact log Z of the trained model varies with the training run, hence a range
print(f"exact log Z of the PCD model: {expect(exact_log_z, 60.1, 5.0)}")
rms_expected = {"uniform base": ((8.7, 3.7), (0.16, 0.18)),  # (mean, 4 sd) over 8 seeds
                "base-rate base": ((0.39, 0.33), (0.029, 0.03))}
for label in errors:
    first, last = rms_expected[label]
    print(f"{label}: RMS error of log Z^ at K = {n_betas_list[0]}: "
          f"{expect(errors[label][0], *first)} nats,")
    print(f"    at K = {n_betas_list[-1]}: {expect(errors[label][-1], *last)} nats")
plot_ais_convergence(n_betas_list, errors, seconds,
                     title="AIS on the 64 x 16 PCD RBM: error and cost")
plt.show()

# %% tags=["nbval-ignore-output"]
for label in seconds:
    times = ", ".join(f"K={k}: {s * 1e3:.1f} ms" for k, s in zip(n_betas_list, seconds[label]))
    print(f"{label:15s}: {times}")

# %% [markdown]
# The time per run grows linearly with $K$; the error falls roughly like $K^{-1/2}$ once the path is fine
# enough (the variance of $\log w$ is a sum of $K$ small terms, each shrinking like $1/K^2$). The base-rate
# base starts an order of magnitude ahead: for a given accuracy it needs far fewer temperatures, so use it
# whenever training data exist.

# %% [markdown]
# ## 8. A larger RBM, where only AIS can tell
#
# With 128 hidden units neither layer can be enumerated ($2^{64}$ visible states, $2^{128}$ hidden). We
# train one model with CD-1 and one with PCD-1 (20 particles, the same Gibbs work), same initial weights,
# same decaying step size, 60 epochs, and estimate their test log-likelihood with AIS: the free energy is
# exact, only $\log Z$ is estimated, so the uncertainty of the log-likelihood is that of $\log \hat Z$. Each
# model gets three AIS runs: the base-rate base with 2,000 temperatures, the same with twice as many (a
# convergence check), and the uniform base with 2,000. This one pair of runs demonstrates AIS; it does not
# rank the training methods, which needs several seeds (section 3).

# %%
big, ais_results = {}, {}
big_epochs = 60 * SCALE
for name, n_particles in [("CD-1", None), ("PCD-1", 20)]:
    big[name] = model = BernoulliRBM(64, 128 * SCALE, device=device, seed=0)
    model.fit(x_train, n_epochs=big_epochs, batch_size=batch_size, k=1,
              persistent=n_particles is not None, n_chains=n_particles,
              step_size=lambda e: 0.1 * (1 - (e - 1) / big_epochs),
              generator=make_generator(1, device))
    for label, base, n_betas in [("base rates, K = 2000", x_train, 2000),
                                 ("base rates, K = 4000", x_train, 4000),
                                 ("uniform, K = 2000", "uniform", 2000)]:
        ais_results[name, label] = ais_log_partition(
            model, n_chains=100, n_betas=n_betas * SCALE, base=base, seed=3)
# (mean, 4 sd) over 8 seeds of: the test log-likelihood, the standard error, the ESS
big_expected = {"CD-1": ((-17.83, 1.25), (0.021, 0.01), (95.8, 3.0)),
                "PCD-1": ((-17.6, 1.1), (0.027, 0.013), (93.3, 6.0))}
for name in big:
    r2 = ais_results[name, "base rates, K = 2000"]
    r4 = ais_results[name, "base rates, K = 4000"]
    ru = ais_results[name, "uniform, K = 2000"]
    test_ll = ais_log_likelihood(big[name], x_test, r4)
    ll, se, ess = big_expected[name]
    print(f"{name:5s}: AIS test log-likelihood {expect(test_ll, *ll)} nats,")
    print(f"       standard error {expect(r4.std_error, *se)}, "
          f"ESS {expect(r4.ess, *ess)} of 100")
    both_se = math.hypot(r2.std_error, r4.std_error)
    print("      ", claim(abs(r4.log_z - r2.log_z) < 3 * both_se,
                         "doubling K moved log Z^ by less than 3 s.e."))
    print("      ", claim(ru.std_error > r4.std_error and ru.ess < r4.ess,
                         "the uniform base has a larger s.e. and a smaller ESS"))

# %% tags=["nbval-ignore-output"]
for (name, label), r in ais_results.items():
    print(f"{name:5s}, {label:20s}: log Z^ = {r.log_z:8.3f} +- {r.std_error:.3f} (1 s.e.), "
          f"3-s.e. interval [{r.log_z_lower:.3f}, {r.log_z_upper:.3f}], "
          f"ESS {r.ess:.0f} of 100")

# %% [markdown]
# Two checks before believing a number like these. First, the estimate's own uncertainty: the standard error
# from the spread of the weights is a few hundredths of a nat, and the effective sample size
# $\mathrm{ESS} = (\sum_m w_m)^2/\sum_m w_m^2$ is close to the number of chains. Second, agreement between
# independent routes: doubling the number of temperatures moves the estimate by no more than its noise,
# while the uniform base, at the same cost, gives a noisier estimate with a smaller ESS: the signature of a
# path that is too coarse (next section).
#
# ## 9. Pitfalls: AIS is a stochastic lower bound
#
# $\hat Z$ is unbiased, $\mathbb E[\hat Z] = Z$. The logarithm is concave, so by Jensen's inequality
#
# $$\mathbb E[\log \hat Z] \le \log \mathbb E[\hat Z] = \log Z :$$
#
# on average, $\log \hat Z$ is **too low**, and a log-likelihood computed with it, $-F(\mathbf v) - \log \hat Z$,
# is **too high**. The gap grows with the variance of the weights: too few temperatures, too few chains, or a
# poor base (uniform) all make the model look better than it is.
#
# The other direction is different. $\hat Z \ge 0$ and $\mathbb E[\hat Z] = Z$, so Markov's inequality,
# $P(\hat Z \ge a) \le \mathbb E[\hat Z]/a$, with $a = e^b Z$ gives
#
# $$P\big(\log \hat Z > \log Z + b\big) \le e^{-b}:$$
#
# AIS overestimates $\log Z$ by more than 3 nats in at most 5 % of runs, by more than 5 nats in at most 0.7 %,
# whatever the path. It is a *stochastic lower bound*: it can fall far below the truth, but it rarely rises
# much above it (Grosse, Ghahramani & Adams, 2015, build upper bounds from the reverse direction). Below, 400
# AIS runs of 10 chains each on the 16-hidden-unit model (exact $\log Z$ known), for three settings.

# %%
settings = [("base rates, K = 1000", x_train, 1000), ("base rates, K = 100", x_train, 100),
            ("uniform, K = 100", "uniform", 100)]
n_runs, per_run = 400, 10
log_z_errors, ess = {}, {}
# (mean, 4 sd) over 8 seeds of: mean error, fraction of runs below, median Z^/Z
pitfalls = {"base rates, K = 1000": ((-0.004, 0.025), (0.52, 0.17), (0.995, 0.035)),
            "base rates, K = 100": ((-0.064, 0.11), (0.58, 0.13), (0.93, 0.13)),
            "uniform, K = 100": ((-3.14, 0.56), (0.928, 0.055), (0.037, 0.029))}
markov = {"base rates, K = 1000": [0.0, 0.0, 0.0], "base rates, K = 100": [0.07, 0.003, 0.0],
          "uniform, K = 100": [0.046, 0.031, 0.004]}  # mean fractions over 8 seeds
for i, (label, base, n_betas) in enumerate(settings):
    result = ais_log_partition(pcd, n_chains=n_runs * per_run, n_betas=n_betas * SCALE,
                               base=base, seed=10 + i)
    log_w = result.log_weights.view(n_runs, per_run)
    err = result.log_z_base + log_mean_exp(log_w, dim=1) - exact_log_z
    w = torch.exp(log_w - log_w.max(1, keepdim=True).values)
    ess[label] = w.sum(1) ** 2 / (w**2).sum(1)  # the ESS of each run, out of 10
    log_z_errors[label] = err
    mean_err, below, median_ratio = pitfalls[label]
    print(f"{label}: mean log Z^ - log Z = {expect(err.mean(), *mean_err)} nats;")
    print(f"    below the truth in {expect((err < 0).float().mean(), *below)} of the runs; "
          f"median Z^/Z = {expect(torch.exp(err).median(), *median_ratio)}")
    above = [float((err > b).float().mean()) for b in (0.5, 1.0, 3.0)]
    print(f"    log Z^ above log Z + 0.5, + 1, + 3 in {expect(above, markov[label], 0.05)} "
          f"of the runs (Markov: at most 0.607, 0.368, 0.050)")
    print("   ", claim(all(a <= math.exp(-b) for a, b in zip(above, (0.5, 1.0, 3.0))),
                       "no more often than Markov's bound allows"))
plot_log_z_errors(log_z_errors,
                  title=r"400 runs of 10 chains each: $\log \hat Z$ is low on average")
plt.show()

# %% [markdown]
# With the base rates and 1,000 temperatures the runs scatter tightly around the truth. With the uniform base
# and 100 temperatures, most runs fall well below $\log Z$. The mean of $\hat Z / Z$ is 1 in expectation, but
# over 400 runs it is erratic: it hangs on the rare runs with huge weights. The typical run, the median,
# underestimates $Z$ by a factor of 20 to 30 ($e^3 \approx 20$), $\log Z$ by about 3 nats. No setting
# overestimates $\log Z$ by more than Markov's bound allows. Does a bad setting, or a single bad run, give
# itself away? Look at the effective sample size of each run of 10 chains:

# %%
# (mean, 4 sd) over 8 seeds of the median ESS and of the fraction of runs with ESS < 2
ess_expected = {"base rates, K = 1000": (9.27, 0.5), "base rates, K = 100": (5.8, 0.6),
                "uniform, K = 100": (1.75, 0.55)}
ess_low = {"base rates, K = 1000": (0.0, 0.02), "base rates, K = 100": (0.008, 0.02),
           "uniform, K = 100": (0.58, 0.15)}
for label, e in ess.items():
    low = (e < 2).float().mean()
    print(f"{label}: median ESS {expect(e.median(), *ess_expected[label])} of 10; "
          f"runs with ESS < 2: {expect(low, *ess_low[label])}")
uniform_median = float(ess["uniform, K = 100"].median())
good_median = float(ess["base rates, K = 1000"].median())
print(claim(uniform_median < 2 < good_median,
            "median ESS: below 2 of 10 for the uniform base, above for base rates, K = 1000"))
e, err = ess["uniform, K = 100"], log_z_errors["uniform, K = 100"]
print(claim(float(err[e < 2].mean()) > float(err[e >= 2].mean()),
            "uniform base, K = 100: the runs with ESS < 2 land closer to log Z, on average, "
            "than the runs with ESS >= 2"))

# %% [markdown]
# Over many runs, the median ESS flags a bad *setting*: below 2 of 10 for the uniform base, above 9 for the
# base rates with 1,000 temperatures. For a single run it is no evidence, and it points the wrong way: when
# every chain misses the region where the weights are large, the weights are all small and alike, the ESS
# looks healthy, and the estimate is far too low. A run with ESS below 2 is one that caught a heavy weight,
# and those runs land closer to the truth, or above it. A high ESS therefore does not mean a good estimate;
# the independent route (doubling $K$, another base) is the check that counts. In practice:
#
# - use the base-rate base, the standard 14,500-temperature schedule (or more) and 100 or more chains;
# - report the standard error and the ESS, and distrust an estimate whose ESS is a small fraction of $M$
#   (but do not trust one because its ESS is high);
# - compare models with the *same* generous AIS settings, and check $K$ by doubling it: an estimate that still
#   rises with $K$ has not converged, and the log-likelihood it implies is an overestimate;
# - remember the asymmetry: a log-likelihood from AIS is rarely much too low, but can be far too high;
# - where a layer is small enough to enumerate, check AIS against the exact value first, as we did.
#
# ## Summary
#
# - CD-$k$ starts its negative chains at the data; PCD keeps $M$ fantasy particles across updates, so the
#   negative phase follows the model rather than the data. It is stochastic maximum likelihood (Younes), which
#   converges when the step sizes decay ($\sum\varepsilon_t = \infty$, $\sum\varepsilon_t^2 < \infty$); with a
#   large constant step the particles lag behind the model and PCD does worse than CD-1.
# - At equal Gibbs work on the 8x8 digits with 16 hidden units, CD and PCD end within a few tenths of a nat
#   (the model mixes fast). On MNIST with 10 hidden units PCD-1 is ahead of CD-1 by several nats per image on
#   every seed: CD-1 never corrects the mass its model puts far from the data. Salakhutdinov and Murray (2008)
#   found the same direction with longer CD chains at 500 hidden units (CD-1 $-125.53$, CD-25 $-86.34$ nats).
# - Re-initialising a few particles is meant for stuck chains; on a model that mixes well it buys nothing
#   and costs up to a few tenths of a nat.
# - AIS anneals from a base RBM ($W=0$) to the target through RBMs with couplings $\beta W$, moving by Gibbs
#   steps and accumulating $\log w \mathrel{+}= F_{\beta_{k-1}}(\mathbf v_k) - F_{\beta_k}(\mathbf v_k)$. Seen on
#   the space of trajectories with a reversed chain as target, $w$ is an importance weight, so $\hat Z$ is
#   unbiased; $\log \hat Z$ is a stochastic lower bound: low on average, and above $\log Z + b$ with
#   probability at most $e^{-b}$.
# - The base-rate base and enough temperatures make AIS accurate to a few hundredths of a nat on models we
#   can check exactly; that is what licenses its use on models we cannot (`tests/test_ais.py` checks a
#   784 x 15 MNIST RBM to 0.1 nats). A low median ESS over many runs flags a bad setting; a single run's
#   high ESS is no evidence that its estimate is good.
#
# **Next:** chapter 4 leaves binary units for continuous data, where Gibbs sampling gives way to Langevin
# dynamics, and the persistent chains of PCD come back as a replay buffer.
