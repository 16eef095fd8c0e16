"""The one-shot engine: turn a search space into a weight-sharing supernet.

``supernet, state = convert(space, "path_sampling" | "differentiable")`` replaces every
choice by its mixed op (see ``registry.py`` for the table, ``choices.py``, ``cell.py``
and ``entangled.py`` for the ops). ``state`` holds the architecture parameters and the
sampled architecture; ``export_arch(supernet, state)`` reads the chosen architecture.
"""

from supernet.oneshot.cell import DifferentiableCell, PathSamplingCell
from supernet.oneshot.choices import (
    DifferentiableInputChoice,
    DifferentiableLayerChoice,
    DifferentiableRepeat,
    PathSamplingInputChoice,
    PathSamplingLayerChoice,
    PathSamplingRepeat,
)
from supernet.oneshot.entangled import ENTANGLED_UNITS
from supernet.oneshot.registry import FAMILIES, KEEP, UnsupportedChoice, convert, export_arch, register_mixed_op
from supernet.oneshot.state import ArchState
from supernet.primitives.autoactivation import AutoActivation
from supernet.primitives.cell import Cell
from supernet.primitives.input_choice import InputChoice
from supernet.primitives.layer_choice import LayerChoice
from supernet.primitives.nasbench import NasBench201Cell
from supernet.primitives.repeat import Repeat

__all__ = ["FAMILIES", "KEEP", "ArchState", "UnsupportedChoice", "convert", "export_arch", "register_mixed_op"]

for _primitive, _path_sampling, _differentiable in [
    (LayerChoice, PathSamplingLayerChoice, DifferentiableLayerChoice),
    (InputChoice, PathSamplingInputChoice, DifferentiableInputChoice),
    (Repeat, PathSamplingRepeat, DifferentiableRepeat),
    (Cell, PathSamplingCell, DifferentiableCell),
    (NasBench201Cell, KEEP, KEEP),
    (AutoActivation, KEEP, KEEP),
    *((unit, mixed, mixed) for unit, mixed in ENTANGLED_UNITS.items()),
]:
    register_mixed_op(_primitive, "path_sampling", _path_sampling)
    register_mixed_op(_primitive, "differentiable", _differentiable)
