"""Helpers for writing hidden checks: each raises ``AssertionError`` with a message written for the learner.

A check compares the learner's answer with a value the check computes another way (a closed form,
quadrature, autograd, enumeration), so the messages say what was expected, what came back, and where.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .proxy import LearnerObject

__all__ = ["as_float64", "assert_shape", "assert_close", "assert_raises"]


def as_float64(value, what: str) -> torch.Tensor:
    """The learner's return value as a float64 tensor (numbers, lists, arrays and tensors are accepted).

    what: how to name the value in messages, e.g. "log_partition_quadratic(0.5, 0.0)".
    """
    if value is None:
        raise AssertionError(f"{what} returned None; did you forget the `return` statement?")
    if isinstance(value, LearnerObject):  # what the grader receives for a value that is not plain data
        raise AssertionError(f"{what} should return a number or a tensor; got {value.type_name} ({value.text:.120}).")
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            raise AssertionError(f"{what} returned a tensor on the meta device, which holds no numbers; "
                                 "compute the answer on the CPU (or the device of the inputs).")
        return value.detach().to(device="cpu", dtype=torch.float64)
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise AssertionError(
            f"{what} should return a number or a tensor; got {type(value).__name__} ({value!r:.80})."
        ) from err


def assert_shape(value: torch.Tensor, shape: Sequence[int], what: str) -> None:
    """Fail unless ``value.shape == shape``, saying which shape was expected."""
    if tuple(value.shape) != tuple(shape):
        raise AssertionError(f"{what} should have shape {tuple(shape)}; got shape {tuple(value.shape)}.")


def assert_close(actual, expected, what: str, rtol: float = 1e-5, atol: float = 1e-8) -> None:
    """Fail unless ``actual`` (the learner's value) matches ``expected`` within |a − e| ≤ atol + rtol·|e|.

    Both are compared as float64 tensors of the same shape; NaN/inf in ``actual`` fails with its own message.
    """
    actual = as_float64(actual, what)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert_shape(actual, expected.shape, what)
    if not bool(torch.isfinite(actual).all()):
        raise AssertionError(f"{what} contains NaN or inf: {_fmt(actual)}. Expected {_fmt(expected)}.")
    bad = (actual - expected).abs() > atol + rtol * expected.abs()
    if bool(bad.any()):
        if expected.dim() == 0:
            raise AssertionError(f"{what} should be {_fmt(expected)}; got {_fmt(actual)}.")
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise AssertionError(
            f"{what} is wrong at {bad.sum().item()} of {bad.numel()} entries; at index {index} it should be "
            f"{expected[index].item():.6g}, got {actual[index].item():.6g}."
        )


def assert_raises(exc_type: type, fn, *args, what: str, **kwargs) -> BaseException:
    """Fail unless ``fn(*args, **kwargs)`` raises ``exc_type``; return the exception.

    what: the situation, for the message, e.g. "log_partition_quadratic(a=0, b=1) (Z is infinite when a ≤ 0)".
    A ``NotImplementedError`` from the learner's stub is passed on, so that an untouched exercise is reported
    as not implemented rather than as a wrong answer.
    """
    try:
        result = fn(*args, **kwargs)
    except exc_type as err:
        return err
    except NotImplementedError:
        raise
    except Exception as err:
        raise AssertionError(
            f"{what} should raise {exc_type.__name__}; it raised {type(err).__name__}: {err}"
        ) from err
    raise AssertionError(f"{what} should raise {exc_type.__name__}; it returned {result!r:.80} instead.")


def _fmt(t: torch.Tensor) -> str:
    if t.dim() == 0:
        return f"{t.item():.6g}"
    values = ", ".join(f"{v:.6g}" for v in t.flatten()[:6].tolist())
    return f"[{values}{', …' if t.numel() > 6 else ''}] (shape {tuple(t.shape)})"
