"""``import supernet.nn as nn``: everything in ``torch.nn`` plus the search-space primitives.

The common layers (``Conv2d``, ``Linear``, ``BatchNorm2d``, ``LayerNorm``,
``MultiheadAttention``, ``Dropout``, ...) are *basic units*: they accept a ValueChoice
wherever they take a number and are plain torch modules when they get none.
``Module`` records constructor arguments so that spaces can be rebuilt when frozen.
"""

from __future__ import annotations

import torch.nn as _torch_nn
from torch.nn import *  # noqa: F403 - re-export torch.nn
from torch.nn import functional, init, parameter, utils  # noqa: F401

from supernet.mutator import Placeholder
from supernet.primitives.autoactivation import AutoActivation
from supernet.primitives.basic_unit import BasicUnit, basic_unit
from supernet.primitives.cell import Cell
from supernet.primitives.input_choice import ChosenInputs, InputChoice
from supernet.primitives.layer_choice import LayerChoice
from supernet.primitives.model_parameter import ModelParameterChoice
from supernet.primitives.module import Module
from supernet.primitives.nasbench import NasBench101Cell, NasBench201Cell
from supernet.primitives.repeat import Repeat
from supernet.primitives.value_choice import ValueChoice, ValueChoiceX

# torch.nn layers that take ValueChoice arguments. Containers (Sequential, ModuleList, ...)
# and Module stay torch's own, so subclassing them works as usual.
BASIC_UNITS = (
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "Linear", "Bilinear", "Embedding",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm", "GroupNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
    "MultiheadAttention",
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "Upsample", "PixelShuffle", "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "Flatten",
    "LeakyReLU", "ELU", "CELU", "Hardtanh", "Softmax", "LogSoftmax", "PReLU", "GELU", "Threshold",
)

for _name in BASIC_UNITS:
    globals()[_name] = basic_unit(getattr(_torch_nn, _name))
del _name

__all__ = [n for n in dir(_torch_nn) if not n.startswith("_")] + [  # noqa: PLE0605
    "AutoActivation", "BasicUnit", "Cell", "ChosenInputs", "InputChoice", "LayerChoice", "ModelParameterChoice",
    "Module", "NasBench101Cell", "NasBench201Cell", "Placeholder", "Repeat", "ValueChoice", "ValueChoiceX",
    "basic_unit", "functional", "init",
]
