"""U-Net++ (Zhou et al. 2018): a U-Net whose skip connections are nested dense paths.

Why it is written here: segmentation_models_pytorch was the first choice (issue 12), but
with this project's ``torch==2.13.0`` CPU build the only torchvision available is a CUDA
build, and ``import segmentation_models_pytorch`` fails through timm (``RuntimeError:
operator torchvision::nms does not exist``); timm needs torchvision. So the net is written
from the paper, small, with the same width/depth parameters as
:class:`gitract.models.nets.UNet` and the same building blocks.

Architecture
------------
Node ``X[i][j]`` sits at level ``i`` (``0..depth``, size ``1/2**i``) and column ``j``.
Column 0 is the U-Net's encoder (double convolution blocks separated by 2x2 max-pools,
``base_channels * 2**i`` channels). Every other node is a double convolution block over
the concatenation of all earlier nodes of its level, ``X[i][0..j-1]`` (dense skips), and
the up-sampled ``X[i+1][j-1]`` (2x2 transposed convolution, or bilinear + 1x1). The head, a
1x1 convolution named ``head`` as in the U-Net (the track starts its bias at the class
priors), reads ``X[0][depth]``: one logit per class and pixel. Deep supervision of the
paper (heads on ``X[0][1..depth]``) is left out: one output keeps the track's loss, prior
initialisation and prediction unchanged.

Any height and width are accepted: the input is zero-padded to a multiple of ``2**depth``
inside :meth:`UNetPlusPlus.forward` and the logits are cropped back.

=================  =============  =====  ==========
config             base_channels  depth  parameters
=================  =============  =====  ==========
default            16             4      ~2.26 M
small              16             3      ~0.55 M
=================  =============  =====  ==========
"""

from __future__ import annotations

import torch
from torch import nn

from gitract.models.nets._unet import _DoubleConv, check_net_sizes, pad_input

__all__ = ["UNetPlusPlus"]


def _up(in_channels: int, out_channels: int, up_mode: str) -> nn.Module:
    if up_mode == "transpose":
        return nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(in_channels, out_channels, 1))


class UNetPlusPlus(nn.Module):
    """2D U-Net++ returning per-pixel logits (no sigmoid).

    Parameters
    ----------
    in_channels : int
        Input channels (3 for a 2.5D stack of the slice and two neighbours).
    n_classes : int
        One logit per class (a sigmoid each: the masks are multilabel).
    base_channels : int
        Channels of level 0; level ``i`` has ``base_channels * 2**i``.
    depth : int
        Number of 2x down-samplings.
    up_mode : {"transpose", "bilinear"}
    batch_norm : bool
        Batch norm after every 3x3 convolution.
    dropout : float
        Dropout probability at the bottleneck (0 disables it).

    Examples
    --------
    >>> net = UNetPlusPlus(3, 3, base_channels=4, depth=2)
    >>> net(torch.zeros(2, 3, 30, 33)).shape
    torch.Size([2, 3, 30, 33])
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
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        # nodes[i][j] is X[i][j]; ups[i][j - 1] brings X[i+1][j-1] up to level i.
        self.nodes = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i, w in enumerate(widths):
            level = nn.ModuleList([_DoubleConv(in_channels if i == 0 else widths[i - 1], w,
                                               batch_norm=batch_norm)])
            ups = nn.ModuleList()
            for j in range(1, depth - i + 1):
                ups.append(_up(widths[i + 1], w, up_mode))
                level.append(_DoubleConv((j + 1) * w, w, batch_norm=batch_norm))
            self.nodes.append(level)
            self.ups.append(ups)
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    @property
    def multiple(self) -> int:
        """The size the input is padded to a multiple of (``2**depth``)."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, n_classes, H, W) for x of shape (N, in_channels, H, W)."""
        x, (rows, cols) = pad_input(x, self.in_channels, self.multiple)
        grid: list[list[torch.Tensor]] = [[] for _ in range(self.depth + 1)]
        for i in range(self.depth + 1):
            # Column 0 (the encoder), then the nodes that the new level completes: each
            # diagonal X[i-k][k] needs only X[i-k+1][k-1], computed just before it.
            x = self.nodes[i][0](x if i == 0 else self.pool(x))
            if i == self.depth:
                x = self.drop(x)
            grid[i].append(x)
            for k in range(1, i + 1):
                level = i - k
                below = self.ups[level][k - 1](grid[level + 1][k - 1])
                grid[level].append(self.nodes[level][k](torch.cat([*grid[level], below], 1)))
        return self.head(grid[0][self.depth])[..., :rows, :cols]
