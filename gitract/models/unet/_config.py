"""The segmentation settings (:class:`UNetConfig`, torch-free in
:mod:`gitract.models._settings`) and the larger :data:`GPU_CONFIG`."""

from __future__ import annotations

from gitract.models._settings import ARCHITECTURES, UNetConfig

__all__ = ["ARCHITECTURES", "GPU_CONFIG", "UNetConfig"]

#: A larger configuration for a GPU (about 7.8 M parameters, mixed precision).
GPU_CONFIG = UNetConfig(image_size=320, base_channels=32, depth=4, batch_size=16,
                        max_epochs=100, lr=1e-3, device="auto", amp=True)
