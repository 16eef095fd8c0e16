"""One LightningModule per NAS algorithm, on a shared base (``base.OneShotAlgorithm``)."""

from algorithms.base import OneShotAlgorithm
from algorithms.darts import DartsModule
from algorithms.enas import EnasModule
from algorithms.proxyless import ProxylessModule
from algorithms.quiet import quiet_vendor_messages
from algorithms.spos import SposModule

quiet_vendor_messages()  # two messages a run cannot act on (algorithms/quiet.py), for the Python API too

ALGORITHMS = {"darts": DartsModule, "enas": EnasModule, "proxyless": ProxylessModule, "spos": SposModule}

__all__ = ["ALGORITHMS", "DartsModule", "EnasModule", "OneShotAlgorithm", "ProxylessModule", "SposModule"]
