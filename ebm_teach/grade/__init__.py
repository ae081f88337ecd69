"""Auto-graded exercises: build the learner's files from the solutions, and grade submissions.

- :mod:`~ebm_teach.grade.spec`: ``Exercise`` and ``Check``, what a chapter's hidden checks declare.
- :mod:`~ebm_teach.grade.asserts`: helpers that write check messages for the learner.
- :mod:`~ebm_teach.grade.builder`: ``solutions/NN_slug.py`` → ``exercises/NN_slug.{py,ipynb}``.
- :mod:`~ebm_teach.grade.notebook`: reading an exercise file's cells and its chapter marker.
- :mod:`~ebm_teach.grade.checking`: running one exercise's checks on a function.
- :mod:`~ebm_teach.grade.child`: the separate process that runs a submission (one at a time, time-limited).
- :mod:`~ebm_teach.grade.runner`: starts that process, enforces the time limit, caps the output.
- :mod:`~ebm_teach.grade.report`: the printed summary, the JSON report and the CSV gradebook.
- :mod:`~ebm_teach.grade.cli`: ``python -m ebm_teach.grade SUBMISSION`` and ``python -m ebm_teach.grade build``.
"""
from .checking import run_checks
from .spec import Check, Exercise

__all__ = ["Check", "Exercise", "run_checks"]
