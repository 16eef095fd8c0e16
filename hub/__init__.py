"""Ready-made search spaces and their published architectures.

Each space family lives in its own file; every space is written only with
``supernet.nn`` primitives, so every algorithm applies to it.
"""

from hub.autoformer import AutoformerSpace
from hub.mobilenetv3 import MobileNetV3Space
from hub.nasbench101 import NasBench101
from hub.nasbench201 import NasBench201
from hub.nasnet import DARTS, ENAS, NDS, PNAS, AmoebaNet, NASNet
from hub.nasnet_published import ENASMicroNetwork, SlimCellNetwork
from hub.proxylessnas import ProxylessNAS
from hub.searched import list_searched_models, load_searched_model
from hub.shufflenet import ShuffleNetSpace

__all__ = ["DARTS", "ENAS", "NDS", "PNAS", "AmoebaNet", "AutoformerSpace", "ENASMicroNetwork", "MobileNetV3Space",
           "NASNet", "NasBench101", "NasBench201", "ProxylessNAS", "ShuffleNetSpace", "SlimCellNetwork",
           "list_searched_models", "load_searched_model"]
