"""The one-shot engine: turn a search space into a weight-sharing supernet.

``supernet, state = convert(space, "path_sampling" | "differentiable")`` replaces every
choice by its mixed op (see ``registry.py`` for the table, ``choices.py``, ``cell.py``
and ``entangled.py`` for the ops). ``state`` holds the architecture parameters and the
sampled architecture; ``export_arch(supernet, state)`` reads the chosen architecture.
"""

from supernet.oneshot.binary_gate import BinaryGateCell, BinaryGateInputChoice, BinaryGateLayerChoice, BinaryGateRepeat
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
from supernet.oneshot.nasbench101 import (
    BinaryGateNasBench101Cell,
    DifferentiableNasBench101Cell,
    PathSamplingNasBench101Cell,
)
from supernet.oneshot.registry import FAMILIES, KEEP, UnsupportedChoice, convert, export_arch, register_mixed_op
from supernet.oneshot.sampler import RandomMutator, Sampler
from supernet.oneshot.state import ArchState
from supernet.primitives.autoactivation import AutoActivation
from supernet.primitives.cell import Cell
from supernet.primitives.input_choice import InputChoice
from supernet.primitives.layer_choice import LayerChoice
from supernet.primitives.nasbench import NasBench101Cell, NasBench201Cell
from supernet.primitives.repeat import Repeat

__all__ = ["FAMILIES", "KEEP", "ArchState", "RandomMutator", "Sampler", "UnsupportedChoice", "convert", "export_arch",
           "register_mixed_op"]

# primitive: (path sampling, differentiable, binary gate)
for _primitive, _ops in {
    LayerChoice: (PathSamplingLayerChoice, DifferentiableLayerChoice, BinaryGateLayerChoice),
    InputChoice: (PathSamplingInputChoice, DifferentiableInputChoice, BinaryGateInputChoice),
    Repeat: (PathSamplingRepeat, DifferentiableRepeat, BinaryGateRepeat),
    Cell: (PathSamplingCell, DifferentiableCell, BinaryGateCell),
    NasBench201Cell: (KEEP, KEEP, KEEP),
    AutoActivation: (KEEP, KEEP, KEEP),
    **{unit: (mixed, mixed, mixed) for unit, mixed in ENTANGLED_UNITS.items()},
}.items():
    for _family, _op in zip(("path_sampling", "differentiable", "binary_gate"), _ops):
        register_mixed_op(_primitive, _family, _op)
register_mixed_op(NasBench101Cell, "path_sampling", PathSamplingNasBench101Cell)
register_mixed_op(NasBench101Cell, "differentiable", DifferentiableNasBench101Cell)
register_mixed_op(NasBench101Cell, "binary_gate", BinaryGateNasBench101Cell)
