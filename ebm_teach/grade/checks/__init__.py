"""Hidden checks, one module per chapter: ``chNN_slug.py`` for the exercise file ``NN_slug``.

Each module defines ``EXERCISES``, a list of :class:`ebm_teach.grade.spec.Exercise`. The grader imports
the module named after the submission's chapter marker (``# ebm-teach exercises: NN_slug``) and runs each
exercise's checks in its own process, on a proxy of the learner's function that lives in a jailed child
(:mod:`ebm_teach.grade.proxy`). A check compares the learner's answer with a value it computes
independently (closed form, quadrature, autograd, enumeration, Monte Carlo with a stated tolerance), never
only with the solution's output, and it must fail a flipped sign or a dropped term, not only a wrong shape
or distribution (``python -m ebm_teach.grade mutants --chapter NN`` lists the ones that get through).

What a check passes to the learner's function is copied to the child: tensors, numbers, strings, lists,
tuples, dicts, ``torch.Generator``, ``nn.Module`` instances of module-level classes, and functions
(module-level, or closures and lambdas over such values). In-place changes, ``.grad``, a generator's state
and items added to a list or dict come back; first-order gradients flow back through the result. Random
inputs come from :func:`ebm_teach.grade.spec.check_seed`, called inside the check functions. See
:mod:`ebm_teach.grade.asserts` for helpers.
"""
