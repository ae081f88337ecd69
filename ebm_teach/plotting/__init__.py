"""Every figure the notebooks show, one module per chapter (``common`` holds the ones every chapter uses).

Functions take data and an optional ``ax`` and return the axes (or the figure); nothing here calls
``plt.show()``. Everything is re-exported here, so ``from ebm_teach.plotting import image_grid`` works.
"""
from .common import *  # noqa: F401,F403
from .rbm import *  # noqa: F401,F403
from .langevin import *  # noqa: F401,F403
from .nce import *  # noqa: F401,F403
from .score import *  # noqa: F401,F403
from .jem import *  # noqa: F401,F403
from .dbm import *  # noqa: F401,F403
from .crf import *  # noqa: F401,F403
from .compare import *  # noqa: F401,F403
from .mnist import *  # noqa: F401,F403
from . import common, compare, crf, dbm, jem, langevin, mnist, nce, rbm, score

__all__ = (common.__all__ + rbm.__all__ + langevin.__all__ + nce.__all__ + score.__all__ + jem.__all__
           + dbm.__all__ + crf.__all__ + compare.__all__ + mnist.__all__)
