"""Drawing primitives and vehicles for the procedural scenes (:mod:`.scenes`).

Every fill writes colour and class id together into one 4-channel canvas, so image and label map
agree pixel for pixel. Geometry is in metres in a road-aligned frame (X lateral, Y up, Z forward
from the camera) and projected by a pinhole camera, so objects shrink with depth and converge to
the vanishing point. Flat objects facing the camera (people, riders, poles, signs, lights, trees;
see :mod:`.sprites`) are "sprites": 2-D shapes in metres scaled by f/Z.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

NEAR = 1.0  # metres: nothing is drawn closer to the camera than this

# Cityscapes train ids.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY = range(11)
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(11, 19)

Color = tuple[int, int, int]


def jitter(rng, rgb, amount: float = 18.0) -> Color:
    """A colour near ``rgb``: per-instance variation so appearance is never a class lookup."""
    k, u = rng.uniform(0.75, 1.2), rng.random
    a = 3.4 * amount  # uniform noise with about the spread of N(0, amount)
    r, g, b = (
        rgb[0] * k + a * (u() - 0.5),
        rgb[1] * k + a * (u() - 0.5),
        rgb[2] * k + a * (u() - 0.5),
    )
    return (min(255, max(0, int(r))), min(255, max(0, int(g))), min(255, max(0, int(b))))


def shade(rgb: Color, k: float) -> Color:
    """``rgb`` scaled by ``k`` (darker below 1), saturating at 255."""
    return (min(255, int(rgb[0] * k)), min(255, int(rgb[1] * k)), min(255, int(rgb[2] * k)))


def pick_color(rng, options: list, amount: float = 18.0):
    """One of ``options``, jittered."""
    return jitter(rng, options[rng.randrange(len(options))], amount)


def any_color(rng) -> tuple[int, int, int]:
    """A saturated or muted colour of any hue (clothes, bikes)."""
    k = rng.uniform(0.3, 1.0)
    return (int(rng.randrange(256) * k), int(rng.randrange(256) * k), int(rng.randrange(256) * k))


def _seq(v, n: int):
    return v if isinstance(v, (list, tuple, np.ndarray)) else (v,) * n


class Painter:
    """Projects world geometry and fills a 4-channel canvas: RGB plus the class id.

    One fill writes colour and class together, so image and label map agree pixel for pixel
    (and it costs half the OpenCV calls of drawing them separately).
    """

    def __init__(self, canvas: np.ndarray, cam: dict, fog: Color, fog_k: float) -> None:
        self.cv = canvas
        self.f, self.cx, self.hy = cam["f"], cam["cx"], cam["hy"]
        self.cam_h, self.cam_x, self.curve = cam["height"], cam["x"], cam["curve"]
        self.fog, self.fog_k = tuple(float(c) for c in fog), fog_k
        self.depth(0.0)

    def depth(self, z: float) -> None:
        """Set the depth whose haze tints the next fills (aerial perspective)."""
        self.keep = math.exp(-max(z, 0.0) * self.fog_k)
        self.haze = tuple(c * (1.0 - self.keep) for c in self.fog)

    def color(self, rgb, cls: int) -> tuple:
        k, h = self.keep, self.haze
        return (rgb[0] * k + h[0], rgb[1] * k + h[1], rgb[2] * k + h[2], cls)

    def px(self, X, Y, Z) -> np.ndarray:
        """World points (numpy, Z relative to the camera) -> (..., 2) float pixel coordinates."""
        Z = np.maximum(np.asarray(Z, np.float64), NEAR)
        s = self.f / Z
        x = self.cx + (np.asarray(X) - self.cam_x + self.curve * Z * Z) * s
        y = self.hy + (self.cam_h - np.asarray(Y)) * s
        x, y = np.broadcast_arrays(x, y)
        return np.stack([x, y], -1)

    def pts(self, X, Y, Z) -> np.ndarray:
        """A few world points (scalars broadcast) -> (N, 2) int32 pixels, in plain Python (fast)."""
        n = max(len(v) if isinstance(v, (list, tuple)) else 1 for v in (X, Y, Z))
        f, cx, hy, ch, camx, cu = self.f, self.cx, self.hy, self.cam_h, self.cam_x, self.curve
        out = []
        for x, y, z in zip(_seq(X, n), _seq(Y, n), _seq(Z, n), strict=True):
            z = NEAR if z < NEAR else z
            s = f / z
            out.append(cx + (x - camx + cu * z * z) * s)
            out.append(hy + (ch - y) * s)
        # Z >= NEAR keeps coordinates within a few million pixels, which OpenCV fills exactly.
        return np.array(out).astype(np.int32).reshape(-1, 2)

    def quad(self, X, Y, Z, cls: int, rgb) -> None:
        """Fill the convex polygon through world points (X, Y, Z)."""
        cv2.fillConvexPoly(self.cv, self.pts(X, Y, Z), self.color(rgb, cls))

    def poly(self, X, Y, Z, cls: int, rgb) -> None:
        """Fill the (possibly concave) polygon through world points (X, Y, Z)."""
        cv2.fillPoly(self.cv, [self.pts(X, Y, Z)], self.color(rgb, cls))

    def fill(self, polys, cls: int, rgb) -> None:
        """Fill float pixel polygons: one (N, 2) array, or a stack/list of non-overlapping ones."""
        if len(polys) == 0:
            return
        if isinstance(polys, list):
            ints = [np.asarray(p).astype(np.int32) for p in polys]
        else:
            arr = np.asarray(polys).astype(np.int32)
            ints = [arr] if arr.ndim == 2 else list(arr)
        cv2.fillPoly(self.cv, ints, self.color(rgb, cls))

    # -- sprites: shapes in metres (u right, v up) around a ground anchor --------------------
    def sprite(self, X: float, Z: float, parts: list, mirror: bool = False) -> None:
        """Draw sprite ``parts`` standing at ground point (X, Z), scaled by f/Z."""
        if Z < NEAR:
            return
        s = self.f / Z
        x0 = self.cx + (X - self.cam_x + self.curve * Z * Z) * s
        y0 = self.hy + self.cam_h * s
        sx = -s if mirror else s
        self.depth(Z)
        cv = self.cv
        for kind, cls, rgb, *geo in parts:
            col = self.color(rgb, cls)
            if kind == "poly":
                flat = []
                for u, v in geo[0]:
                    flat.append(int(x0 + u * sx))
                    flat.append(int(y0 - v * s))
                cv2.fillConvexPoly(cv, np.array(flat, np.int32).reshape(-1, 2), col)
            elif kind == "disc" or kind == "ring":
                (u, v), r = geo[0], geo[1]
                t = -1 if kind == "disc" else max(1, int(round(geo[2] * s)))
                c = (int(x0 + u * sx), int(y0 - v * s))
                cv2.circle(cv, c, max(1, int(round(r * s))), col, t)
            else:  # line
                (u0, v0), (u1, v1), w = geo
                a = (int(x0 + u0 * sx), int(y0 - v0 * s))
                b = (int(x0 + u1 * sx), int(y0 - v1 * s))
                cv2.line(cv, a, b, col, max(1, int(round(w * s))))


# -- vehicles: boxes with a visible rear (or front) face and side ------------------------------
CARS = [
    (235, 235, 235),
    (25, 25, 28),
    (170, 172, 178),
    (110, 110, 115),
    (170, 25, 25),
    (30, 50, 120),
    (20, 30, 60),
    (40, 90, 50),
    (220, 190, 40),
    (100, 70, 45),
    (200, 90, 30),
]


def sample_vehicle(r, kind: str, front: bool = False) -> dict:
    """Size and colours of a car, truck or bus (``front``: oncoming, seen from the front)."""
    glass = jitter(r, (45, 55, 70), 12)
    plate = (235, 235, 230) if r.random() < 0.7 else (230, 200, 40)
    if kind == "car":
        return {
            "kind": kind,
            "w": r.uniform(1.65, 1.95),
            "L": r.uniform(3.8, 5.0),
            "h": r.uniform(1.35, 1.7),
            "hb": r.uniform(0.85, 1.0),
            "r": 0.32,
            "color": pick_color(r, CARS, 14),
            "glass": glass,
            "plate": plate,
            "front": front,
        }
    bus = kind == "bus"
    return {
        "kind": kind,
        "w": r.uniform(2.4, 2.55),
        "L": r.uniform(10, 12) if bus else r.uniform(6, 10),
        "h": r.uniform(3.0, 3.3) if bus else r.uniform(2.8, 3.8),
        "hb": r.uniform(0.9, 1.1),
        "r": 0.48,
        "color": any_color(r) if bus else pick_color(r, CARS[:4] + CARS[4:], 20),
        "cab": pick_color(r, CARS, 14),
        "glass": glass,
        "plate": plate,
        "front": front,
    }


def _wheel(p: Painter, xs: float, zc: float, r: float) -> np.ndarray:
    return p.pts(
        xs, [r + r * math.sin(a) for a in _ANGLES], [zc + r * math.cos(a) for a in _ANGLES]
    )


_ANGLES = [2 * math.pi * i / 10 for i in range(10)]


def draw_vehicle(p: Painter, X: float, Z: float, v: dict) -> None:
    """A car, truck or bus as a box: ground shadow, visible side, then the near face."""
    kind, w, L, h, col = v["kind"], v["w"], v["L"], v["h"], v["color"]
    cls = {"car": CAR, "truck": TRUCK, "bus": BUS}[kind]
    if Z < NEAR:
        return
    p.depth(Z)
    q = p.quad
    xl, xr, zf = X - w / 2, X + w / 2, Z + L
    glass, dark = v["glass"], (22, 22, 24)
    # Contact shadow on the road, clipped to the road so it never relabels the curb.
    s0, s1 = max(xl - 0.1, p.road[0]), min(xr + 0.1, p.road[1])
    if s1 > s0:
        q([s0, s1, s1, s0], 0.0, [Z - 0.3, Z - 0.3, zf, zf], ROAD, p.road_shadow)
    xs = xr if xr < p.cam_x else xl if xl > p.cam_x else None
    hb = v["hb"]  # top of the lower body
    small = p.f / Z * w < 24  # a few pixels wide: the body's outline is all that shows
    if xs is not None and small:
        q(xs, [0.3, h, h, 0.3], [Z, Z, zf, zf], cls, shade(col, 0.78))
    elif xs is not None:
        side = shade(col, 0.78)
        q(xs, [0.3, hb, hb, 0.3], [Z, Z, zf, zf], cls, side)
        if kind == "car":
            zs = [Z + 0.22 * L, Z + 0.38 * L, Z + 0.72 * L, Z + 0.86 * L]
            q(xs, [hb, h, h, hb], zs, cls, side)
            inner = [zs[0] + 0.1, zs[1] + 0.05, zs[2] - 0.05, zs[3] - 0.15]
            q(xs, [hb + 0.05, h - 0.06, h - 0.06, hb + 0.05], inner, cls, glass)
            zm = 0.5 * (zs[1] + zs[2])
            q(xs, [hb, h, h, hb], [zm - 0.06, zm - 0.06, zm + 0.06, zm + 0.06], cls, side)
        elif kind == "bus":
            q(
                xs,
                [1.2, h - 0.35, h - 0.35, 1.2],
                [Z + 0.3, Z + 0.3, zf - 0.4, zf - 0.4],
                cls,
                glass,
            )
            for zz in np.arange(Z + 1.6, zf - 0.5, 1.5):
                q(xs, [1.2, h - 0.35, h - 0.35, 1.2], [zz, zz, zz + 0.15, zz + 0.15], cls, side)
        else:  # truck: cargo box over a chassis, cab with a window at the front
            q(xs, [hb, h, h, hb], [Z, Z, Z + 0.74 * L, Z + 0.74 * L], cls, side)
            zc = Z + 0.76 * L
            q(xs, [0.5, 0.72 * h, 0.72 * h, 0.5], [zc, zc, zf, zf], cls, shade(v["cab"], 0.78))
            q(
                xs,
                [1.6, 0.68 * h, 0.68 * h, 1.6],
                [zc + 0.3, zc + 0.3, zf - 0.2, zf - 0.2],
                cls,
                glass,
            )
        for zw in (Z + 0.17 * L, zf - 0.17 * L):
            cv2.fillConvexPoly(p.cv, _wheel(p, xs, zw, v["r"]), p.color(dark, cls))
    # Near face (rear, or front for oncoming traffic).
    if kind == "car":
        q([xl, xr, xr, xl], [0.3, 0.3, hb, hb], Z, cls, col)
        q(
            [xl + 0.1 * w, xr - 0.1 * w, xr - 0.18 * w, xl + 0.18 * w],
            [hb, hb, h, h],
            Z + 0.5,
            cls,
            col,
        )
        q(
            [xl + 0.16 * w, xr - 0.16 * w, xr - 0.22 * w, xl + 0.22 * w],
            [hb + 0.04, hb + 0.04, h - 0.05, h - 0.05],
            Z + 0.5,
            cls,
            glass,
        )
        ly = [0.62 * hb, 0.62 * hb, 0.85 * hb, 0.85 * hb]
    else:
        top = h if kind == "bus" else hb
        q([xl, xr, xr, xl], [0.35, 0.35, top, top], Z, cls, dark)
        q([xl, xr, xr, xl], [0.55, 0.55, h, h], Z, cls, col)
        if v["front"] or kind == "bus":
            q(
                [xl + 0.12, xr - 0.12, xr - 0.12, xl + 0.12],
                [h - 1.1, h - 1.1, h - 0.25, h - 0.25],
                Z,
                cls,
                glass,
            )
        ly = [0.7, 0.7, 0.95, 0.95]
    if small:  # too small for lamps, plate and wheels to matter
        return
    lamp = (250, 245, 225) if v["front"] else (200, 20, 20)
    for a, b in ((xl + 0.05, xl + 0.05 + 0.16 * w), (xr - 0.05 - 0.16 * w, xr - 0.05)):
        q([a, b, b, a], ly, Z, cls, lamp)
    q([X - 0.26, X + 0.26, X + 0.26, X - 0.26], [0.42, 0.42, 0.55, 0.55], Z, cls, v["plate"])
    q([xl, xr, xr, xl], [0.22, 0.22, 0.42, 0.42], Z, cls, shade(col, 0.45))
    for a, b in ((xl + 0.02, xl + 0.3), (xr - 0.3, xr - 0.02)):
        q([a, b, b, a], [0.0, 0.0, 0.3, 0.3], Z + 0.3, cls, dark)
