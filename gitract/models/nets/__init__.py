"""Torch ``nn.Module``s only: no training loops, no I/O.

Submodules are imported on first use so that importing this package stays cheap.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "SmallBlockCNN": "gitract.models.nets._block_cnn",
    "to_dense": "gitract.models.nets._block_cnn",
    "UNet": "gitract.models.nets._unet",
    "UNetPlusPlus": "gitract.models.nets._unetpp",
    "DeepLabV3Plus": "gitract.models.nets._deeplab",
    "aspp_rates": "gitract.models.nets._deeplab",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
