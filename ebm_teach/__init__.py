"""ebm_teach: the code of the ebm-teach textbook on energy-based models.

One module per idea (see DEVELOPING.md); import what a chapter uses, e.g. ``from ebm_teach.rbm import
BernoulliRBM``. The most used helpers are re-exported here.
"""
from .core import get_device, make_generator, seed_everything

__version__ = "0.1.0"
__all__ = ["get_device", "make_generator", "seed_everything", "__version__"]
