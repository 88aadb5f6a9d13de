"""Torch device choice: CUDA when present, then Apple MPS, then the CPU."""

from __future__ import annotations

__all__ = ["device_problem", "select_device"]


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used on this machine, or None when it can.

    ``"auto"`` and ``"cpu"`` always can (torch is not imported for them); ``"cuda"``,
    ``"cuda:N"`` and ``"mps"`` need the device to be present (``N`` below the number of
    CUDA devices).

    Examples
    --------
    >>> device_problem("cpu") is None
    True
    """
    if device in ("auto", "cpu"):
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return f"not a device name: {device!r} (auto, cpu, cuda, cuda:N or mps)"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return f"{device!r} requested but CUDA is not available on this machine"
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            return (f"{device!r} requested but this machine has {count} CUDA device(s) "
                    f"(cuda:0 to cuda:{count - 1})")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return f"{device!r} requested but MPS is not available on this machine"
    return None


def select_device(device: str = "auto"):
    """Return a ``torch.device``; ``"auto"`` picks cuda, then mps, then cpu.

    An explicit name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) overrides the choice and
    fails clearly when that device is not available (:func:`device_problem`).
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    problem = device_problem(device)
    if problem is not None:
        raise ValueError(problem)
    return torch.device(device)
