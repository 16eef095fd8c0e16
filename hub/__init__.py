"""Ready-made search spaces and their published architectures.

Each space family lives in its own file; every space is written only with
``supernet.nn`` primitives, so every algorithm applies to it.
"""

from hub.nasnet import DARTS, ENAS, NDS, PNAS, AmoebaNet, NASNet
from hub.searched import list_searched_models, load_searched_model

__all__ = ["DARTS", "ENAS", "NDS", "PNAS", "AmoebaNet", "NASNet", "list_searched_models", "load_searched_model"]
