"""``python -m ebm_teach.grade``: see :mod:`ebm_teach.grade.cli`."""
from .cli import main

raise SystemExit(main())
