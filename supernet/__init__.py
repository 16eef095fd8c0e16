"""supernet: describe a NAS search space in PyTorch, train one weight-sharing supernet, export a net.

>>> import supernet.nn as nn
>>> import supernet
>>> space = supernet.search_space(model)        # every choice, by label
>>> arch = supernet.sample(model, seed=0)       # {label: value}
>>> net = supernet.freeze(model, arch)          # a plain torch network
"""

from supernet.context import fixed_arch
from supernet.freeze import freeze
from supernet.mutator import Mutator, Placeholder
from supernet.oneshot.sampler import RandomMutator, Sampler
from supernet.primitives.base import Choice
from supernet.space import SearchSpace, sample, search_space

__all__ = ["Choice", "Mutator", "Placeholder", "RandomMutator", "Sampler", "SearchSpace", "fixed_arch", "freeze",
           "sample", "search_space"]
__version__ = "0.1.0"
