"""The MNIST RBM experiment (experiments/mnist_rbm.py) at its small `test` preset: 784 x 8 RBMs, where log Z is
exact (2^8 hidden states), so every estimate the script writes can be checked against the truth, and the files
it writes carry what the book shows (command, device, date, the published numbers)."""
import csv
import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("mnist_rbm_experiment", ROOT / "experiments" / "mnist_rbm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mnist_rbm")
    script = _script()
    assert script.main(["--preset", "test", "--out", str(out), "--threads", "1"]) == 0
    with open(out / "mnist_rbm.csv", newline="") as fh:
        rows = {r["method"]: {k: (v if k == "method" or v in ("True", "False") or " " in v else float(v))
                              for k, v in r.items()} for r in csv.DictReader(fh)}
    return script, out, rows


def test_every_method_gets_a_row_with_the_published_value(run):
    script, _, rows = run
    assert list(rows) == ["CD-1", "CD-3", "CD-25", "PCD"]
    assert script.PUBLISHED == {"CD-1": -125.53, "CD-3": -105.50, "CD-25": -86.34}
    for name, row in rows.items():
        expected = script.PUBLISHED.get(name, float("nan"))
        assert row["published_test_ll"] == expected or (math.isnan(expected) and math.isnan(row["published_test_ll"]))
        assert row["n_hidden"] == 8 and row["k"] == script.METHODS[name][0]


def test_ais_estimates_agree_with_the_enumerated_log_z(run):
    """AIS (300 temperatures, 2 runs of 20 chains) within 5 of its standard errors (+0.02) of the exact log Z;
    reverse AIS from exact samples likewise; and the log-likelihoods are -mean F minus those log Z's."""
    _, _, rows = run
    for row in rows.values():
        assert abs(row["log_z"] - row["exact_log_z"]) < 5 * row["log_z_se"] + 0.02
        assert abs(row["reverse_log_z"] - row["exact_log_z"]) < 5 * row["reverse_log_z_se"] + 0.02
        assert math.isclose(row["exact_test_ll"] - row["test_ll_ais"], row["log_z"] - row["exact_log_z"], abs_tol=1e-3)
        assert math.isclose(row["exact_test_ll"] - row["test_ll_reverse"], row["reverse_log_z"] - row["exact_log_z"],
                            abs_tol=1e-3)
        runs = [float(x) for x in row["log_z_runs"].split()]
        assert len(runs) == 2 and min(runs) <= row["log_z"] + 1e-3 and max(runs) >= row["log_z"] - 1e-3


def test_raise_is_close_to_the_exact_log_likelihood_of_the_same_images(run):
    """RAISE (300 temperatures, one chain per image) on 40 test images against their exact mean
    log-likelihood: within 0.5 nats (measured: a few hundredths to 0.3) and not above it by more than 5 of
    the paired standard errors; the full-test-set figure is the AIS one minus the gap measured on them."""
    _, _, rows = run
    for row in rows.values():
        assert row["raise_images"] == 40
        assert abs(row["raise_ll_subset"] - row["exact_ll_subset"]) < 0.5
        assert row["raise_ll_subset"] < row["exact_ll_subset"] + 5 * row["raise_gap_se"] + 0.05
        assert math.isclose(row["test_ll_conservative"], row["test_ll_ais"] - row["raise_gap"], abs_tol=1e-3)
        assert math.isclose(row["raise_gap"], row["ais_ll_subset"] - row["raise_ll_subset"], abs_tol=1e-3)


def test_the_report_names_the_command_device_and_date_and_the_figure_exists(run):
    _, out, _ = run
    text = (out / "mnist_rbm.md").read_text()
    for needle in ("- command: `python experiments/mnist_rbm.py --preset test", "- device: CPU", "- date: ",
                   "Salakhutdinov & Murray (2008), Table 2", "| CD-25 | -86.34 |", "exact log Z"):
        assert needle in text
    assert (out / "mnist_rbm.png").stat().st_size > 10_000


def test_presets_and_overrides():
    script = _script()
    paper = script.parse_args(["--preset", "paper"])
    assert (paper.n_hidden, paper.ais_betas, paper.ais_chains, paper.raise_images) == (500, 14_500, 100, 10_000)
    cpu = script.parse_args(["--preset", "cpu", "--epochs", "7"])
    assert cpu.epochs == 7 and cpu.n_hidden == 500 and cpu.ais_betas == 14_500
    with pytest.raises(SystemExit):
        script.parse_args(["--methods", "CD-1,CD-2"])
