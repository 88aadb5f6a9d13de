"""Torch device choice: CUDA when present, then Apple MPS, then the CPU."""

from __future__ import annotations


def select_device(device: str = "auto"):
    """Return a ``torch.device``; ``"auto"`` picks cuda, then mps, then cpu.

    An explicit name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) overrides the choice and
    fails clearly when that device is not available.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available")
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError(f"device={device!r} requested but MPS is not available")
    return dev
