"""Hidden checks for chapter 10's exercises (solutions/10_comparison.py).

10.1 the unbiased MMD² against a literal double sum over pairs written here (never torch.cdist), on random
     samples of random sizes, against the biased estimate (which must not be returned), and the refusal of
     a sample of one point and of mismatched dimensions.
10.2 the budget of random recipes against ebm_teach.compare.CountedEnergy, which counts the gradients that a
     few real training steps of each recipe take (an independent computation, not a formula).
10.3 the prediction against an experiment run here: CD-1 and NCE trained on the new target over three seeds;
     each predicted mass of the light mode must lie within 0.15 of the measured mean.
"""
from __future__ import annotations

import math

import torch

from ebm_teach.grade.spec import Check, Exercise, check_seed

DTYPE = torch.float64


# ----------------------------------------------------------------------------- 10.1 MMD²
def _double_sum_mmd2(x, y, h, biased=False):
    """MMD² from explicit loops over the pairs, in Python floats."""
    def k(a, b):
        return math.exp(-sum((ai - bi) ** 2 for ai, bi in zip(a, b)) / (2 * h * h))

    xs, ys = x.tolist(), y.tolist()
    m, n = len(xs), len(ys)
    kxx = sum(k(xs[i], xs[j]) for i in range(m) for j in range(m) if biased or i != j)
    kyy = sum(k(ys[i], ys[j]) for i in range(n) for j in range(n) if biased or i != j)
    kxy = sum(k(a, b) for a in xs for b in ys)
    if biased:
        return kxx / m**2 + kyy / n**2 - 2 * kxy / (m * n)
    return kxx / (m * (m - 1)) + kyy / (n * (n - 1)) - 2 * kxy / (m * n)


def _float(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} should return a number (a Python float); got {type(value).__name__}.") from None


def check_mmd_values(mmd2_unbiased):
    g = torch.Generator().manual_seed(check_seed(1))
    for _ in range(4):
        m, n, d = (int(v) for v in torch.randint(3, 9, (3,), generator=g))
        d = d % 3 + 1
        x = torch.randn(m, d, generator=g, dtype=DTYPE)
        y = torch.randn(n, d, generator=g, dtype=DTYPE) * 1.3 + 0.4
        h = float(0.5 + torch.rand((), generator=g, dtype=DTYPE) * 1.5)
        got = _float(mmd2_unbiased(x.clone(), y.clone(), h), "mmd2_unbiased")
        want = _double_sum_mmd2(x, y, h)
        biased = _double_sum_mmd2(x, y, h, biased=True)
        if abs(got - biased) < 1e-9 and abs(got - want) > 1e-6:
            raise AssertionError(
                f"for m = {m}, n = {n} points you returned the biased estimate {got:.6f} (it keeps the i = j terms "
                f"and divides by m² and n²); the unbiased one is {want:.6f}: leave out i = j and divide by m(m-1), n(n-1)."
            )
        assert abs(got - want) <= 1e-9 * (1 + abs(want)), (
            f"mmd2_unbiased on samples of {m} and {n} points in {d}-D with h = {h:.3f} gave {got:.8f}; a double sum "
            f"over the pairs gives {want:.8f}. Check the kernel exp(-|a-b|²/(2h²)), the i ≠ j sums and the -2 k(x, y) term."
        )


def check_mmd_symmetric_and_unchanged_inputs(mmd2_unbiased):
    g = torch.Generator().manual_seed(check_seed(2))
    x = torch.randn(6, 2, generator=g, dtype=DTYPE)
    y = torch.randn(4, 2, generator=g, dtype=DTYPE) + 1.0
    x0, y0 = x.clone(), y.clone()
    a, b = _float(mmd2_unbiased(x, y, 0.8), "mmd2_unbiased"), _float(mmd2_unbiased(y, x, 0.8), "mmd2_unbiased")
    assert abs(a - b) < 1e-9, f"MMD² is symmetric in its two samples; got {a:.8f} and {b:.8f} with the samples swapped."
    assert torch.equal(x, x0) and torch.equal(y, y0), "mmd2_unbiased changed its input tensors; work on copies."


def check_mmd_rejects_bad_input(mmd2_unbiased):
    for x, y, why in ((torch.zeros(1, 2, dtype=DTYPE), torch.zeros(3, 2, dtype=DTYPE), "x has one point (no pair i ≠ j)"),
                      (torch.zeros(3, 2, dtype=DTYPE), torch.zeros(1, 2, dtype=DTYPE), "y has one point (no pair i ≠ j)"),
                      (torch.zeros(3, 2, dtype=DTYPE), torch.zeros(3, 3, dtype=DTYPE), "the dimensions differ (2 and 3)")):
        try:
            mmd2_unbiased(x, y, 1.0)
        except ValueError:
            continue
        except Exception as err:  # noqa: BLE001 - the learner's function may raise anything
            raise AssertionError(f"when {why}, mmd2_unbiased should raise ValueError; it raised {type(err).__name__}.") from None
        raise AssertionError(f"when {why}, mmd2_unbiased should raise ValueError; it returned a value.")


# ----------------------------------------------------------------------------- 10.2 counting
def _counted(recipe: dict, n_steps: int) -> int:
    """Run n_steps steps of the recipe through compare.train and read CountedEnergy's count."""
    from ebm_teach import compare
    from ebm_teach.energies import MLPEnergy
    from ebm_teach.rbm import BernoulliRBM

    box = ((-4.0, 4.0), (-4.0, 4.0))
    m = recipe["method"]
    start = {"CD": "data", "short-run": "noise", "replay": "buffer"}
    if m in start:
        method = compare.LangevinML(recipe["k"], 0.05, start[m], box)
    elif m == "NCE":
        method = compare.NCE(recipe["nu"])
    elif m == "sliced SM":
        method = compare.SlicedSM(recipe["n_projections"])
    elif m == "DSM":
        method = compare.DSM(0.3)
    elif m in ("RBM CD", "RBM PCD"):
        method = compare.GibbsML(recipe["k"], persistent=m == "RBM PCD")
    else:
        method = compare.PseudoLikelihood()
    g = torch.Generator().manual_seed(check_seed(5))
    if m.startswith("RBM") or m == "pseudo-likelihood":
        data = (torch.rand(64, 12, generator=g) < 0.4).float()
        energy = compare.RBMEnergy(BernoulliRBM(12, 3, generator=torch.Generator().manual_seed(check_seed(6))))
    else:
        data = torch.randn(64, 2, generator=g)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(check_seed(6))
            energy = MLPEnergy(2, 8, 1)
    return compare.train(method, energy, data, max_steps=n_steps, batch_size=recipe["batch_size"], generator=g)["evaluations"]


def _recipes():
    g = torch.Generator().manual_seed(check_seed(4))

    def pick(lo, hi):
        return int(torch.randint(lo, hi, (), generator=g))

    out = []
    for method in ("CD", "short-run", "replay", "NCE", "sliced SM", "DSM", "RBM CD", "RBM PCD", "pseudo-likelihood"):
        recipe = {"method": method, "batch_size": pick(4, 33)}
        if method in ("CD", "short-run", "replay", "RBM CD", "RBM PCD"):
            recipe["k"] = pick(1, 6)
        if method == "NCE":
            recipe["nu"] = (1.0, 2.0, 3.0, 4.0, 0.25 * pick(1, 8) + 0.1)[pick(0, 5)]
        if method == "sliced SM":
            recipe["n_projections"] = pick(1, 4)
        out.append((recipe, pick(1, 4)))
    return out


def check_counts(count_evaluations):
    for recipe, n_steps in _recipes():
        want = _counted(recipe, n_steps)
        try:
            got = count_evaluations(dict(recipe), n_steps)
        except NotImplementedError:
            raise
        except Exception as err:  # noqa: BLE001
            raise AssertionError(f"count_evaluations({recipe}, {n_steps}) raised {type(err).__name__}: {err}") from None
        assert isinstance(got, (int, float)) and got == want, (
            f"count_evaluations({recipe}, {n_steps}) returned {got!r}; the chapter's counter, running {n_steps} "
            f"real training step(s) of this recipe, counted {want}."
        )


def check_counts_reject_unknown_method(count_evaluations):
    try:
        count_evaluations({"method": "contrastive magic", "batch_size": 8}, 2)
    except ValueError:
        return
    except Exception as err:  # noqa: BLE001
        raise AssertionError(f"an unknown method should raise ValueError; got {type(err).__name__}.") from None
    raise AssertionError("an unknown method should raise ValueError; count_evaluations returned a value.")


# ----------------------------------------------------------------------------- 10.3 prediction
NAMES = ("CD-1", "NCE")
TOLERANCE = 0.15


def _run_prediction_experiment(n_seeds: int = 3, budget: int = 2**17, lr: float = 1e-2):
    """The light mode's mass {method: [per seed]} of CD-1 and NCE trained on the exercise's target.

    Two modes 10 standard deviations apart, weights 0.85/0.15, 2000 training points drawn from check_seed(11):
    about a second of training per method and seed on one CPU thread. Over the default seed and grading seeds
    1-40, CD-1's mean over three seeds lay in 0.47-0.56 and NCE's in 0.11-0.24, so the answers 0.5 and 0.15 pass
    with a margin of at least 0.06, while 0.15 for CD-1 or 0.5 for NCE fails by at least 0.17.
    """
    from ebm_teach import compare
    from ebm_teach.data import GaussianMixture

    law = GaussianMixture.isotropic(torch.tensor([[-2.5, 0.0], [2.5, 0.0]], dtype=DTYPE), 0.5, [0.85, 0.15])
    data_gen = torch.Generator().manual_seed(check_seed(11))
    train = law.sample(2000, generator=data_gen).float()
    test = law.sample(1000, generator=data_gen).float()
    target = compare.mixture_target("pair", law, ((-5.5, 5.5), (-3.0, 3.0)), train, test, n_grid=100)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny operations: one thread is several times faster
    try:
        return {name: [compare.fit_2d(name, target, check_seed(20) + s, budget, lr=lr, n_checkpoints=1,
                                      n_grid=100)["records"][-1]["masses"][1] for s in range(n_seeds)]
                for name in NAMES}
    finally:
        torch.set_num_threads(before)


_EXPERIMENT: dict = {}


def _experiment():
    """The experiment, run once per grading seed and shared by the two checks."""
    key = check_seed(11), check_seed(20)
    if key not in _EXPERIMENT:
        _EXPERIMENT.clear()
        _EXPERIMENT[key] = _run_prediction_experiment()
    return _EXPERIMENT[key]


def _prediction(predict_light_mass, name):
    answer = predict_light_mass()
    if not isinstance(answer, dict) or sorted(str(k) for k in answer) != sorted(NAMES):
        raise AssertionError(f'return a dict {{"CD-1": mass, "NCE": mass}}; got {answer!r}.')
    value = _float(answer[name], f'the prediction for "{name}"')
    if not 0 <= value <= 1:
        raise AssertionError(f'a mass lies between 0 and 1; your prediction for "{name}" is {value}.')
    return value


def _check_method(predict_light_mass, name, hint):
    value = _prediction(predict_light_mass, name)
    masses = _experiment()[name]
    mean = sum(masses) / len(masses)
    shown = ", ".join(f"{m:.2f}" for m in masses)
    assert abs(value - mean) <= TOLERANCE, (
        f"you predicted that {name} puts {value:.2f} of its mass on the light mode; trained on three seeds it put "
        f"{shown} (mean {mean:.2f}), more than {TOLERANCE} away. {hint}"
    )


def check_cd1_prediction(predict_light_mass):
    _check_method(predict_light_mass, "CD-1", "Ask what CD-1's negatives compare: each mode with itself, or the "
                  "two modes with each other? Chapter 10, section 1, shows what CD-k's mode masses end as.")


def check_nce_prediction(predict_light_mass):
    _check_method(predict_light_mass, "NCE", "Ask what NCE's noise covers, and so which regions its classifier "
                  "weighs against the same reference.")


EXERCISES = [
    Exercise(id="10.1", name="mmd2_unbiased", checks=[
        Check("matches a double sum over pairs on random samples (and is not the biased estimate)", check_mmd_values, 2),
        Check("is symmetric and leaves its inputs unchanged", check_mmd_symmetric_and_unchanged_inputs, 0.5),
        Check("rejects a sample of one point and mismatched dimensions", check_mmd_rejects_bad_input, 0.5),
    ]),
    Exercise(id="10.2", name="count_evaluations", checks=[
        Check("equals the chapter's counter on real training steps of random recipes", check_counts, 2.5),
        Check("rejects an unknown method", check_counts_reject_unknown_method, 0.5),
    ]),
    Exercise(id="10.3", name="predict_light_mass", checks=[
        Check("CD-1's light-mode mass agrees with an experiment run by the check", check_cd1_prediction, 1),
        Check("NCE's light-mode mass agrees with an experiment run by the check", check_nce_prediction, 1),
    ]),
]
