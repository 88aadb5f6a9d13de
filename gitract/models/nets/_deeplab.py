"""DeepLabV3+ (Chen et al. 2018): atrous spatial pyramid pooling and a light decoder.

Why it is written here: segmentation_models_pytorch was the first choice (issue 12), but
with this project's ``torch==2.13.0`` CPU build the only torchvision available is a CUDA
build, and ``import segmentation_models_pytorch`` fails through timm (``RuntimeError:
operator torchvision::nms does not exist``); timm needs torchvision. So the net is written
from the paper, small, with the same width/depth parameters as
:class:`gitract.models.nets.UNet` and its encoder, instead of an ImageNet backbone (the
slices are single-channel MRI; nothing is downloaded).

Architecture
------------
- **Encoder**: the U-Net's (double convolution blocks, ``base_channels * 2**i`` channels,
  ``depth`` 2x2 max-pools), so the output stride is ``2**depth`` (16 at the default depth 4,
  the paper's setting).
- **ASPP** on the last map: a 1x1 convolution, one 3x3 convolution per atrous rate, and
  image pooling (global average, 1x1 convolution, broadcast back); concatenated and
  projected by a 1x1 convolution to ``4 * base_channels`` channels. The paper's rates
  6/12/18 belong to a 33x33 map (513 px crops); :func:`aspp_rates` scales them to the map
  this input size gives (1/3/4 for 128 px at depth 4), because rates wider than the map
  only read zero padding.
- **Decoder**: the ASPP output up-sampled (bilinear) to the low-level map at 1/4 of the
  input (level ``min(2, depth - 1)`` of the encoder), concatenated with that map projected
  by a 1x1 convolution to ``base_channels`` channels (the paper's 48 against 256), two 3x3
  convolutions, the 1x1 ``head`` (one logit per class; the track starts its bias at the
  class priors) and a bilinear up-sampling to the input size.

Batch norm follows every convolution except the image-pooling branch: its map is 1x1, so
batch statistics of a batch of one slice would be undefined (the branch has a bias
instead). Any height and width are accepted (zero-padded to a multiple of ``2**depth``
inside :meth:`DeepLabV3Plus.forward`, the logits cropped back).

=================  =============  =====  ==========
config             base_channels  depth  parameters
=================  =============  =====  ==========
default            16             4      ~1.76 M
small              16             3      ~0.64 M
=================  =============  =====  ==========
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from gitract.models.nets._unet import _DoubleConv, check_net_sizes, pad_input

__all__ = ["DeepLabV3Plus", "aspp_rates"]

#: Atrous rates of the paper (output stride 16) and the side of the map they were set for.
PAPER_RATES = (6, 12, 18)
PAPER_MAP_SIDE = 33


def aspp_rates(image_side: int, depth: int) -> tuple[int, ...]:
    """The paper's atrous rates scaled to the ``image_side / 2**depth`` map of this input.

    Parameters
    ----------
    image_side : int
        Side of the (square) network input in pixels.
    depth : int
        Number of 2x down-samplings before the ASPP.

    Returns
    -------
    tuple of int
        Distinct rates >= 1, increasing.

    Examples
    --------
    >>> aspp_rates(128, 4)
    (1, 3, 4)
    >>> aspp_rates(528, 4)  # a 33x33 map
    (6, 12, 18)
    """
    side = image_side / 2**depth
    return tuple(sorted({max(1, round(r * side / PAPER_MAP_SIDE)) for r in PAPER_RATES}))


def _conv_bn(in_channels: int, out_channels: int, kernel: int, *, dilation: int = 1,
             batch_norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel,
                                         padding=dilation * (kernel // 2), dilation=dilation,
                                         bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _ASPP(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, rates: Sequence[int], *,
                 batch_norm: bool, dropout: float) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [_conv_bn(in_channels, out_channels, 1, batch_norm=batch_norm)]
            + [_conv_bn(in_channels, out_channels, 3, dilation=r, batch_norm=batch_norm)
               for r in rates])
        self.pooling = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                     nn.Conv2d(in_channels, out_channels, 1),
                                     nn.ReLU(inplace=True))
        self.project = nn.Sequential(
            _conv_bn((len(rates) + 2) * out_channels, out_channels, 1, batch_norm=batch_norm),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pooling(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([*(b(x) for b in self.branches), pooled], 1))


class DeepLabV3Plus(nn.Module):
    """2D DeepLabV3+ returning per-pixel logits (no sigmoid) at the input size.

    Parameters
    ----------
    in_channels : int
        Input channels (3 for a 2.5D stack of the slice and two neighbours).
    n_classes : int
        One logit per class (a sigmoid each: the masks are multilabel).
    base_channels : int
        Channels of the first encoder level (level ``i``: ``base_channels * 2**i``); the
        ASPP and decoder have ``4 * base_channels``, the low-level projection
        ``base_channels``.
    depth : int
        Number of 2x down-samplings of the encoder (output stride ``2**depth``).
    atrous_rates : sequence of int, optional
        Rates of the ASPP's 3x3 branches; default ``aspp_rates(128, depth)``.
    batch_norm : bool
        Batch norm after the convolutions (not in the image-pooling branch).
    dropout : float
        Dropout after the ASPP projection (0 disables it).

    Examples
    --------
    >>> net = DeepLabV3Plus(3, 3, base_channels=4, depth=3)
    >>> net(torch.zeros(2, 3, 30, 33)).shape
    torch.Size([2, 3, 30, 33])
    """

    def __init__(
        self,
        in_channels: int = 3,
        n_classes: int = 3,
        base_channels: int = 16,
        depth: int = 4,
        *,
        atrous_rates: Sequence[int] | None = None,
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_net_sizes(in_channels=in_channels, n_classes=n_classes,
                        base_channels=base_channels, depth=depth, dropout=dropout)
        rates = aspp_rates(128, depth) if atrous_rates is None else tuple(atrous_rates)
        if not rates or any(isinstance(r, bool) or not isinstance(r, int) or r < 1
                            for r in rates):
            raise ValueError(f"atrous_rates must be positive ints, got {atrous_rates!r}")
        self.in_channels, self.n_classes, self.depth = in_channels, n_classes, depth
        self.atrous_rates = rates
        self.low_level = min(2, depth - 1)
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_in = in_channels
        for w in widths:
            self.down.append(_DoubleConv(c_in, w, batch_norm=batch_norm))
            c_in = w
        self.pool = nn.MaxPool2d(2)
        width = 4 * base_channels
        self.aspp = _ASPP(widths[-1], width, rates, batch_norm=batch_norm, dropout=dropout)
        self.reduce = _conv_bn(widths[self.low_level], base_channels, 1, batch_norm=batch_norm)
        self.decode = nn.Sequential(
            _conv_bn(width + base_channels, width, 3, batch_norm=batch_norm),
            _conv_bn(width, width, 3, batch_norm=batch_norm))
        self.head = nn.Conv2d(width, n_classes, 1)

    @property
    def multiple(self) -> int:
        """The size the input is padded to a multiple of (``2**depth``)."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, n_classes, H, W) for x of shape (N, in_channels, H, W)."""
        x, (rows, cols) = pad_input(x, self.in_channels, self.multiple)
        size = x.shape[-2:]
        low = None
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            if i == self.low_level:
                low = self.reduce(x)
        x = self.aspp(x)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        x = self.head(self.decode(torch.cat([x, low], 1)))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x[..., :rows, :cols]
