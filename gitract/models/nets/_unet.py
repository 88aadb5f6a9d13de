"""A plain 2D U-Net (Ronneberger et al. 2015) with batch norm, for multilabel segmentation.

Architecture
------------
``depth`` halvings of the map. Encoder level ``i`` (``0..depth``) is a double convolution
block (3x3 conv -> batch norm -> ReLU, twice; zero padding keeps the size) with
``base_channels * 2**i`` channels; a 2x2 max-pool of stride 2 separates the levels, the
last level is the bottleneck. Each decoder level doubles the size (a 2x2 transposed
convolution, or bilinear upsampling followed by a 1x1 convolution), concatenates the
encoder map of the same size (the skip connection) and applies a double convolution
block. A 1x1 convolution returns ``n_classes`` logits per pixel: one sigmoid per class,
because the GI-tract masks overlap.

Inputs must have a height and a width divisible by ``2**depth`` (pad with
:func:`gitract.preprocessing.pad_to_multiple` or resize).

=====================  ===============  =====  ==========  ==============================
config                 base_channels    depth  parameters  use
=====================  ===============  =====  ==========  ==============================
default (UNetConfig)   16               4      ~1.9 M      2 CPU cores, 96-256 px, minutes
small                  16               3      ~0.48 M     tests, tiny runs
GPU                    32               4      ~7.8 M      a GPU, 256-384 px, hours
=====================  ===============  =====  ==========  ==============================
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet", "check_net_sizes", "pad_input"]


def check_net_sizes(*, in_channels: int, n_classes: int, base_channels: int, depth: int,
                    up_mode: str = "transpose", dropout: float = 0.0) -> None:
    """Raise ValueError naming the first bad option shared by the segmentation nets."""
    for name, value in (("in_channels", in_channels), ("n_classes", n_classes),
                        ("base_channels", base_channels), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if up_mode not in ("transpose", "bilinear"):
        raise ValueError(f"up_mode must be 'transpose' or 'bilinear', got {up_mode!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


def pad_input(x: torch.Tensor, in_channels: int,
              multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Check x's shape (N, in_channels, H, W) and zero-pad H and W at the end to
    multiples of ``multiple``; returns the padded tensor and the original (H, W), so a
    net that takes any size crops its logits back with ``[..., :H, :W]``."""
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"x must have shape (N, {in_channels}, H, W), got {tuple(x.shape)}")
    rows, cols = int(x.shape[-2]), int(x.shape[-1])
    pad_r, pad_c = -rows % multiple, -cols % multiple
    if pad_r or pad_c:
        x = nn.functional.pad(x, (0, pad_c, 0, pad_r))
    return x, (rows, cols)


class _DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, *, batch_norm: bool) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, *, up_mode: str,
                 batch_norm: bool) -> None:
        super().__init__()
        if up_mode == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, out_channels, 1),
            )
        self.conv = _DoubleConv(2 * out_channels, out_channels, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """2D U-Net returning per-pixel logits (no sigmoid).

    Parameters
    ----------
    in_channels : int
        Input channels (3 for a 2.5D stack of the slice and two neighbours).
    n_classes : int
        Output channels: one logit per class (apply a sigmoid for multilabel masks).
    base_channels : int
        Channels of the first level; level ``i`` has ``base_channels * 2**i``.
    depth : int
        Number of 2x down-samplings (the input side must be divisible by ``2**depth``).
    up_mode : {"transpose", "bilinear"}
        Decoder up-sampling: 2x2 transposed convolution, or bilinear + 1x1 convolution.
    batch_norm : bool
        Batch norm after every 3x3 convolution.
    dropout : float
        Dropout probability at the bottleneck (0 disables it).

    Examples
    --------
    >>> net = UNet(3, 3, base_channels=4, depth=2)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(
        self,
        in_channels: int = 3,
        n_classes: int = 3,
        base_channels: int = 16,
        depth: int = 3,
        *,
        up_mode: str = "transpose",
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_net_sizes(in_channels=in_channels, n_classes=n_classes,
                        base_channels=base_channels, depth=depth, up_mode=up_mode,
                        dropout=dropout)
        self.in_channels, self.n_classes, self.depth = in_channels, n_classes, depth
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_in = in_channels
        for w in widths:
            self.down.append(_DoubleConv(c_in, w, batch_norm=batch_norm))
            c_in = w
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.ModuleList(
            _Up(widths[i + 1], widths[i], up_mode=up_mode, batch_norm=batch_norm)
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (``2**depth``)."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, n_classes, H, W) for x of shape (N, in_channels, H, W)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise ValueError(
                f"height and width must be multiples of 2**depth={self.multiple}, "
                f"got {tuple(x.shape[-2:])} (pad with gitract.preprocessing.pad_to_multiple)"
            )
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.depth:
                skips.append(x)
                x = self.pool(x)
        x = self.drop(x)
        for up, skip in zip(self.up, reversed(skips), strict=True):
            x = up(x, skip)
        return self.head(x)


def _n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())

