"""Render one phantom scan: tissue labels, intensities, bias field and Rician noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from gitract.data.phantom._anatomy import Case, Day, displace

# tissue labels of the rendered volume; the three GI classes are read back from them
_LARGE_BOWEL = (20, 21, 22)
_SMALL_BOWEL = (23, 24)
_STOMACH = (25, 26, 27)


@dataclass(frozen=True)
class _Grid:
    x: NDArray  # (W,) mm from the body centre
    y: NDArray  # (H,) mm
    z: NDArray  # (S,) mm, organ coordinates
    spacing: float
    dz: float
    offset: tuple[
        float, float, float
    ]  # index = coordinate / step + offset, per (z, y, x)
    window: tuple[int, int]  # slices [start, stop) where labelled organs may appear

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.z), len(self.y), len(self.x)


def _grid(case: Case, n_slices: int, empty: tuple[int, int], extent: float) -> _Grid:
    s = case.spacing
    cx, cy = case.centre
    m0, m1 = empty
    dz = extent / (n_slices - m0 - m1)
    return _Grid(
        x=(np.arange(case.width) + 0.5) * s - cx,
        y=(np.arange(case.height) + 0.5) * s - cy,
        z=(np.arange(n_slices) - m0 + 0.5) * dz,
        spacing=s,
        dz=dz,
        offset=(m0 - 0.5, cy / s - 0.5, cx / s - 0.5),
        window=(m0, n_slices - m1),
    )


def _ellipsoid_level(g: _Grid, c, r, a: float = 0.0) -> NDArray:
    """(x/rx)^2 + (y/ry)^2 + (z/rz)^2 in the ellipsoid's frame (in-plane angle a)."""
    X = g.x[None, :] - c[0]
    Y = g.y[:, None] - c[1]
    ca, sa = np.cos(a), np.sin(a)
    q = ((ca * X + sa * Y) / r[0]) ** 2 + ((-sa * X + ca * Y) / r[1]) ** 2
    qz = ((g.z - c[2]) / r[2]) ** 2
    return q[None].astype(np.float32) + qz[:, None, None].astype(np.float32)


def _render_tube(g: _Grid, points: NDArray, radius: NDArray):
    """Distance (mm) to the nearest centreline point, and that point's index, in a box.

    A Euclidean distance transform over a box around the rasterised centreline finds the
    nearest point; the distance is then recomputed to that point's true position, so
    sections change smoothly between slices. Returns ``(box, dist, pid)`` with ``box`` a
    tuple of slices into the volume, or None when the tube misses the organ window.
    """
    shape = np.array(g.shape)
    step = np.array([g.dz, g.spacing, g.spacing])
    idx = points[:, ::-1] / step + np.array(g.offset)  # (n, 3) in (slice, row, col)
    vox = np.rint(idx).astype(np.int64)
    margin = np.ceil(radius.max() / step).astype(np.int64) + 1
    lo, hi = vox.min(0) - margin, vox.max(0) + margin + 1
    lo_v, hi_v = np.maximum(lo, 0), np.minimum(hi, shape)
    lo_v[0], hi_v[0] = max(lo_v[0], g.window[0]), min(hi_v[0], g.window[1])
    if np.any(hi_v <= lo_v):
        return None
    # the point nearest its voxel centre is written last, so it owns a shared voxel
    order = np.argsort(-np.linalg.norm((idx - vox) * step, axis=1), kind="stable")
    seeds = np.ones(tuple(hi - lo), dtype=bool)
    owner = np.zeros(tuple(hi - lo), dtype=np.int64)
    local = vox[order] - lo
    seeds[tuple(local.T)] = False
    owner[tuple(local.T)] = order
    crop = tuple(slice(a - b, c - b) for a, b, c in zip(lo_v, lo, hi_v, strict=True))
    _, nearest = ndimage.distance_transform_edt(
        seeds, sampling=step, return_indices=True
    )
    pid = owner[tuple(n[crop] for n in nearest)]
    axes = [
        (np.arange(a, b) - idx_off) * st
        for a, b, idx_off, st in zip(lo_v, hi_v, g.offset, step, strict=True)
    ]
    centre = points[pid]  # (..., 3) x, y, z
    dist = np.sqrt(
        (axes[2][None, None, :] - centre[..., 0]) ** 2
        + (axes[1][None, :, None] - centre[..., 1]) ** 2
        + (axes[0][:, None, None] - centre[..., 2]) ** 2
    )
    box = tuple(slice(a, b) for a, b in zip(lo_v, hi_v, strict=True))
    return box, dist.astype(np.float32), pid


def _contact_walls(inside: NDArray, key: NDArray, jump: NDArray) -> NDArray:
    """Pixels where non-adjacent parts of a tube touch in-plane (loops pressed)."""
    walls = np.zeros_like(inside)
    for axis in (1, 2):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(1, None), slice(None, -1)
        a, b = tuple(a), tuple(b)
        touch = (
            inside[a]
            & inside[b]
            & (np.abs(key[a] - key[b]) > np.minimum(jump[a], jump[b]))
        )
        walls[a] |= touch
        walls[b] |= touch
    return walls


def _noise_fields(rng, shape) -> tuple[NDArray[np.float32], ...]:
    """Fine, medium and coarse unit-variance texture fields (in-plane ~1, 2, 5 px).

    One white-noise draw smoothed in cascade (box passes approximate Gaussians cheaply);
    the three scales are correlated, which real tissue texture is too.
    """
    field = rng.standard_normal(shape, dtype=np.float32)
    field = ndimage.gaussian_filter1d(field, 0.5, axis=0, truncate=2.0)
    out = []
    for size in (2, 5, 11):
        for axis in (1, 2):
            field = ndimage.uniform_filter1d(field, size, axis=axis, mode="reflect")
        out.append(field / max(float(field.std()), 1e-6))
    return tuple(out)


def render(
    case: Case, day: Day, *, n_slices: int, empty: tuple[int, int], extent: float
):
    """Render one scan: ``(image float32 (S,H,W) at 16-bit scale, masks (S,H,W,3))``."""
    g = _grid(case, n_slices, empty, extent)
    # in-plane motion scales with the patient (small test sizes shrink it)
    k = np.array([case.size, case.size, 1.0])
    amp, wave, phase = day.field
    field = (amp * k, wave / k, phase)
    amp, wave, phase = day.bowel_field
    bowel_field = (amp * k, wave / k, phase)
    shift = day.shift * k
    rng = np.random.default_rng(day.noise_seed)
    shape = g.shape
    T = case.tissue
    fine, medium, coarse = _noise_fields(rng, shape)
    label = np.zeros(shape, dtype=np.uint8)
    img = np.full(shape, T["air"], dtype=np.float32)

    def paint(where, lab, value):
        label[where] = lab
        img[where] = value if np.isscalar(value) else value[where]

    def move(c):
        return displace(np.asarray(c, float)[None], field, shift)[0]

    # body outline, subcutaneous fat, muscle wall, abdominal cavity
    A, B = (h * day.body_scale for h in case.half_axes)
    bd = case.body
    X, Y = g.x[None, :] - shift[0], g.y[:, None] - shift[1]
    u, v = X / A, Y / B
    v = np.where(v > 0, v * (1 + bd["flat"]), v)
    theta = np.arctan2(v, u)
    rad = (np.abs(u) ** bd["p"] + np.abs(v) ** bd["p"]) ** (1 / bd["p"])
    rad = rad / (1 + sum(a * np.cos(m * theta + ph) for m, a, ph in bd["harm"]))
    r_loc = np.sqrt((A * np.cos(theta)) ** 2 + (B * np.sin(theta)) ** 2)
    amp, ph = bd["z_wave"]
    size_z = 1 + amp * np.sin(2 * np.pi * g.z / 300 + ph)
    depth = ((size_z[:, None, None] - rad[None]) * r_loc[None]).astype(np.float32)
    fat_t = (bd["fat"] * (1 - 0.35 * np.sin(theta)))[None]
    wall_t = fat_t + (bd["muscle"] * (1 + 0.4 * np.abs(np.cos(theta))))[None]
    body = depth > 0
    cavity = depth > wall_t
    paint(body, 1, T["fat"])
    paint(body & (depth > fat_t), 2, T["muscle"])
    mix = 1 / (1 + np.exp(-3.0 * (coarse + 0.7)))
    paint(cavity, 3, T["visceral_fat"] * mix + T["visceral_soft"] * (1 - mix))

    # solid distractor organs
    o = case.organs
    for lung in o["lungs"]:
        paint(
            cavity & (_ellipsoid_level(g, move(lung["c"]), lung["r"]) < 1),
            4,
            T["air"] * 2,
        )
    liver = np.zeros(shape, dtype=bool)
    for lobe in o["liver"]:
        liver |= _ellipsoid_level(g, move(lobe["c"]), lobe["r"], lobe["a"]) < 1
    paint(cavity & liver, 5, T["liver"])
    paint(cavity & liver & (medium > 2.0), 6, T["liver_vessel"])
    sp = o["spleen"]
    paint(
        cavity & (_ellipsoid_level(g, move(sp["c"]), sp["r"], sp["a"]) < 1),
        7,
        T["spleen"],
    )
    for kid in o["kidneys"]:
        q = _ellipsoid_level(g, move(kid["c"]), kid["r"], kid["a"])
        paint(cavity & (q < 1), 8, T["kidney_cortex"])
        paint(cavity & (q < 0.45), 9, T["kidney_medulla"])
        paint(cavity & (q < 0.12), 3, T["visceral_fat"])  # renal sinus fat
    gb = o["gallbladder"]
    paint(
        cavity & (_ellipsoid_level(g, move(gb["c"]), gb["r"], gb["a"]) < 1),
        10,
        T["fluid"],
    )
    pa = o["pancreas"]
    p0, p1 = move((*pa["p0"], pa["z"])), move((*pa["p1"], pa["z"]))
    seg = p1[:2] - p0[:2]
    t = np.clip(
        ((g.x[None, :] - p0[0]) * seg[0] + (g.y[:, None] - p0[1]) * seg[1])
        / (seg @ seg),
        0,
        1,
    )
    d2 = (g.x[None, :] - p0[0] - t * seg[0]) ** 2 + (
        g.y[:, None] - p0[1] - t * seg[1]
    ) ** 2
    q = d2[None] / pa["r"] ** 2 + (((g.z - p0[2]) / pa["rz"]) ** 2)[:, None, None]
    paint(cavity & (q < 1), 11, T["pancreas"])
    bl = o["bladder"]
    paint(cavity & (_ellipsoid_level(g, move(bl["c"]), bl["r"]) < 1), 10, T["fluid"])
    for il in o["iliac"]:
        q = _ellipsoid_level(g, move(il["c"]), il["r"], il["a"])
        paint(body & (q < 1), 12, T["cortex"])
        paint(body & (q < 0.7), 13, T["marrow"])

    # spine and posterior muscles (rigid: bones do not deform)
    sx, sy = shift[0], shift[1]
    spn = o["spine"]
    yv, rv = spn["y"] + sy, spn["r"]
    ps = o["paraspinal"]
    for s in (-1, 1):
        c = (sx + s * ps["dx"], yv + ps["dy"], 0.0)
        paint(body & (_ellipsoid_level(g, c, (*ps["r"], 1e9)) < 1), 2, T["muscle"])
        pso = o["psoas"]
        grow = np.clip((g.z - pso["z0"] + shift[2]) / 60, 0, 1)[:, None, None]
        q = _ellipsoid_level(
            g, (sx + s * pso["dx"], yv - 2, 0.0), (pso["r"], pso["r"], 1e9)
        )
        paint(cavity & (q < grow**2), 2, T["muscle"])

    # the three labelled GI organs: tubes around deformed centrelines
    for tube, kind in (
        (case.small_bowel, "sb"),
        (case.large_bowel, "lb"),
        (case.stomach, "st"),
    ):
        pts = displace(tube.points, field, shift)
        radius, lumen = tube.radius, tube.lumen
        if kind == "sb":
            pts = displace(pts, bowel_field)
        if kind == "st":
            radius, lumen = radius * day.stomach_fill, lumen * day.stomach_fill
        found = _render_tube(g, pts, radius)
        if found is None:
            continue
        box, dist, pid = found
        lab, im = label[box], img[box]  # views: painting them paints the volume
        co, me, fi = coarse[box], medium[box], fine[box]
        inside = cavity[box] & (dist < radius[pid])
        in_lumen = inside & (dist < lumen[pid])
        rows = g.y[box[1]][None, :, None]

        def paint_box(where, lab_id, value, lab=lab, im=im):
            lab[where] = lab_id
            im[where] = value if np.isscalar(value) else value[where]

        if kind in ("sb", "lb"):
            key = tube.loop[pid] * 1e6 + tube.arc[pid]
            in_lumen &= ~_contact_walls(inside, key, 2.5 * radius[pid])
        if kind == "sb":
            paint_box(inside, 23, T["sb_wall"] * (1 + 0.05 * fi))
            vals = case.sb_lumen_values[tube.loop[pid]]
            vals = np.where(np.isnan(vals), T["sb_wall"] * 0.9, vals).astype(np.float32)
            paint_box(in_lumen, 24, vals * (1 + 0.10 * co + 0.12 * fi))
        elif kind == "lb":
            paint_box(inside, 20, T["colon_wall"] * (1 + 0.05 * fi))
            paint_box(in_lumen, 21, day.colon_content * (1 + 0.30 * co + 0.15 * me))
            anterior = rows < pts[pid, 1] - 0.2 * radius[pid]
            paint_box(in_lumen & anterior & (co > 0.2), 22, T["air"])
        else:
            paint_box(inside, 25, T["stomach_wall"] * (1 + 0.08 * fi))
            paint_box(
                in_lumen,
                26,
                day.stomach_fluid * (1 + 0.12 * co + 0.08 * fi) + 0.15 * (me > 1),
            )
            if day.stomach_air > 0.05 and in_lumen.any():
                ys = rows[0, in_lumen.any(axis=(0, 2)), 0]
                level = ys[0] + day.stomach_air * (ys[-1] - ys[0])
                paint_box(in_lumen & (rows < level), 27, T["air"])

    # vessels and spine last: retroperitoneal, never covered by bowel
    ao, ivc = o["aorta"], o["ivc"]
    for c, r in ((ao["c"], (ao["r"], ao["r"])), (ivc["c"], ivc["r"])):
        q = _ellipsoid_level(g, (c[0] + sx, c[1] + sy, 0.0), (*r, 1e9))
        paint(body & (q < 1), 14, T["vessel"])
    disc = (
        np.cos(2 * np.pi * (g.z + shift[2] - spn["disc_phase"]) / spn["disc_period"])
        > 0.75
    )
    marrow = np.where(disc, T["disc"], T["marrow"]).astype(np.float32)[:, None, None]
    q = _ellipsoid_level(g, (sx, yv, 0.0), (1.1 * rv, 0.9 * rv, 1e9))
    paint(body & (q < 1), 12, T["cortex"])
    paint(body & (q < 0.75), 13, np.broadcast_to(marrow, shape) * (1 + 0.1 * medium))
    yc = yv + 0.9 * rv + 8
    paint(
        body & (_ellipsoid_level(g, (sx, yc + 18, 0.0), (4.0, 18.0, 1e9)) < 1),
        12,
        T["cortex"],
    )
    paint(
        body & (_ellipsoid_level(g, (sx, yc, 0.0), (11.0, 9.0, 1e9)) < 1),
        12,
        T["cortex"],
    )
    paint(
        body & (_ellipsoid_level(g, (sx, yc, 0.0), (7.0, 6.0, 1e9)) < 1), 15, T["csf"]
    )

    masks = np.stack(
        [np.isin(label, ids) for ids in (_LARGE_BOWEL, _SMALL_BOWEL, _STOMACH)], -1
    )

    # soft tissue texture, partial volume, coil shading, 16-bit scale, Rician noise
    texture = np.zeros(32, dtype=np.float32)
    texture[[1, 2, 5, 7, 8, 9, 11, 13]] = [
        0.04,
        0.07,
        0.05,
        0.04,
        0.05,
        0.05,
        0.10,
        0.08,
    ]
    img *= 1 + texture[label] * coarse + 0.5 * texture[label] * fine
    img = ndimage.gaussian_filter(img, (0, 0.6, 0.6))
    b = day.bias * 0.12
    un = g.x / np.ptp(g.x) * 2
    vn = g.y / np.ptp(g.y) * 2
    zn = (g.z - g.z.mean()) / max(np.ptp(g.z), 1.0) * 2
    poly = (
        b[0] * un[None, :]
        + b[1] * vn[:, None]
        + b[2] * un[None, :] * vn[:, None]
        + b[3] * un[None, :] ** 2
        + b[4] * vn[:, None] ** 2
    )
    coil = 1 + 0.25 * abs(b[5]) * (un[None, :] ** 2 + vn[:, None] ** 2)
    bias = (np.exp(poly) * coil)[None] * np.exp(b[6] * zn)[:, None, None]
    scale = case.scale * day.intensity_factor / 0.95
    img = img * bias.astype(np.float32) * np.float32(scale)
    sigma = np.float32(day.noise * scale)
    real = img + sigma * rng.standard_normal(shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(shape, dtype=np.float32)
    image = np.hypot(real, imag)
    return image, masks
