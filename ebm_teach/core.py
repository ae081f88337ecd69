"""Device choice, seeding, progress bars and input validation: what every other module stands on.

Only notebooks choose a device, once, with :func:`get_device`. Package functions read the device and dtype
from their inputs (or from a model's parameters) and take an explicit ``generator`` for randomness.
"""
from __future__ import annotations

import os
import random
import sys
from contextlib import contextmanager
from typing import Iterable, Optional, Sequence

import numpy as np
import torch

__all__ = [
    "get_device",
    "seed_everything",
    "seed_shift",
    "make_generator",
    "progress",
    "single_thread_if_small",
    "check_tensor",
    "check_binary",
    "check_positive",
    "check_int",
    "check_probability",
    "check_finite",
    "DivergenceError",
]

DEVICE_ENV = "EBM_TEACH_DEVICE"
QUIET_ENV = "EBM_TEACH_QUIET"
#: Moves every seed given to :func:`seed_everything` and :func:`make_generator` by the same integer. Unset in
#: normal use; ``python -m ebm_teach.tools.notebooks spread`` sets it to rerun a chapter over other seeds.
SEED_SHIFT_ENV = "EBM_TEACH_SEED_SHIFT"


class DivergenceError(RuntimeError):
    """Raised by a training loop whose energies or loss became NaN/inf or exploded."""


# --------------------------------------------------------------------------------------------- device, seeds
def get_device(prefer: Optional[str] = None) -> torch.device:
    """The one place that picks a device: ``prefer``, else ``$EBM_TEACH_DEVICE``, else CUDA when present, else CPU.

    Set ``EBM_TEACH_DEVICE=cpu`` to force the CPU on a GPU machine (e.g. to reproduce the stored outputs).
    """
    choice = prefer if prefer is not None else os.environ.get(DEVICE_ENV, "").strip()
    if choice:
        try:
            device = torch.device(choice)
        except RuntimeError as err:
            raise ValueError(
                f"unknown device {choice!r} (from {'the argument' if prefer else '$' + DEVICE_ENV}); "
                "use 'cpu', 'cuda' or 'cuda:N'."
            ) from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device {choice!r} was asked for but this PyTorch sees no CUDA GPU; "
                "install a CUDA build of torch (see README) or use 'cpu'."
            )
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_shift() -> int:
    """The integer ``$EBM_TEACH_SEED_SHIFT`` adds to every seed (0 when unset): see ``tools/notebooks spread``."""
    raw = os.environ.get(SEED_SHIFT_ENV, "").strip()
    if not raw:
        return 0
    try:
        return check_int(int(raw), SEED_SHIFT_ENV, minimum=0)
    except ValueError as err:
        raise ValueError(f"${SEED_SHIFT_ENV} must be a non-negative integer; got {raw!r}.") from err


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device).

    For notebooks only: package functions never rely on global state; they take a ``generator``.
    ``$EBM_TEACH_SEED_SHIFT`` (unset in normal use) is added to ``seed``.
    """
    seed = check_int(seed, "seed", minimum=0) + seed_shift()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (generators must live on the tensors' device).

    Every seed the package turns into a generator passes through here, so ``$EBM_TEACH_SEED_SHIFT`` (unset in
    normal use) moves all of them at once.
    """
    seed = check_int(seed, "seed", minimum=0) + seed_shift()
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(seed)
    return gen


def _quiet() -> bool:
    if os.environ.get(QUIET_ENV, "").strip() not in ("", "0"):
        return True
    return "pytest" in sys.modules and "ipykernel" not in sys.modules


def progress(iterable: Iterable, desc: str = "", total: Optional[int] = None, leave: bool = False):
    """A tqdm progress bar in interactive use; the bare iterable under tests or when ``EBM_TEACH_QUIET=1``."""
    if _quiet():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=leave)


@contextmanager
def single_thread_if_small(work: int, threshold: int, device) -> Iterable[None]:
    """Run the block on one CPU thread when ``work`` (e.g. multiply-adds per operation) is below ``threshold``.

    On a CPU, torch splits even a tiny matrix product across its threads; when the work per operation is
    a few thousand multiply-adds, waking and joining the second thread costs more than the product (and
    far more when another process holds the other core). Restores the previous thread count afterwards;
    does nothing on a GPU, for large work, or when torch already uses one thread.
    """
    if torch.device(device).type != "cpu" or work >= threshold or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------- validation
def check_int(value, name: str, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    """``value`` as an int, checked to lie in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {value!r} of type {type(value).__name__}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}; got {value}.")
    return value


def check_positive(value, name: str, hint: str = "") -> float:
    """``value`` as a float, checked to be finite and > 0 (step sizes, temperatures, noise scales)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single number; got a tensor of shape {tuple(value.shape)}.")
        value = value.item()
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a positive number; got {value!r}.") from err
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value}.{(' ' + hint) if hint else ''}")
    return value


def check_probability(value, name: str, allow_zero: bool = True, allow_one: bool = True) -> float:
    """``value`` as a float in [0, 1] (ends included or not)."""
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a number in [0, 1]; got {value!r}.") from err
    low_ok = value > 0 or (allow_zero and value == 0)
    high_ok = value < 1 or (allow_one and value == 1)
    if not (np.isfinite(value) and low_ok and high_ok):
        lo = "[" if allow_zero else "("
        hi = "]" if allow_one else ")"
        raise ValueError(f"{name} must lie in {lo}0, 1{hi}; got {value}.")
    return value


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise if ``x`` holds NaN or inf, naming how many entries and where the first one is."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        n_bad = int(bad.sum())
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{name} contains {n_bad} NaN/inf value(s) (the first at index {first}); "
            "drop or impute those entries before passing the data in."
        )
    return x


def check_tensor(
    x,
    name: str,
    ndim: Optional[int] = None,
    shape: Optional[Sequence[Optional[int]]] = None,
    finite: bool = True,
    floating: bool = True,
    like: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Validate ``x`` and return it as a tensor.

    ndim: required number of dimensions; shape: required shape with ``None`` for free axes, e.g.
    ``(None, 2)`` for a batch of 2-D points; finite: reject NaN/inf; floating: convert integer/bool input to
    the default float dtype (or ``like.dtype``); like: a tensor whose device and dtype the result takes.
    NumPy arrays and nested lists are accepted and converted.
    """
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a tensor or array; got {type(x).__name__}.") from err
    if like is not None:
        x = x.to(device=like.device, dtype=like.dtype if floating else x.dtype)
    elif floating and not torch.is_floating_point(x):
        x = x.to(torch.get_default_dtype())
    if ndim is not None and x.dim() != ndim:
        want = f"shape {_fmt_shape(shape)}" if shape is not None else f"{ndim} dimension(s)"
        raise ValueError(f"{name} must have {want}; got shape {tuple(x.shape)}." + _reshape_hint(x, ndim))
    if shape is not None:
        if x.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            raise ValueError(
                f"{name} must have shape {_fmt_shape(shape)}; got {tuple(x.shape)}." + _reshape_hint(x, len(shape))
            )
    if finite and torch.is_floating_point(x):
        check_finite(x, name)
    return x


def check_binary(v: torch.Tensor, name: str, hint: str = "") -> torch.Tensor:
    """Raise unless every entry of ``v`` is exactly 0 or 1 (data for a Bernoulli model)."""
    if not bool(((v == 0) | (v == 1)).all()):
        vals = v[(v != 0) & (v != 1)]
        lo, hi = float(vals.min()), float(vals.max())
        raise ValueError(
            f"{name} must be binary (0/1); got {vals.numel()} value(s) in [{lo:.3g}, {hi:.3g}]. "
            + (hint or "Binarize first, e.g. (x > 0.5).float().")
        )
    return v


def _fmt_shape(shape) -> str:
    return "(" + ", ".join("batch" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _reshape_hint(x: torch.Tensor, ndim: int) -> str:
    if ndim == 2 and x.dim() == 1:
        return " For a single example use x[None, :]; for a batch of scalars use x[:, None]."
    if ndim == 2 and x.dim() > 2:
        return " Flatten each example first, e.g. x.reshape(len(x), -1)."
    return ""
