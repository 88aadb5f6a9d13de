"""Small CNN that classifies a square block by its centre pixel, and its dense twin.

Architecture (``SmallBlockCNN``)
--------------------------------
Each entry of ``channels`` is one stage: a 3x3 *valid* (unpadded) convolution, optional
batch norm, ReLU. Between stages a max-pool of stride 2 halves the map; its kernel is 2
when the map side is even and 3 when it is odd, so that the pooling windows tile the map
exactly and no row or column of the block is dropped. After the last stage a global
average pool over the whole final map (``final_size`` x ``final_size``) feeds a small
dense head (Linear -> ReLU -> Dropout -> Linear) that returns ``n_classes`` logits.
With ``centre_features=True`` the head also gets the mean of the final map's centre
(its middle pixel, or middle 2x2 when the side is even): the global average alone tells
little about *where* in the block a pattern is, so it blurs organ borders by up to half
a block.
With ``n_context > 0`` the head also gets a vector of per-block context values (late
fusion; :func:`gitract.features.context_maps`: where the block lies in the body and the
means of the block-sized cells around it), which no receptive field of raw pixels holds.
The head's input is ``[global mean, centre mean (centre_features), context]``.

With the default three stages:

- 33x33: conv 31 -> pool(3,2) 15 -> conv 13 -> pool(3,2) 6 -> conv 4 -> avg 4x4
- 63x63: conv 61 -> pool(3,2) 30 -> conv 28 -> pool(2,2) 14 -> conv 12 -> avg 12x12

The receptive field of the logits is exactly the block: every pixel of the block
reaches the average pool and no pixel outside it does.

Dense training (``SmallBlockCNN.forward_dense``)
------------------------------------------------
``forward_dense`` runs the *same modules* (same parameters, batch norm in train or eval
mode, dropout) in the "a trous" form described below, on an image padded by
``block_size // 2``: it returns the logits of the block centred at every pixel and is
differentiable, so one forward/backward pass over a slice (or a large crop of it) trains
on every block centred in it. The trained weights then serve ``to_dense`` unchanged.
Context values come as maps (N, n_context, H, W) aligned with the output grid (the
unpadded centres) and join the pooled features as extra channels before the head.

Dense inference (``to_dense``)
------------------------------
Pooling *before* the dense head matters: a flatten -> dense head would cost about
1.6 M multiply-adds per pixel in a dense pass (see ``shared/FACTS.md``), whereas the
pooled head costs ``hidden * (channels[-1] + n_classes)``. The dense twin uses the
"a trous" trick: every stride-2 pool becomes a stride-1 pool, and every later
convolution and pool is dilated by the accumulated stride; the average-pool head
becomes a dilated box filter and the dense layers become 1x1 convolutions. Applied to
an image padded by ``block_size // 2`` on each side, it returns the logits of the block
centred at every pixel in one pass. Batch norm (eval mode) is folded into the
convolutions; dropout is the identity at inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["DenseBlockCNN", "SmallBlockCNN", "plan_block_cnn", "to_dense"]

_KERNEL = 3


def plan_block_cnn(block_size: int, n_stages: int) -> list[tuple[str, int, int]]:
    """Layer plan ``[(kind, kernel, size_after), ...]`` for a block of ``block_size``.

    ``kind`` is ``"conv"`` (3x3 valid, stride 1) or ``"pool"`` (max, stride 2); the last
    entry's ``size_after`` is the side of the final feature map that is averaged.

    Raises
    ------
    ValueError
        If ``block_size`` is not an odd int, or too small for ``n_stages`` stages.

    Examples
    --------
    >>> plan_block_cnn(33, 3)[-1]
    ('conv', 3, 4)
    >>> [k for kind, k, _ in plan_block_cnn(63, 3) if kind == "pool"]
    [3, 2]
    """
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 3 or block_size % 2 == 0:
        raise ValueError(f"block_size must be an odd int >= 3, got {block_size!r}")
    if not isinstance(n_stages, int) or n_stages < 1:
        raise ValueError(f"channels must name at least one stage, got {n_stages!r} stages")
    plan, size = [], block_size
    for stage in range(n_stages):
        size -= _KERNEL - 1
        if size < 1:
            break
        plan.append(("conv", _KERNEL, size))
        if stage < n_stages - 1:
            pool = 2 if size % 2 == 0 else 3
            if size < pool:
                size = 0
                break
            size = (size - pool) // 2 + 1
            plan.append(("pool", pool, size))
    if size < 1:
        raise ValueError(
            f"block_size={block_size} is too small for {n_stages} convolution stages"
        )
    return plan


class SmallBlockCNN(nn.Module):
    """Classify a (N, 1, block_size, block_size) batch of blocks by their centre pixel.

    Parameters
    ----------
    block_size : int
        Odd side of the square block; the receptive field of the logits.
    n_classes : int, default=4
        Number of logits.
    channels : sequence of int, default=(16, 32, 64)
        Output channels of each convolution stage.
    hidden : int, default=64
        Width of the hidden dense layer of the head.
    dropout : float, default=0.3
        Dropout before the last dense layer (training only).
    batch_norm : bool, default=True
        Batch norm after each convolution (an affine map in eval mode, so the dense
        twin stays exact).
    centre_features : bool, default=False
        Feed the head the final map's centre mean besides its global mean (twice the
        head's input width).
    n_context : int, default=0
        Length of the context vector given to ``forward`` (maps to ``forward_dense``)
        and appended to the head's input; 0: none (the net takes no context).

    Examples
    --------
    >>> net = SmallBlockCNN(33, channels=(4, 8, 8), hidden=8).eval()
    >>> tuple(net(torch.zeros(2, 1, 33, 33)).shape)
    (2, 4)
    >>> net = SmallBlockCNN(33, channels=(4, 8, 8), hidden=8, n_context=3).eval()
    >>> tuple(net(torch.zeros(2, 1, 33, 33), torch.zeros(2, 3)).shape)
    (2, 4)
    """

    #: Class default: a net unpickled from before the parameter existed has no context.
    n_context: int = 0

    def __init__(
        self,
        block_size: int,
        n_classes: int = 4,
        channels: Sequence[int] = (16, 32, 64),
        *,
        hidden: int = 64,
        dropout: float = 0.3,
        batch_norm: bool = True,
        centre_features: bool = False,
        n_context: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(n_context, bool) or not isinstance(n_context, int) or n_context < 0:
            raise ValueError(f"n_context must be an int >= 0, got {n_context!r}")
        channels = tuple(int(c) for c in channels)
        self.plan = plan_block_cnn(block_size, len(channels))
        self.block_size = block_size
        self.n_classes = int(n_classes)
        self.final_size = self.plan[-1][2]
        self.centre_features = bool(centre_features)
        self.n_context = n_context
        layers: list[nn.Module] = []
        c_in, stage = 1, 0
        for kind, kernel, _ in self.plan:
            if kind == "conv":
                c_out = channels[stage]
                layers.append(nn.Conv2d(c_in, c_out, kernel, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(c_out))
                layers.append(nn.ReLU(inplace=True))
                c_in, stage = c_out, stage + 1
            else:
                layers.append(nn.MaxPool2d(kernel, stride=2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(c_in * (2 if self.centre_features else 1) + n_context, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, self.n_classes),
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, n_classes) of blocks ``x`` (N, 1, block_size, block_size), with
        their ``context`` (N, n_context) when ``n_context > 0``."""
        if x.shape[-2:] != (self.block_size, self.block_size):
            raise ValueError(
                f"blocks must be {self.block_size}x{self.block_size}, got {tuple(x.shape)}"
            )
        feats = self.features(x)
        pooled = feats.mean(dim=(-2, -1))
        if self.centre_features:
            size, at = _centre_window(self.final_size)
            centre = feats[..., at : at + size, at : at + size].mean(dim=(-2, -1))
            pooled = torch.cat([pooled, centre], dim=1)
        return self.head(_join_context(self.n_context, pooled, context))

    def forward_dense(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, n_classes, H, W) of the block centred at every pixel, trainable.

        Parameters
        ----------
        x : tensor of shape (N, 1, H + block_size - 1, W + block_size - 1)
            The image padded by ``block_size // 2`` on each side.
        context : tensor of shape (N, n_context, H, W), optional
            Needed when ``n_context > 0``: the context values of the block centred at
            each (unpadded) pixel.

        Returns
        -------
        tensor of shape (N, n_classes, H, W)
            In eval mode equal (rounding aside) to ``forward`` of each block cut out of
            ``x``; in train mode batch norm takes its statistics over the whole dense
            maps (every block's positions at once) and updates its running statistics.
        """
        if x.shape[-1] < self.block_size or x.shape[-2] < self.block_size:
            raise ValueError(
                f"padded input must be at least {self.block_size}x{self.block_size}, "
                f"got {tuple(x.shape)}"
            )
        dilation = 1
        for mod in self.features:
            if isinstance(mod, nn.Conv2d):
                x = nn.functional.conv2d(x, mod.weight, mod.bias, dilation=dilation)
            elif isinstance(mod, nn.MaxPool2d):
                # torch's pooling keeps the argmax for the backward pass (cheap), unlike
                # the doubling of _DilatedPool (whose max backward splits ties).
                x = nn.functional.max_pool2d(x, mod.kernel_size, stride=1, dilation=dilation)
                dilation *= mod.stride if isinstance(mod.stride, int) else mod.stride[0]
            else:  # batch norm (per channel, any map size) and ReLU work as they are
                x = mod(x)
        x = _join_context(self.n_context, _head_pool(self, dilation, trainable=True)(x), context)
        for mod in self.head:  # dense layers as 1x1 convolutions; ReLU, dropout per element
            if isinstance(mod, nn.Linear):
                x = nn.functional.conv2d(x, mod.weight[:, :, None, None], mod.bias)
            else:
                x = mod(x)
        return x

    def to_dense(self) -> DenseBlockCNN:
        """The fully convolutional twin of this net (see :func:`to_dense`)."""
        return to_dense(self)


def _join_context(n_context: int, pooled: torch.Tensor,
                  context: torch.Tensor | None) -> torch.Tensor:
    """The head's input: ``pooled`` (N, C[, H, W]) and ``context`` (N, n_context[, H, W])
    concatenated along the channels; checks that a context comes exactly when expected."""
    if n_context == 0:
        if context is not None:
            raise ValueError("context given to a net built with n_context=0")
        return pooled
    want = (pooled.shape[0], n_context, *pooled.shape[2:])
    if context is None or tuple(context.shape) != want:
        got = None if context is None else tuple(context.shape)
        raise ValueError(f"context must have shape {want} (N, n_context"
                         f"{', H, W' if pooled.ndim == 4 else ''}), got {got}")
    return torch.cat([pooled, context.to(device=pooled.device, dtype=pooled.dtype)], dim=1)


def _window_reduce(x: torch.Tensor, size: int, step: int, dim: int, op) -> torch.Tensor:
    """``op``-reduce ``x`` over ``size`` taps spaced ``step`` apart along ``dim`` (valid).

    Uses doubling (O(log size) full-map operations) instead of ``size - 1`` operations:
    a dilated window is a sum/max of two half windows shifted by ``half * step``.
    """
    length = x.shape[dim]
    out_len = length - step * (size - 1)
    acc, acc_size = None, 0
    power, power_size = x, 1
    remaining = size
    while remaining:
        if remaining & 1:
            if acc is None:
                acc, acc_size = power, power_size
            else:
                n = min(acc.shape[dim], power.shape[dim] - acc_size * step)
                acc = op(acc.narrow(dim, 0, n), power.narrow(dim, acc_size * step, n))
                acc_size += power_size
        remaining >>= 1
        if remaining:
            n = power.shape[dim] - power_size * step
            power = op(power.narrow(dim, 0, n), power.narrow(dim, power_size * step, n))
            power_size *= 2
    return acc.narrow(dim, 0, out_len)


class _DilatedPool(nn.Module):
    """Stride-1 max or mean over a ``size`` x ``size`` window dilated by ``dilation``.

    Separable and computed by doubling; max is exact, the mean differs from a direct
    average only by float32 rounding of the summation order.
    """

    def __init__(self, size: int, dilation: int, mode: str) -> None:
        super().__init__()
        self.size, self.dilation, self.mode = size, dilation, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op = torch.maximum if self.mode == "max" else torch.add
        x = _window_reduce(x, self.size, self.dilation, -2, op)
        x = _window_reduce(x, self.size, self.dilation, -1, op)
        if self.mode == "mean":
            x = x * (1.0 / (self.size * self.size))
        return x

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, size={self.size}, dilation={self.dilation}"


def _centre_window(final_size: int) -> tuple[int, int]:
    """Side and offset of the centre window of the final map (2x2 when its side is even)."""
    size = 2 if final_size % 2 == 0 else 1
    return size, (final_size - size) // 2


class _MeanAndCentre(nn.Module):
    """Dense form of the head's input with ``centre_features``: the dilated global mean
    and the dilated centre mean, cut to the same positions, as channels."""

    def __init__(self, final_size: int, dilation: int, *, trainable: bool = False) -> None:
        super().__init__()
        size, self.offset = _centre_window(final_size)
        if trainable:
            self.mean, self.centre = _DilatedMean(final_size, dilation), _DilatedMean(size, dilation)
        else:
            self.mean = _DilatedPool(final_size, dilation, "mean")
            self.centre = _DilatedPool(size, dilation, "mean")
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean(x)
        at = self.offset * self.dilation
        centre = self.centre(x)[..., at : at + mean.shape[-2], at : at + mean.shape[-1]]
        return torch.cat([mean, centre], dim=1)


class _DilatedMean(nn.Module):
    """Stride-1 mean over a dilated ``size`` x ``size`` window as two separable depthwise
    convolutions: its backward pass is two convolutions, where the doubling of
    :class:`_DilatedPool` would allocate and fill a full-size gradient per shifted view."""

    def __init__(self, size: int, dilation: int) -> None:
        super().__init__()
        self.size, self.dilation = size, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        w = torch.full((c, 1, self.size, 1), 1.0 / self.size, dtype=x.dtype, device=x.device)
        x = nn.functional.conv2d(x, w, dilation=(self.dilation, 1), groups=c)
        return nn.functional.conv2d(x, w.transpose(2, 3), dilation=(1, self.dilation), groups=c)


def _head_pool(net: SmallBlockCNN, dilation: int, *, trainable: bool = False) -> nn.Module:
    """The dense form of the pooling that feeds the head (``trainable``: the form whose
    backward pass is cheap, for dense training)."""
    if net.centre_features:
        return _MeanAndCentre(net.final_size, dilation, trainable=trainable)
    if trainable:
        return _DilatedMean(net.final_size, dilation)
    return _DilatedPool(net.final_size, dilation, "mean")


class _PixelLinear(nn.Module):
    """A dense layer applied at every pixel (a 1x1 convolution computed as one matmul)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        flat = x.reshape(n, c, h * w)
        out = torch.matmul(self.weight, flat) + self.bias[:, None]
        return out.reshape(n, -1, h, w)


def _fold_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d | None, dilation: int) -> nn.Conv2d:
    weight = conv.weight.detach().clone()
    bias = (
        conv.bias.detach().clone()
        if conv.bias is not None
        else torch.zeros(conv.out_channels, dtype=weight.dtype, device=weight.device)
    )
    if bn is not None:
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        weight = weight * scale[:, None, None, None]
        bias = (bias - bn.running_mean) * scale + bn.bias.detach()
    out = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, dilation=dilation, bias=True
    ).to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        out.weight.copy_(weight)
        out.bias.copy_(bias)
    return out


class DenseBlockCNN(nn.Module):
    """Fully convolutional twin of a :class:`SmallBlockCNN` (build it with :func:`to_dense`).

    ``forward(x, context=None)`` takes (N, 1, H + block_size - 1, W + block_size - 1), the
    image padded by ``block_size // 2`` on each side (and, when ``n_context > 0``, the
    context maps (N, n_context, H, W) of the unpadded centres), and returns
    (N, n_classes, H, W): the logits of the block centred at every pixel of the unpadded
    image. ``body`` ends with the pooling that feeds the head; ``head`` holds the
    per-pixel dense layers (the context joins between the two).
    """

    def __init__(self, body: nn.Sequential, block_size: int, n_classes: int, *,
                 head: nn.Sequential | None = None, n_context: int = 0) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Sequential() if head is None else head
        self.block_size = block_size
        self.n_classes = n_classes
        self.n_context = int(n_context)

    @property
    def pad(self) -> int:
        """Padding to add on each side of the image."""
        return self.block_size // 2

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-1] < self.block_size or x.shape[-2] < self.block_size:
            raise ValueError(
                f"padded input must be at least {self.block_size}x{self.block_size}, "
                f"got {tuple(x.shape)}"
            )
        return self.head(_join_context(self.n_context, self.body(x), context))


def to_dense(net: SmallBlockCNN) -> DenseBlockCNN:
    """Build the dilated fully convolutional equivalent of ``net`` (copies the weights).

    Parameters
    ----------
    net : SmallBlockCNN
        The block classifier; batch-norm statistics are taken as they are (eval mode).

    Returns
    -------
    DenseBlockCNN
        In eval mode, on ``net``'s device and dtype; it computes, for every pixel, the
        logits ``net`` gives the block centred there (same function, rounding aside).

    Examples
    --------
    >>> net = SmallBlockCNN(33, channels=(4, 8, 8), hidden=8).eval()
    >>> dense = to_dense(net)
    >>> tuple(dense(torch.zeros(1, 1, 40 + 32, 50 + 32)).shape)
    (1, 4, 40, 50)
    >>> net = SmallBlockCNN(33, channels=(4, 8, 8), hidden=8, n_context=2).eval()
    >>> tuple(to_dense(net)(torch.zeros(1, 1, 72, 82), torch.zeros(1, 2, 40, 50)).shape)
    (1, 4, 40, 50)
    """
    if not isinstance(net, SmallBlockCNN):
        raise TypeError(f"net must be a SmallBlockCNN, got {type(net).__name__}")
    layers: list[nn.Module] = []
    dilation, mods, i = 1, list(net.features), 0
    while i < len(mods):
        mod = mods[i]
        if isinstance(mod, nn.Conv2d):
            bn = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d) else None
            layers.append(_fold_conv(mod, bn, dilation))
            i += 2 if bn is not None else 1
        elif isinstance(mod, nn.MaxPool2d):
            layers.append(_DilatedPool(mod.kernel_size, dilation, "max"))
            dilation *= mod.stride if isinstance(mod.stride, int) else mod.stride[0]
            i += 1
        elif isinstance(mod, nn.ReLU):
            layers.append(nn.ReLU(inplace=True))
            i += 1
        else:  # pragma: no cover - SmallBlockCNN builds only the layers above
            raise TypeError(f"cannot densify layer {mod!r}")
    layers.append(_head_pool(net, dilation))
    head: list[nn.Module] = []
    for mod in net.head:
        if isinstance(mod, nn.Linear):
            head.append(_PixelLinear(mod))
        elif isinstance(mod, nn.ReLU):
            head.append(nn.ReLU(inplace=True))
        elif isinstance(mod, nn.Dropout):
            continue
        else:  # pragma: no cover
            raise TypeError(f"cannot densify head layer {mod!r}")
    ref = next(net.parameters())
    dense = DenseBlockCNN(nn.Sequential(*layers), net.block_size, net.n_classes,
                          head=nn.Sequential(*head), n_context=net.n_context)
    return dense.to(device=ref.device, dtype=ref.dtype).eval()
