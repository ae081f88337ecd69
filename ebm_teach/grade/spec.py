"""What an exercise is, for the grader: an id, the function the learner writes, and its hidden checks.

A chapter's hidden checks live in ``ebm_teach/grade/checks/chNN_slug.py`` (the chapter's file stem
``NN_slug`` with ``ch`` in front) and define ``EXERCISES``, a list of :class:`Exercise`::

    from ebm_teach.grade.spec import Check, Exercise

    def check_standard_normal(log_partition_quadratic):
        value = float(log_partition_quadratic(0.5, 0.0))
        assert abs(value - 0.9189385) < 1e-5, f"log Z of x²/2 is ½ log(2π) ≈ 0.918939; got {value:.6f}."

    EXERCISES = [
        Exercise(id="1.1", name="log_partition_quadratic",
                 checks=[Check("the standard normal's log Z", check_standard_normal, 1)]),
    ]

Each check function receives the learner's function and raises ``AssertionError("what is wrong, for the
learner")`` when the answer is wrong; anything it returns is ignored. Helpers that build such messages are
in :mod:`ebm_teach.grade.asserts`.

Random inputs come from :func:`check_seed`: ``torch.Generator().manual_seed(check_seed(1))``. Without a
secret grading seed it returns its argument (the checks are reproducible and match the self-checks); an
instructor who grades with a secret seed (:func:`set_grading_seed`) changes every such input, so expected
numbers read off a message or the package do not help. A check therefore computes its expected answer from
its inputs (quadrature, enumeration, a closed form), never from a stored number. Call :func:`check_seed`
inside the check functions, not at import time: the grader sets the seed after importing the checks.

The grader runs the checks in its own process and the learner's function in a jailed child
(:mod:`~ebm_teach.grade.proxy`). What a check passes to the learner's function is copied there: keep it to
tensors, numbers, strings, lists, tuples, dicts, ``torch.Generator``, ``nn.Module`` instances of classes
defined at module level, and functions (module-level ones, or closures over such values). Changes the call
makes to them (in-place tensor updates, ``.grad``, a generator's state, items appended to a list) are copied
back, and first-order gradients flow back through the result.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, List

__all__ = ["Check", "Exercise", "STATUSES", "checks_module_name", "load_exercises", "CHAPTER_PATTERN",
           "check_seed", "set_grading_seed", "available_chapters", "resolve_chapter"]

_GRADING_SEED = None

#: The statuses an exercise can end with, in the grader's reports.
STATUSES = ("passed", "failed", "not_implemented", "error", "timeout")

#: A chapter is named by its file stem: two digits, an underscore, a lower-case slug (``01_gaussian_ebm``).
CHAPTER_PATTERN = re.compile(r"^[0-9]{2}_[a-z0-9_]+$")
_ID_PATTERN = re.compile(r"^[0-9]+\.[0-9]+$")


@dataclass(frozen=True)
class Check:
    """One hidden check: ``fn(student_function)`` raises ``AssertionError`` with a message when wrong.

    description: what the check verifies, shown to the learner (e.g. "matches quadrature for 4 (a, b)").
    fn: callable taking the learner's function. points: credit for passing it (> 0).
    """

    description: str
    fn: Callable[[Callable], object]
    points: float = 1

    def __post_init__(self):
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError(f"Check description must be a non-empty string; got {self.description!r}.")
        if not callable(self.fn):
            raise TypeError(
                f"Check {self.description!r}: fn must be a function taking the learner's function; "
                f"got {type(self.fn).__name__}."
            )
        if isinstance(self.points, bool) or not isinstance(self.points, (int, float)) or not self.points > 0:
            raise ValueError(f"Check {self.description!r}: points must be a number > 0; got {self.points!r}.")


@dataclass(frozen=True)
class Exercise:
    """An exercise of a chapter: ``id`` "N.k", the ``name`` of the function the learner writes, its checks."""

    id: str
    name: str
    checks: List[Check] = field(default_factory=list)

    def __post_init__(self):
        if not isinstance(self.id, str) or not _ID_PATTERN.match(self.id):
            raise ValueError(f"Exercise id must look like '1.2' (chapter.number); got {self.id!r}.")
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(
                f"Exercise {self.id}: name must be the Python name of the learner's function; got {self.name!r}."
            )
        checks = list(self.checks)
        if not checks or not all(isinstance(c, Check) for c in checks):
            raise ValueError(
                f"Exercise {self.id}: checks must be a non-empty list of Check(description, fn, points); "
                f"got {self.checks!r}."
            )
        object.__setattr__(self, "checks", checks)

    @property
    def max_points(self) -> float:
        """The sum of the checks' points."""
        return sum(c.points for c in self.checks)


def checks_module_name(chapter: str) -> str:
    """The module that holds ``chapter``'s hidden checks: ``01_gaussian_ebm`` → ``ebm_teach.grade.checks.ch01_gaussian_ebm``."""
    if not isinstance(chapter, str) or not CHAPTER_PATTERN.match(chapter):
        raise ValueError(
            f"a chapter is named by its file stem, two digits then a slug, e.g. '01_gaussian_ebm'; got {chapter!r}."
        )
    return f"{__package__}.checks.ch{chapter}"


def load_exercises(chapter: str) -> List[Exercise]:
    """Import ``chapter``'s checks module and return its ``EXERCISES``, validated (unique ids and names)."""
    name = checks_module_name(chapter)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name:
            raise
        raise LookupError(
            f"there are no hidden checks for chapter {chapter!r} (no module {name}). "
            f"Check the chapter marker line in the submission, or write ebm_teach/grade/checks/ch{chapter}.py."
        ) from err
    exercises = getattr(module, "EXERCISES", None)
    if not isinstance(exercises, (list, tuple)) or not exercises or not all(isinstance(e, Exercise) for e in exercises):
        raise TypeError(f"{name}.EXERCISES must be a non-empty list of Exercise objects.")
    for attr in ("id", "name"):
        values = [getattr(e, attr) for e in exercises]
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"{name}.EXERCISES repeats the {attr} {duplicates}; each exercise needs its own.")
    return list(exercises)


def available_chapters() -> List[str]:
    """The chapters that have hidden checks (``ebm_teach/grade/checks/chNN_slug.py``), sorted."""
    folder = Path(__file__).with_name("checks")
    return sorted(p.stem[2:] for p in folder.glob("ch[0-9][0-9]_*.py") if CHAPTER_PATTERN.match(p.stem[2:]))


def resolve_chapter(text: str) -> str:
    """The chapter named by ``text``: its number (``1``, ``01``) or its stem (``01_gaussian_ebm``)."""
    chapters = available_chapters()
    text = str(text).strip()
    if text in chapters:
        return text
    if text.isdigit():
        matches = [c for c in chapters if int(c[:2]) == int(text)]
        if len(matches) == 1:
            return matches[0]
    raise ValueError(f"no chapter {text!r} with hidden checks; give its number or name, one of {chapters}.")


def set_grading_seed(seed) -> None:
    """Set (an int >= 0) or clear (``None``) the secret grading seed that :func:`check_seed` derives from."""
    global _GRADING_SEED
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"the grading seed must be an integer >= 0 or None; got {seed!r}.")
    _GRADING_SEED = seed


def check_seed(k: int = 0) -> int:
    """The seed for a check's k-th random input: ``k`` itself, or a number mixed from ``k`` and the secret
    grading seed when one is set (:func:`set_grading_seed`)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be an integer >= 0; got {k!r}.")
    if _GRADING_SEED is None:
        return k
    import hashlib

    digest = hashlib.sha256(f"{_GRADING_SEED}:{k}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
