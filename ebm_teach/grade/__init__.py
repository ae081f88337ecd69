"""Auto-graded exercises: build the learner's files from the solutions, and grade submissions.

The grader keeps the hidden checks, their inputs, the comparisons and the points in its own process; each
submission runs in a jailed child that only answers calls to the learner's functions.

- :mod:`~ebm_teach.grade.spec`: ``Exercise`` and ``Check``, what a chapter's hidden checks declare; the
  secret grading seed (``check_seed``, ``set_grading_seed``).
- :mod:`~ebm_teach.grade.asserts`: helpers that write check messages for the learner.
- :mod:`~ebm_teach.grade.builder`: ``solutions/NN_slug.py`` → ``exercises/NN_slug.{py,ipynb}`` (and nbgrader sources).
- :mod:`~ebm_teach.grade.notebook`: reading an exercise file's cells and its chapter marker.
- :mod:`~ebm_teach.grade.checking`: running one exercise's checks on a function (a proxy, or the function itself).
- :mod:`~ebm_teach.grade.proxy`: calling the learner's function in the child: arguments there, plain data
  back (read by a loader that cannot run code), side effects and gradients too.
- :mod:`~ebm_teach.grade.jail`: the child's first steps: limits, its own user or no capabilities, Landlock.
- :mod:`~ebm_teach.grade.child`: the child: runs the cells, answers calls.
- :mod:`~ebm_teach.grade.sandbox`: the child's folder, environment and limits; killing all it started.
- :mod:`~ebm_teach.grade.runner`: grading a file or a course's folder (layouts, jobs, results as they come).
- :mod:`~ebm_teach.grade.report`: the printed summary, the JSON report, the CSV gradebook, feedback files.
- :mod:`~ebm_teach.grade.mutants`: do the checks catch a flipped sign or a dropped term?
- :mod:`~ebm_teach.grade.cli`: ``python -m ebm_teach.grade SUBMISSIONS``, ``… build``, ``… mutants``.
"""
from .checking import run_checks
from .spec import Check, Exercise

__all__ = ["Check", "Exercise", "run_checks"]
