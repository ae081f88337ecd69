"""The numbers a chapter expects: printed figures that hold on any CPU, and claims that hold over seeds.

A chapter prints two kinds of figures, and the tests (nbval) compare them differently:

* an **exact** figure (a closed form, an enumeration, quadrature, a float64 identity) is the same on every
  machine to many digits. :func:`exact` formats it and refuses to print it on a rounding edge, where another
  CPU's last bit would flip the printed digit. nbval compares it as text.
* a figure from **training or Monte Carlo** is bit-exact only on one CPU and one BLAS code path: another
  machine changes the last bit, and training amplifies it into the second printed digit. :func:`expect`
  prints it beside the value the chapter expects and the tolerance, ``-19.27 (expected -19.3 ± 0.3)``, and
  raises when the value falls outside. The tolerance is a few times the value's spread over seeds (measured
  with ``python -m ebm_teach.tools.notebooks spread``), tight enough that a wrong implementation fails.
  nbval compares the text with the measured number masked out (``tests/nbval_sanitize.cfg``), so the check
  that matters is the tolerance, and it holds on any machine.

A sentence that compares or concludes ("PCD beats CD-1 on every seed") is backed by :func:`claim`, which
prints it with a tick and raises if a later change makes it false.

The expectations hold at a chapter's reference settings (``SCALE = 1``); the settings cell calls
``expectations(SCALE == 1)`` so that a scaled-up run on a GPU prints its numbers without judging them.

Under ``python -m ebm_teach.tools.notebooks spread`` (``$EBM_TEACH_EXPECT_RECORD`` names a file) every call
appends what it measured to that file as a JSON line and never raises: that is how tolerances are set.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Optional, Sequence, Union

import numpy as np
import torch

__all__ = ["expect", "exact", "claim", "expectations", "ExpectationError", "RECORD_ENV"]

#: Environment variable naming a JSON-lines file to record every expectation in (used by the spread tool).
RECORD_ENV = "EBM_TEACH_EXPECT_RECORD"

_ACTIVE = True

Number = Union[float, int, torch.Tensor, np.ndarray, Sequence[float]]


class ExpectationError(AssertionError):
    """A figure left the range its chapter expects, a claim stopped holding, or an exact figure sits on a
    rounding edge."""


def expectations(active: bool = True) -> bool:
    """Switch checking on (the chapter's reference settings) or off (a scaled-up run); returns ``active``.

    When off, :func:`expect` prints the measured value alone and :func:`claim` reports without raising.
    """
    global _ACTIVE
    _ACTIVE = bool(active)
    return _ACTIVE


def _values(value: Number, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim > 1:
        raise ValueError(f"{name} must be a number or a 1-D sequence of numbers; got shape {arr.shape}.")
    return arr


def _decimals(tol: float) -> int:
    """Decimals that show a value one digit finer than its tolerance: tol 0.3 -> 2, tol 0.05 -> 3, tol 4 -> 1."""
    return max(0, 1 - math.floor(math.log10(tol)))


def _caller() -> tuple:
    """(file:line, source line) of the notebook or script line that called into this module."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    code = frame.f_code.co_filename
    line = frame.f_lineno
    source = ""
    try:
        import linecache

        source = linecache.getline(code, line).strip()
    except Exception:  # pragma: no cover - a missing source line only shortens the record
        pass
    return f"{os.path.basename(code)}:{line}", source


def _record(kind: str, **fields) -> bool:
    """Append one record to $EBM_TEACH_EXPECT_RECORD when set; returns True when recording (never raise)."""
    path = os.environ.get(RECORD_ENV, "").strip()
    if not path:
        return False
    where, source = _caller()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": kind, "where": where, "source": source, **fields}) + "\n")
    return True


def expect(value: Number, expected: Number, tol: float, fmt: Optional[str] = None) -> str:
    """Format a figure from training or Monte Carlo, and check that it lies within ``tol`` of ``expected``.

    value: a number, a 0-d tensor, or a 1-D sequence/tensor (each entry is checked).
    expected: a number, or one per entry of ``value``. tol: the allowed absolute deviation, > 0; set it to a
    few times the figure's spread over seeds (``python -m ebm_teach.tools.notebooks spread``).
    fmt: format spec of the measured value (default: one digit finer than ``tol``).
    Returns ``"-19.27 (expected -19.3 ± 0.3)"`` (a list in brackets for several entries); raises
    :class:`ExpectationError` naming the figure when it is outside, unless checking is off
    (:func:`expectations`) or being recorded.
    """
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol <= 0:
        raise ValueError(f"tol must be a finite number > 0; got {tol!r}.")
    got, want = _values(value, "value"), _values(expected, "expected")
    if want.ndim == 1 and (got.ndim == 0 or len(want) != len(got)):
        raise ValueError(
            f"expected has {len(want)} entries but value has shape {got.shape}; give one expected number, or "
            "one per entry of value."
        )
    spec = fmt if fmt is not None else f".{_decimals(tol)}f"
    shown = format(float(got), spec) if got.ndim == 0 else "[" + ", ".join(format(float(v), spec) for v in got) + "]"
    if _record("expect", value=got.tolist(), expected=want.tolist(), tol=float(tol)):
        return shown
    if not _ACTIVE:
        return shown
    want_shown = format(float(want), "g") if want.ndim == 0 else "[" + ", ".join(format(float(w), "g") for w in want) + "]"
    each = " each" if got.ndim == 1 else ""
    text = f"{shown} (expected {want_shown} ± {tol:g}{each})"
    bad = ~(np.abs(got - want) <= tol)  # NaN counts as outside
    if bool(np.any(bad)):
        where, source = _caller()
        raise ExpectationError(
            f"{where}: `{source}` gave {shown}, outside the range this chapter expects ({want_shown} ± {tol:g}{each}). "
            "If you changed the code or the settings this can be right: rerun the spread tool "
            "(python -m ebm_teach.tools.notebooks spread NOTEBOOK.py) and update the expectation with the reason. "
            "If you did not, the figure no longer holds: look for the change that moved it."
        )
    return text


def _text(x: float, fmt: str) -> str:
    """``format(x, fmt)`` without the sign of a negative zero ("-0.000" is the same figure as "0.000")."""
    text = format(x, fmt)
    if text.startswith("-") and not any(c in "123456789" for c in text.split("e")[0]):
        return text[1:]
    return text


def exact(value: Number, fmt: str, rel: float = 1e-9) -> str:
    """Format an exact figure (closed form, enumeration, quadrature) and refuse a rounding edge.

    value: a number or 0-d tensor. fmt: a format spec such as ``".6f"`` or ``".4g"``. rel: the relative
    error the computation may carry on another machine (1e-9 suits float64 sums of a few thousand terms; use
    1e-5 for float32). Raises :class:`ExpectationError` when ``value`` scaled by ``1 ± rel`` prints
    differently: print one digit fewer (or more) so that every CPU shows the same text.
    """
    x = float(_values(value, "value"))
    shown = _text(x, fmt)
    if _record("exact", value=x, fmt=fmt, rel=float(rel)):
        return shown
    if not math.isfinite(x):
        raise ExpectationError(f"an exact figure is {x}: an exact computation gave NaN/inf.")
    delta = abs(x) * rel + 1e-300
    if _text(x - delta, fmt) != shown or _text(x + delta, fmt) != shown:
        where, source = _caller()
        raise ExpectationError(
            f"{where}: `{source}` prints {x!r} as {shown!r} on a rounding edge: within a relative {rel:g} it prints "
            f"{format(x - delta, fmt)!r} or {format(x + delta, fmt)!r}, so another CPU may show other digits. "
            "Print one digit fewer or more."
        )
    return shown


def claim(holds: bool, statement: str) -> str:
    """A sentence the chapter concludes from its numbers, checked: returns ``"✓ " + statement``.

    holds: whether the numbers support it (e.g. ``all(pcd > cd1 for pcd, cd1 in zip(...))``).
    Raises :class:`ExpectationError` when it does not hold (unless checking is off or being recorded,
    when it returns ``"✗ (does not hold here) " + statement``).
    """
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError("statement must be the sentence the numbers support, as a non-empty string.")
    ok = bool(holds)
    recording = _record("claim", holds=ok, statement=statement)
    if ok:
        return "✓ " + statement
    if recording or not _ACTIVE:
        return "✗ (does not hold here) " + statement
    where, _ = _caller()
    raise ExpectationError(
        f"{where}: the chapter says '{statement}', but the numbers computed above no longer support it. "
        "Find the change that broke it, or rewrite the sentence to what the numbers show."
    )
