"""Seeded augmentation and cropping of training batches on the device (:func:`augment_batch`).

One sampling grid per sample moves the image and its masks together: a crop window (or
the whole slice), rotated, scaled, optionally flipped and translated, plus an optional
smooth elastic displacement, all applied by a single ``grid_sample`` (bilinear; the masks
thresholded at 0.5 after it). Intensity changes (gamma, contrast, brightness, Gaussian
noise) touch the image only.

Left-right flips are off by default: the abdomen is not mirror-symmetric (stomach and
spleen on the patient's left, liver on the right), so a flipped slice shows an anatomy
that (short of situs inversus) never occurs, and the position of an organ is part of
what identifies it. Up-down flips are off for the same reason.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = ["augment_batch"]

#: Control points per side of the elastic displacement field (smooth at this spacing).
ELASTIC_GRID = 5


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _centres(y: torch.Tensor, sizes: torch.Tensor, out: tuple[int, int], fg_prob: float,
             gen: torch.Generator) -> torch.Tensor:
    """(N, 2) crop centres (rows, cols) in pixel-edge units, on whole-pixel window starts
    (an undeformed crop is then an exact window, not an interpolation): uniform over the
    starts that keep the window inside the sample's own size (centred when it is
    smaller), or with probability ``fg_prob`` around a random labelled pixel."""
    n = y.shape[0]
    u = torch.rand(n, 2, generator=gen)
    pick_fg = torch.rand(n, generator=gen) < fg_prob
    pick = torch.rand(n, generator=gen)
    out_t = torch.tensor(out, dtype=torch.int64)
    sizes = sizes.long().cpu()
    room = sizes - out_t
    fits = room >= 0
    start = torch.where(fits, torch.minimum((u * (room + 1)).long(), room.clamp(min=0)),
                        torch.div(room, 2, rounding_mode="floor"))
    for i in torch.nonzero(pick_fg).flatten().tolist():
        fg = torch.nonzero(y[i].amax(0) > 0.5).cpu()
        if len(fg):
            at = fg[min(int(pick[i] * len(fg)), len(fg) - 1)]
            start[i] = torch.where(fits[i], (at - out_t // 2).clamp(min=0).minimum(
                room[i].clamp(min=0)), start[i])
    return start.float() + out_t.float() / 2


def augment_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    *,
    sizes: torch.Tensor | None = None,
    out_size: tuple[int, int] | None = None,
    crop_foreground: float = 0.0,
    hflip: float = 0.0,
    vflip: float = 0.0,
    rotate: float = 15.0,
    scale: float = 0.15,
    shift: float = 0.0625,
    elastic: float = 0.0,
    gamma: float = 0.3,
    brightness: float = 0.1,
    contrast: float = 0.1,
    noise: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crop, affine/elastic deformation and intensity change of a batch, seeded.

    The parameters are drawn from ``generator`` (a CPU ``torch.Generator``), the same
    numbers whatever the options, so a batch is deformed the same way on every device;
    the noise is drawn on the device from a generator seeded by it.

    Parameters
    ----------
    x : tensor of shape (N, K, H, W), float in [0, 1]
    y : tensor of shape (N, C, H, W), float in {0, 1}
    generator : torch.Generator
    sizes : tensor of shape (N, 2), optional
        Rows and cols of each sample before it was padded to (H, W); crops are drawn
        inside them. None: every sample fills (H, W).
    out_size : (int, int), optional
        Crop window (rows, cols); None: the whole (H, W), centred.
    crop_foreground : float
        Probability that a crop is centred on a labelled pixel (small organs are few
        pixels of a slice; nnU-Net oversamples them in the same way).
    hflip, vflip : float
        Flip probabilities (left-right, up-down); see the module notes.
    rotate : float
        Rotation range, +- degrees.
    scale : float
        Zoom in ``[1 - scale, 1 + scale]``.
    shift : float
        Translation, +- fraction of the window side.
    elastic : float
        Standard deviation of the elastic displacement at its control points, as a
        fraction of the half side (0: none).
    gamma, brightness, contrast : float
        Gamma in ``[1/(1+gamma), 1+gamma]`` (log-uniform), +-brightness, +-contrast; the
        same for all input channels of a sample.
    noise : float
        Largest standard deviation of additive Gaussian noise (drawn per sample in
        ``[0, noise]``).

    Returns
    -------
    (x, y) : new tensors of shapes (N, K, *out) and (N, C, *out)
        ``x`` clipped to [0, 1], ``y`` in {0, 1}.
    """
    n, _, h, w = x.shape
    dev = x.device
    out = (h, w) if out_size is None else (int(out_size[0]), int(out_size[1]))
    flip_c = torch.where(torch.rand(n, generator=generator) < hflip, -1.0, 1.0)
    flip_r = torch.where(torch.rand(n, generator=generator) < vflip, -1.0, 1.0)
    angle = _uniform(n, -rotate, rotate, generator) * math.pi / 180.0
    zoom = _uniform(n, 1.0 - scale, 1.0 + scale, generator)
    t_c = _uniform(n, -shift, shift, generator) * out[1]
    t_r = _uniform(n, -shift, shift, generator) * out[0]
    g = torch.exp(_uniform(n, -math.log1p(gamma), math.log1p(gamma), generator))
    c = _uniform(n, 1.0 - contrast, 1.0 + contrast, generator)
    b = _uniform(n, -brightness, brightness, generator)
    sigma = _uniform(n, 0.0, noise, generator)
    field = torch.randn(n, 2, ELASTIC_GRID, ELASTIC_GRID, generator=generator) * elastic
    noise_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    if out_size is None:
        centres = torch.tensor([h / 2, w / 2]).expand(n, 2)
    else:
        sizes = torch.tensor([[h, w]]).expand(n, 2) if sizes is None else sizes
        centres = _centres(y, sizes, out, crop_foreground, generator)
    centres = centres + torch.stack([t_r, t_c], dim=1)

    # Output pixel (u, v) in [-1, 1] -> input pixel (edge units) centre + M (u w_o/2, v h_o/2)
    # -> input coordinates in [-1, 1] as grid_sample wants them (align_corners=False).
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    m = torch.stack([torch.stack([cos * flip_c, -sin * flip_r], 1),
                     torch.stack([sin * flip_c, cos * flip_r], 1)], 1)  # (N, 2, 2) (col, row)
    m = m * torch.tensor([out[1] / 2, out[0] / 2])[None, None, :]
    m = m / torch.tensor([w / 2, h / 2])[None, :, None]
    t = torch.stack([2 * centres[:, 1] / w - 1, 2 * centres[:, 0] / h - 1], 1)
    ident = torch.eye(2, 3).expand(n, 2, 3).to(dev, x.dtype)
    base = F.affine_grid(ident, [n, 1, *out], align_corners=False)  # (N, h_o, w_o, 2)
    if elastic > 0:
        disp = F.interpolate(field.to(dev, x.dtype), size=out, mode="bicubic",
                             align_corners=True)
        base = base + disp.permute(0, 2, 3, 1)
    grid = torch.einsum("nij,nhwj->nhwi", m.to(dev, x.dtype), base) + t.to(dev, x.dtype)[
        :, None, None, :]
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(y, grid.to(y.dtype), mode="bilinear", padding_mode="zeros",
                      align_corners=False)
    y = (y > 0.5).to(y.dtype)
    shape = (n, 1, 1, 1)
    x = x.clamp(0.0, 1.0) ** g.view(shape).to(dev, x.dtype)
    x = x * c.view(shape).to(dev, x.dtype) + b.view(shape).to(dev, x.dtype)
    if noise > 0:
        dev_gen = torch.Generator(device=dev).manual_seed(noise_seed)
        x = x + torch.randn(x.shape, generator=dev_gen, device=dev, dtype=x.dtype) \
            * sigma.view(shape).to(dev, x.dtype)
    return x.clamp(0.0, 1.0), y
