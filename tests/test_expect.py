"""ebm_teach.expect: figures checked within a tolerance, exact figures off rounding edges, claims; the nbval
sanitizer that masks measured numbers; the seed shift and the spread tool that set tolerances."""
import configparser
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ebm_teach import expect as E
from ebm_teach.core import make_generator, seed_everything, seed_shift

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _active(monkeypatch):
    monkeypatch.delenv(E.RECORD_ENV, raising=False)
    monkeypatch.delenv("EBM_TEACH_SEED_SHIFT", raising=False)
    E.expectations(True)
    yield
    E.expectations(True)


def test_expect_inside_the_tolerance_prints_value_expected_and_tolerance():
    assert E.expect(-19.27, -19.3, 0.3) == "-19.27 (expected -19.3 ± 0.3)"
    assert E.expect(torch.tensor(0.0512), 0.05, 0.004) == "0.0512 (expected 0.05 ± 0.004)"
    assert E.expect(12.0, 10, 4) == "12.0 (expected 10 ± 4)"
    assert E.expect(0.5, 0.4, 0.2, fmt=".0%") == "50% (expected 0.4 ± 0.2)"


def test_expect_outside_the_tolerance_raises_naming_the_line():
    with pytest.raises(E.ExpectationError, match=r"test_expect.py:\d+: .*gave -18.90, outside .*-19.3 ± 0.3"):
        E.expect(-18.9, -19.3, 0.3)
    with pytest.raises(E.ExpectationError, match="outside"):
        E.expect(float("nan"), 0.0, 1.0)


def test_expect_checks_every_entry_of_a_sequence():
    text = E.expect([0.11, 0.14], 0.125, 0.05)
    assert text == "[0.110, 0.140] (expected 0.125 ± 0.05 each)"
    assert E.expect(np.array([1.0, 2.0]), [1.1, 2.1], 0.2).endswith("(expected [1.1, 2.1] ± 0.2 each)")
    with pytest.raises(E.ExpectationError):
        E.expect([0.11, 0.30], 0.125, 0.05)


def test_expect_rejects_bad_tolerances_and_shapes():
    for tol in (0, -1, float("inf"), True):
        with pytest.raises(ValueError, match="tol must be a finite number > 0"):
            E.expect(1.0, 1.0, tol)
    with pytest.raises(ValueError, match="expected has 3 entries"):
        E.expect([1.0, 2.0], [1.0, 2.0, 3.0], 0.1)
    with pytest.raises(ValueError, match="1-D"):
        E.expect(np.zeros((2, 2)), 0.0, 0.1)


def test_exact_refuses_a_rounding_edge():
    assert E.exact(1.6841352, ".6f") == "1.684135"
    with pytest.raises(E.ExpectationError, match="rounding edge"):
        E.exact(62.5, ".0f")  # 62 or 63 depending on the last bit
    with pytest.raises(E.ExpectationError, match="rounding edge"):
        E.exact(0.1234500001, ".4f", rel=1e-6)  # 0.1234 or 0.1235
    assert E.exact(0.12351, ".4f", rel=1e-6) == "0.1235"
    with pytest.raises(E.ExpectationError, match="NaN"):
        E.exact(float("nan"), ".3f")


def test_exact_prints_zero_and_a_tiny_negative_alike():
    assert E.exact(0.0, ".3f") == "0.000"
    assert E.exact(-1e-12, ".3f", rel=1e-9) == "0.000"
    assert E.exact(-0.5, ".3f") == "-0.500"


def test_claim_ticks_a_true_statement_and_raises_on_a_false_one():
    assert E.claim(True, "PCD is above CD-1 on every seed") == "✓ PCD is above CD-1 on every seed"
    with pytest.raises(E.ExpectationError, match="no longer support"):
        E.claim(3 < 2, "three is less than two")
    with pytest.raises(ValueError):
        E.claim(True, "  ")


def test_checking_off_prints_values_without_judging():
    E.expectations(False)
    assert E.expect(5.0, 1.0, 0.5) == "5.00"
    assert E.claim(False, "x").startswith("✗")


def test_recording_writes_json_lines_and_never_raises(tmp_path, monkeypatch):
    path = tmp_path / "rec.jsonl"
    monkeypatch.setenv(E.RECORD_ENV, str(path))
    assert E.expect(5.0, 1.0, 0.5) == "5.00"
    E.claim(False, "a false claim")
    E.exact(62.5, ".0f")
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["kind"] for r in recs] == ["expect", "claim", "exact"]
    assert recs[0]["value"] == 5.0 and recs[0]["expected"] == 1.0 and recs[0]["tol"] == 0.5
    assert recs[0]["where"].startswith("test_expect.py:") and "E.expect(5.0" in recs[0]["source"]
    assert recs[1]["holds"] is False


def _sanitize(text):
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "tests" / "nbval_sanitize.cfg")
    for section in cfg.sections():
        text = re.sub(cfg[section]["regex"], cfg[section]["replace"], text)
    return text


def test_sanitizer_masks_measured_values_and_keeps_the_rest():
    a = "test LL: -19.27 (expected -19.3 ± 0.3) nats\nmasses [0.110, 0.140] (expected 0.125 ± 0.05 each)\n"
    b = "test LL: -19.41 (expected -19.3 ± 0.3) nats\nmasses [0.100, 0.150] (expected 0.125 ± 0.05 each)\n"
    assert _sanitize(a) == _sanitize(b)
    c = "test LL: -19.41 (expected -19.4 ± 0.3) nats\nmasses [0.100, 0.150] (expected 0.125 ± 0.05 each)\n"
    assert _sanitize(a) != _sanitize(c), "the expected value and tolerance are still compared"
    assert _sanitize("log Z = 1.684135\n") == "log Z = 1.684135\n", "exact figures are compared as text"


def test_seed_shift_moves_every_seed(monkeypatch):
    monkeypatch.setenv("EBM_TEACH_SEED_SHIFT", "2")
    assert seed_shift() == 2
    shifted = torch.rand(3, generator=make_generator(3))
    seed_everything(1)
    shifted_global = torch.rand(3)
    monkeypatch.delenv("EBM_TEACH_SEED_SHIFT")
    assert torch.equal(shifted, torch.rand(3, generator=make_generator(5)))
    seed_everything(3)
    assert torch.equal(shifted_global, torch.rand(3))
    monkeypatch.setenv("EBM_TEACH_SEED_SHIFT", "minus one")
    with pytest.raises(ValueError, match="EBM_TEACH_SEED_SHIFT must be a non-negative integer"):
        seed_shift()


def test_spread_tool_reports_mean_and_spread_over_seed_shifts(tmp_path):
    from ebm_teach.tools.notebooks import spread

    script = tmp_path / "chapter.py"
    script.write_text(
        "import torch\n"
        "from ebm_teach import make_generator\n"
        "from ebm_teach.expect import claim, exact, expect\n"
        "x = torch.randn(400, generator=make_generator(0), dtype=torch.float64)\n"
        "print(expect(x.mean(), 0.0, 0.2))\n"
        "print(exact(2 ** 0.5, '.6f'))\n"
        "print(claim(float(x.var()) > 0.5, 'the variance is above 0.5'))\n"
    )
    sites = spread(script, shifts=[0, 1, 2, 3])
    by_kind = {s["kind"]: s for s in sites}
    means = [float(torch.randn(400, generator=torch.Generator().manual_seed(k), dtype=torch.float64).mean())
             for k in range(4)]
    assert np.allclose(by_kind["expect"]["mean"], np.mean(means))
    assert np.allclose(by_kind["expect"]["sd"], np.std(means, ddof=1))
    assert by_kind["expect"]["held"] == 4
    assert by_kind["exact"]["held"] == 4
    assert by_kind["claim"]["held"] == 4
    from ebm_teach.tools.notebooks import _report

    one = spread(script, shifts=[5])  # one shift: no spread to measure, but the report still prints
    assert "sd 0" in _report(one, 1) and {s["kind"]: s for s in one}["expect"]["sd"].shape == (1,)


def test_spread_tool_reports_a_failing_script(tmp_path):
    from ebm_teach.tools.notebooks import spread

    script = tmp_path / "broken.py"
    script.write_text("raise SystemExit('boom')\n")
    with pytest.raises(RuntimeError, match="broken.py failed with seed shift 0"):
        spread(script, shifts=[0])
