"""Random anatomy of one phantom patient (case) and its per-scan (day) changes.

Coordinates are millimetres relative to the body centre: ``x`` along image columns
(+x = image right = patient left), ``y`` along image rows (+y = image bottom =
posterior),
``z`` along slices (+z = caudal). Labelled organs live in ``0 <= z <= organ_extent_mm``.
Organs are 3D shapes (ellipsoids, capsules and tubes around 3D centrelines), so their
sections change smoothly from slice to slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline

from gitract.data.phantom._config import PhantomConfig


@dataclass(frozen=True)
class Tube:
    """A tubular organ: a sampled 3D centreline with outer and lumen radii (mm)."""

    points: NDArray[np.float64]  # (n, 3) x, y, z
    radius: NDArray[np.float64]  # (n,) outer radius
    lumen: NDArray[
        np.float64
    ]  # (n,) lumen radius (< radius: the difference is the wall)
    loop: NDArray[np.int64]  # (n,) loop / segment id
    arc: NDArray[np.float64]  # (n,) arc length from the start


@dataclass(frozen=True)
class Case:
    """Everything drawn once per patient."""

    width: int
    height: int
    spacing: float
    half_axes: tuple[float, float]  # body semi-axes A (x), B (y) in mm
    size: float  # body size relative to a typical adult (scales organs and motion)
    centre: tuple[float, float]  # body centre in image mm (x, y)
    body: dict  # outline exponent, harmonics, fat / muscle thickness
    organs: dict  # ellipsoid-like organs: name -> parameters
    stomach: Tube
    large_bowel: Tube
    small_bowel: Tube
    sb_lumen_values: NDArray[np.float64]  # per small-bowel loop
    tissue: dict  # tissue name -> relative intensity
    scale: float  # 16-bit intensity scale
    day_numbers: tuple[int, ...]


@dataclass(frozen=True)
class Day:
    """Everything drawn once per scan of a patient."""

    shift: NDArray[np.float64]  # rigid shift (x, y, z) mm
    field: tuple[
        NDArray, NDArray, NDArray
    ]  # amplitudes (K,3), wave vectors (K,3), phases (K,)
    bowel_field: tuple[NDArray, NDArray, NDArray]  # extra small-bowel motion
    body_scale: float
    stomach_fill: float
    stomach_air: float
    stomach_fluid: float
    colon_content: float
    intensity_factor: float
    noise: float  # Rician sigma as a fraction of the scale
    bias: NDArray[np.float64]  # smooth bias-field coefficients
    noise_seed: int


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _spline_tube(ctrl, radii, lumen_gap, *, loop: int = 0, step: float = 0.75) -> Tube:
    ctrl = np.asarray(ctrl, dtype=float)
    chord = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(ctrl, axis=0), axis=1))]
    spline = CubicSpline(chord, ctrl, bc_type="natural")
    t = np.linspace(0.0, chord[-1], int(np.ceil(chord[-1] / step)) + 1)
    points = spline(t)
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    radius = np.interp(t, chord, radii)
    return Tube(points, radius, radius - lumen_gap, np.full(len(t), loop), arc)


def _concat(tubes: list[Tube]) -> Tube:
    return Tube(
        *(
            np.concatenate([getattr(t, f) for t in tubes])
            for f in Tube.__dataclass_fields__
        )
    )


def _random_walk(
    rng,
    start,
    centre,
    semi,
    occupied,
    *,
    length: float,
    step: float = 2.0,
    cell: float = 9.0,
) -> NDArray:
    """A smooth 3D random walk kept inside an ellipsoid (a small-bowel loop centreline).

    Each step picks, among a few random turns, the one heading for the least crowded
    cell of ``occupied`` (a coarse grid shared by all loops), so loops pack side by side
    instead of piling into one lump.
    """
    n = int(length / step)
    points = np.empty((n, 3))
    p = np.asarray(start, dtype=float)
    d = rng.standard_normal(3)
    d /= np.linalg.norm(d)
    kicks = rng.standard_normal((n, 5, 3)) * 0.35
    origin = centre - semi
    last = np.array(occupied.shape) - 1
    recent: list[tuple] = []
    for i in range(n):  # sequential by nature; a few hundred steps per loop
        cand = d + kicks[i]
        cand[:, 2] *= 0.8  # loops wander more in-plane than cranio-caudally
        cand /= np.linalg.norm(cand, axis=1, keepdims=True)
        ahead = p + 5.0 * step * cand
        cells = np.clip(((ahead - origin) / cell).astype(int), 0, last)
        crowd = (
            occupied[tuple(cells.T)]
            + 3.0
            * np.maximum(np.linalg.norm((ahead - centre) / semi, axis=1) - 0.7, 0)
            * 10
        )
        d = cand[int(np.argmin(crowd))]
        q = (p - centre) / semi
        rho = float(np.linalg.norm(q))
        if rho > 0.8:
            inward = -(q / semi) / np.linalg.norm(q / semi)
            d = d + 3.0 * (rho - 0.8) * inward
            d /= np.linalg.norm(d)
        p = p + step * d
        points[i] = p
        here = tuple(np.clip(((p - origin) / cell).astype(int), 0, last))
        recent.append(here)
        if len(recent) > 6:  # a loop is not repelled by the stretch it just drew
            occupied[recent.pop(0)] += 1.0
    for here in recent:
        occupied[here] += 1.0
    return points


def _small_bowel(rng, A, B, k, zext, duodenum_start) -> tuple[Tube, NDArray]:
    centre = np.array([0.0, -0.22 * B, 0.68 * zext])
    semi = np.array([0.50 * A, 0.36 * B, 0.34 * zext])
    # the duodenum: a C-loop from the pylorus around the pancreas head
    d0 = np.asarray(duodenum_start)
    duo = [
        d0,
        d0 + [-0.12 * A, 0.15 * B, 12],
        d0 + [-0.10 * A, 0.38 * B, 32],
        d0 + [0.12 * A, 0.42 * B, 45],
        d0 + [0.32 * A, 0.30 * B, 40],
    ]
    r_duo = 9.5 * k
    tubes = [_spline_tube(duo, [r_duo] * 5, 2.0, loop=0)]
    n_loops = int(rng.integers(5, 8))
    occupied = np.zeros(tuple(np.ceil(2 * semi / 9.0).astype(int) + 1))
    for i in range(1, n_loops + 1):
        start = centre + semi * rng.uniform(-0.6, 0.6, 3)
        walk = _random_walk(
            rng, start, centre, semi, occupied, length=_u(rng, 200, 320) * k
        )
        r = _u(rng, 9.0, 12.5) * k * (1 + 0.08 * np.sin(np.arange(len(walk)) / 9.0))
        tubes.append(_spline_tube(walk[::2], r[::2], 2.5, loop=i))
    values = rng.uniform(0.20, 0.62, n_loops + 1)
    collapsed = rng.random(n_loops + 1) < 0.25
    values[collapsed] = np.nan  # lumen drawn like the wall (collapsed loop)
    return _concat(tubes), values


def _large_bowel(rng, A, B, k, zext) -> Tube:
    j = lambda: rng.normal(0, 1)  # noqa: E731
    ctrl = [
        (-0.55 * A, 0.02 * B, 1.00 * zext - 10),  # caecum
        (-0.62 * A, -0.02 * B, 0.72 * zext),  # ascending
        (-0.58 * A, -0.15 * B, 0.50 * zext),
        (-0.45 * A, -0.50 * B, 0.40 * zext),  # hepatic flexure
        (-0.15 * A, -0.66 * B, 0.52 * zext),  # transverse, sagging caudally
        (0.20 * A, -0.64 * B, 0.50 * zext),
        (0.52 * A, -0.45 * B, 0.36 * zext),  # splenic flexure
        (0.66 * A, -0.05 * B, 0.45 * zext),
        (0.64 * A, 0.10 * B, 0.72 * zext),  # descending
        (0.50 * A, 0.05 * B, 0.92 * zext),  # sigmoid
        (0.15 * A, 0.0 * B, 1.00 * zext - 8),
    ]
    ctrl = (
        np.array(ctrl)
        + np.c_[
            [j() * 0.04 * A for _ in ctrl],
            [j() * 0.04 * B for _ in ctrl],
            [j() * 5 for _ in ctrl],
        ]
    )
    radii = (
        np.array([24, 21, 20, 19, 18, 18, 17, 16, 15, 14, 13]) * k * _u(rng, 0.9, 1.1)
    )
    tube = _spline_tube(ctrl, radii, 2.5)
    # haustra: periodic folds narrowing the lumen (and denting the outline), fading
    # distally
    period = _u(rng, 22, 30) * k
    fold = (0.5 + 0.5 * np.cos(2 * np.pi * tube.arc / period)) ** 6
    fade = np.clip(1.3 - tube.arc / tube.arc[-1], 0.3, 1.0)
    radius = tube.radius * (1 - 0.10 * fold * fade)
    lumen = radius - 2.5 - 5.0 * k * fold * fade
    return Tube(tube.points, radius, np.maximum(lumen, 1.0), tube.loop, tube.arc)


def _stomach(rng, A, B, k) -> Tube:
    j = lambda s: rng.normal(0, s)  # noqa: E731
    r_f = _u(rng, 27, 34) * k
    ctrl = [
        (0.42 * A + j(6), 0.05 * B + j(6), r_f + 2),  # fundus (posterior, cranial)
        (0.40 * A + j(6), -0.20 * B + j(6), r_f + 25),  # body
        (0.30 * A + j(6), -0.42 * B + j(5), r_f + 45),
        (0.08 * A + j(5), -0.50 * B + j(5), r_f + 45),  # antrum, crossing the midline
        (-0.12 * A + j(4), -0.38 * B + j(4), r_f + 40),  # pylorus
    ]
    radii = np.array([r_f, 0.85 * r_f, 0.65 * r_f, 16 * k, 10 * k])
    return _spline_tube(ctrl, radii, 3.5)


def draw_case(config: PhantomConfig, case_index: int) -> Case:
    """Draw one patient's anatomy; independent of ``n_slices`` and of the days."""
    rng = np.random.default_rng(
        np.random.SeedSequence(config.seed, spawn_key=(case_index, 0))
    )
    # sizes and spacings are dealt from seeded shuffles, so a few cases cover them all
    deck = np.random.default_rng(
        np.random.SeedSequence(config.seed, spawn_key=(2**31,))
    )
    size_order = deck.permutation(len(config.sizes))
    spacing_order = deck.permutation(len(config.spacings))
    width, height = config.sizes[int(size_order[case_index % len(config.sizes)])]
    spacing = config.spacings[
        int(
            spacing_order[
                (case_index // len(config.sizes) + case_index) % len(config.spacings)
            ]
        )
    ]
    fov_w, fov_h = width * spacing, height * spacing
    A = fov_w / 2 * _u(rng, 0.70, 0.86)
    B = min(A * _u(rng, 0.62, 0.76), fov_h / 2 * 0.86)
    k = float(
        np.sqrt(A * B / (160.0 * 112.0))
    )  # organ size relative to a typical adult
    centre = (
        fov_w / 2 + _u(rng, -0.03, 0.03) * fov_w,
        fov_h / 2 + _u(rng, -0.02, 0.04) * fov_h,
    )
    zext = config.organ_extent_mm
    body = {
        "p": _u(rng, 2.1, 2.6),
        "flat": _u(rng, 0.05, 0.18),
        "harm": [
            (m, rng.normal(0, 0.015), _u(rng, 0, 2 * np.pi)) for m in (2, 3, 4, 5)
        ],
        "fat": _u(rng, 7, 26) * k,
        "muscle": _u(rng, 5, 9) * k,
        "z_wave": (_u(rng, 0.02, 0.05), _u(rng, 0, 2 * np.pi)),
    }
    rv = _u(rng, 15, 19) * k
    yv = 0.30 * B + rng.normal(0, 3)
    jit = lambda s=4.0: rng.normal(0, s)  # noqa: E731
    organs = {
        "spine": {
            "y": yv,
            "r": rv,
            "disc_period": _u(rng, 26, 34),
            "disc_phase": _u(rng, 0, 30),
        },
        "aorta": {"c": (0.3 * rv + jit(2), yv - rv - 10 * k), "r": _u(rng, 9, 12) * k},
        "ivc": {
            "c": (-1.4 * rv + jit(2), yv - rv - 8 * k),
            "r": (_u(rng, 11, 15) * k, 8 * k),
        },
        "liver": [
            {
                "c": (-0.42 * A + jit(), 0.0 * B + jit(), -20 + jit(8)),
                "r": (0.52 * A, 0.80 * B, _u(rng, 100, 125)),
                "a": jit(0.1),
            },
            {
                "c": (-0.05 * A + jit(), -0.45 * B + jit(), -10 + jit(6)),
                "r": (0.40 * A, 0.30 * B, _u(rng, 50, 70)),
                "a": jit(0.1),
            },
        ],
        "spleen": {
            "c": (0.60 * A + jit(), 0.42 * B + jit(), 15 + jit(8)),
            "r": (0.17 * A, 0.32 * B, _u(rng, 50, 65)),
            "a": 0.5 + jit(0.1),
        },
        "kidneys": [
            {
                "c": (s * (rv + 48 * k) + jit(3), yv + 6 + jit(3), zc + jit(6)),
                "r": (21 * k, 30 * k, _u(rng, 40, 50)),
                "a": s * (0.45 + jit(0.1)),
            }
            for s, zc in ((-1, 82), (1, 70))
        ],
        "gallbladder": {
            "c": (-0.30 * A + jit(), -0.35 * B + jit(), 55 + jit(8)),
            "r": (12 * k, 15 * k, _u(rng, 20, 35)),
            "a": jit(0.3),
        },
        "pancreas": {
            "p0": (-0.12 * A, 0.02 * B),
            "p1": (0.42 * A, 0.25 * B),
            "z": 55 + jit(6),
            "r": 9 * k,
            "rz": _u(rng, 15, 22),
        },
        "lungs": [
            {"c": (s * 0.5 * A, 0.3 * B, -75), "r": (0.38 * A, 0.55 * B, 60), "a": 0.0}
            for s in (-1, 1)
        ],
        "bladder": {
            "c": (jit(), -0.25 * B, zext + 45),
            "r": (0.28 * A, 0.32 * B, 42),
            "a": 0.0,
        },
        "iliac": [
            {
                "c": (s * 0.62 * A, 0.28 * B, zext + 40),
                "r": (0.12 * A, 0.35 * B, 55),
                "a": s * 0.4,
            }
            for s in (-1, 1)
        ],
        "paraspinal": {"dx": rv + 15 * k, "dy": rv + 14 * k, "r": (25 * k, 22 * k)},
        "psoas": {"dx": rv + 12 * k, "z0": 0.35 * zext, "r": 18 * k},
    }
    stomach = _stomach(rng, A, B, k)
    large_bowel = _large_bowel(rng, A, B, k, zext)
    small_bowel, sb_values = _small_bowel(rng, A, B, k, zext, stomach.points[-1])
    base = {
        "fat": 0.85,
        "muscle": 0.30,
        "visceral_fat": 0.78,
        "visceral_soft": 0.40,
        "liver": 0.42,
        "liver_vessel": 0.20,
        "spleen": 0.50,
        "kidney_cortex": 0.55,
        "kidney_medulla": 0.36,
        "pancreas": 0.52,
        "fluid": 0.62,
        "marrow": 0.55,
        "disc": 0.30,
        "cortex": 0.10,
        "csf": 0.55,
        "vessel": 0.15,
        "air": 0.02,
        "stomach_wall": 0.60,
        "colon_wall": 0.62,
        "sb_wall": 0.72,
    }
    tissue = {name: value * _u(rng, 0.88, 1.12) for name, value in base.items()}
    tissue["air"] = base["air"]
    low, high = config.max_intensity
    scale = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    # own stream, drawn one by one: a day's number does not depend on n_days
    day_rng = np.random.default_rng(
        np.random.SeedSequence(config.seed, spawn_key=(case_index, 2))
    )
    days = [int(day_rng.integers(0, 8))]
    for _ in range(config.n_days - 1):
        days.append(days[-1] + int(day_rng.integers(1, 12)))
    return Case(
        width,
        height,
        spacing,
        (A, B),
        k,
        centre,
        body,
        organs,
        stomach,
        large_bowel,
        small_bowel,
        sb_values,
        tissue,
        scale,
        tuple(days),
    )


def _field(rng, amplitude: tuple[float, float, float], k: int = 3):
    amp = rng.normal(0, 1, (k, 3)) * np.asarray(amplitude)
    direction = rng.normal(0, 1, (k, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    wave = direction * (2 * np.pi / rng.uniform(90, 220, (k, 1)))
    return amp, wave, rng.uniform(0, 2 * np.pi, k)


def displace(points: NDArray, field, shift: NDArray | None = None) -> NDArray:
    """Move points (n, 3) by a smooth displacement (sum of sinusoids) and a shift."""
    amp, wave, phase = field
    out = points + np.sin(points @ wave.T + phase) @ amp
    return out if shift is None else out + shift


def draw_day(config: PhantomConfig, case_index: int, day_index: int) -> Day:
    """Draw one scan's changes (the first day too: there is no reference pose)."""
    rng = np.random.default_rng(
        np.random.SeedSequence(config.seed, spawn_key=(case_index, 1, day_index))
    )
    return Day(
        shift=np.array([rng.normal(0, 4), rng.normal(0, 3), rng.normal(0, 3)]),
        field=_field(rng, (4.0, 4.0, 2.5)),
        bowel_field=_field(rng, (5.0, 5.0, 3.0), k=4),
        body_scale=float(1 + rng.normal(0, 0.015)),
        stomach_fill=_u(rng, 0.85, 1.12),
        stomach_air=_u(rng, 0.0, 0.35),
        stomach_fluid=_u(rng, 0.30, 0.72),
        colon_content=_u(rng, 0.30, 0.60),
        intensity_factor=_u(rng, 0.9, 1.1),
        noise=_u(rng, 0.02, 0.045),
        bias=rng.normal(0, 1, 7),
        noise_seed=int(rng.integers(2**31)),
    )
