"""Hidden checks, one module per chapter: ``chNN_slug.py`` for the exercise file ``NN_slug``.

Each module defines ``EXERCISES``, a list of :class:`ebm_teach.grade.spec.Exercise`. The grader imports
the module named after the submission's chapter marker (``# ebm-teach exercises: NN_slug``) and runs each
exercise's checks on the learner's function in a separate process. A check compares the learner's answer
with a value it computes independently (closed form, quadrature, autograd, enumeration, Monte Carlo with a
stated tolerance), never only with the solution's output. See :mod:`ebm_teach.grade.asserts` for helpers.
"""
