"""Quiet runs: drop the messages a run cannot act on, from the CLI and the Python API alike.

Installed when ``algorithms`` is imported (idempotent). Only two messages go, each matched narrowly:
torch's FutureWarning that ``LeafSpec`` is deprecated, which Lightning's own CombinedLoader raises on
every fit (the filter names that module, so the same text from anywhere else still shows), and
Lightning's tips advertising its cloud logger and model registry. Every other warning and line stays.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["quiet_vendor_messages"]


def _no_vendor_tip(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("💡 Tip:")  # Lightning's ads for litlogger and litmodels


def quiet_vendor_messages() -> None:
    """Install the two filters (see the module docstring); calling it again adds nothing."""
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning, module=r"pytorch_lightning\.utilities\._pytree")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_no_vendor_tip)
