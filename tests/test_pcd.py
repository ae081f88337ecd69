"""Persistent contrastive divergence (chapter 3) on binarized digits, measured by exact log-likelihood.

Binarized 8x8 digits, 16 hidden units, minibatches of 20, 200 epochs with the step size decaying linearly from
0.1 to 0, PCD-1 with 100 persistent chains, i.e. five times CD-1's Gibbs work per update (chapter 3 compares
the two at equal work, where they end level). Over six (model, generator) seeds this PCD-1 ended above CD-1 on
both the training and the test set every time, by 0.045 to 0.19 nats (train) and 0.045 to 0.2 nats (test);
two of those seeds are asserted here.
"""
import pytest
import torch

from ebm_teach import make_generator
from ebm_teach.data import load_digits, train_test_split
from ebm_teach.rbm import BernoulliRBM

N_EPOCHS = 200


def _train(x_train, persistent, model_seed, generator_seed):
    rbm = BernoulliRBM(64, 16, seed=model_seed)
    rbm.fit(x_train, n_epochs=N_EPOCHS, batch_size=20, step_size=lambda e: 0.1 * (1 - (e - 1) / N_EPOCHS), k=1,
            persistent=persistent, n_chains=100 if persistent else None, generator=make_generator(generator_seed))
    return rbm


@pytest.mark.parametrize("model_seed, generator_seed", [(0, 1), (1, 2)])
def test_pcd_reaches_a_higher_exact_log_likelihood_than_cd1_on_digits(model_seed, generator_seed):
    x_train, x_test = train_test_split(load_digits(binarize=True), seed=0)
    cd1 = _train(x_train, False, model_seed, generator_seed)
    pcd = _train(x_train, True, model_seed, generator_seed)
    log_z_cd1, log_z_pcd = cd1.log_partition_exact(), pcd.log_partition_exact()
    for x in (x_train, x_test):
        assert pcd.log_likelihood_exact(x, log_z_pcd) > cd1.log_likelihood_exact(x, log_z_cd1)
    # both far above independent pixels' -24 nats and the untrained model's -64 log 2 = -44.4 nats
    assert cd1.log_likelihood_exact(x_test, log_z_cd1) > -19.0


# --------------------------------------------------------------------------------------------- re-initialisation
def _frozen_rbm(n):
    """Each visible unit i is tied to hidden unit i by W_ii = 40, with b = c = -20: a unit that is on switches its
    partner on (sigma(20)) and back, one that is off stays off (sigma(-20) ~ 2e-9). Every chain is frozen in its
    state, so a chain's state after fit is where it last (re)started."""
    return BernoulliRBM.from_arrays(40.0 * torch.eye(n), torch.full((n,), -20.0), torch.full((n,), -20.0))


def _data_with_means(means, n_rows=20):
    rows = torch.zeros(n_rows, len(means))
    for i, m in enumerate(means):
        rows[: round(m * n_rows), i] = 1.0
    return rows


@pytest.mark.parametrize("n_epochs", [1, 20])
def test_reinit_restarts_that_fraction_of_chains_from_the_data_base_rates(n_epochs):
    means = torch.tensor([0.0, 0.5, 0.25, 0.9])  # pixel 0 is never on in the data, always on in the chains
    M, fraction = 1000, 0.05
    rbm = _frozen_rbm(4)
    history = rbm.fit(_data_with_means(means.tolist()), n_epochs=n_epochs, batch_size=20, step_size=1e-12, k=1,
                      persistent=True, v_chains=torch.ones(M, 4), generator=torch.Generator().manual_seed(0),
                      reinit_fraction=fraction)
    chains = history["v_chains"]
    restarted = chains[:, 0] == 0
    assert bool((chains[~restarted] == 1).all())  # the others never moved
    # one update per epoch restarts r = 50 distinct chains; after U updates a chain was never picked with
    # probability q = (1 - r/M)^U, and two given chains with q2 = ((M-r)(M-r-1) / (M(M-1)))^U
    r, U = round(fraction * M), n_epochs
    q, q2 = (1 - r / M) ** U, ((M - r) * (M - r - 1) / (M * (M - 1))) ** U
    missed_mean, missed_var = M * q, M * q + M * (M - 1) * q2 - (M * q) ** 2
    n_restarted = int(restarted.sum())
    if U == 1:
        assert n_restarted == r
    else:
        assert abs((M - n_restarted) - missed_mean) < 5 * missed_var**0.5
    # the restarted chains hold fresh draws from the base rates: each pixel within 5 standard errors
    freq = chains[restarted].mean(0)
    se = (means * (1 - means) / n_restarted).sqrt()
    assert bool(((freq - means).abs() <= 5 * se + 1e-12).all()), (freq, means)


def test_reinit_fraction_zero_changes_nothing_and_bad_values_are_refused():
    rbm = _frozen_rbm(4)
    data = _data_with_means([0.0, 0.5, 0.25, 0.9])
    history = rbm.fit(data, n_epochs=3, batch_size=20, step_size=1e-12, persistent=True, v_chains=torch.ones(50, 4),
                      generator=torch.Generator().manual_seed(0))
    assert bool((history["v_chains"] == 1).all())
    with pytest.raises(ValueError, match=r"reinit_fraction must lie in \[0, 1\]"):
        rbm.fit(data, n_epochs=1, persistent=True, reinit_fraction=1.5)
    with pytest.raises(ValueError, match="pass persistent=True"):
        rbm.fit(data, n_epochs=1, reinit_fraction=0.05)
    with pytest.raises(ValueError, match="rounds to no chain"):
        rbm.fit(data, n_epochs=1, persistent=True, n_chains=5, reinit_fraction=0.05)


def test_reinit_runs_on_every_device(device):
    rbm = BernoulliRBM(6, 3, device=device, seed=0)
    x = (torch.rand(40, 6, generator=torch.Generator().manual_seed(1)) < 0.5).float().to(device)
    history = rbm.fit(x, n_epochs=2, batch_size=10, persistent=True, n_chains=20, reinit_fraction=0.1,
                      generator=torch.Generator(device=device).manual_seed(0))
    chains = history["v_chains"]
    assert chains.shape == (20, 6) and chains.device.type == torch.device(device).type
    assert bool(((chains == 0) | (chains == 1)).all()) and bool(torch.isfinite(rbm.theta).all())
