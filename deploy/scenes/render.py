"""Procedural street scenes with Cityscapes train ids: the built-in data for training and demos.

``render_scene(seed, size)`` returns an RGB image and its label map (train ids 0..18; class names
and colours in :data:`..classes.CITYSCAPES`). A scene is a straight or gently curving street seen
from a car: road with lane marks, curbs, sidewalks, terrain, buildings with windows, walls,
fences, hedges, trees, poles with lamps, signs and traffic lights, parked and moving cars, trucks
and buses, pedestrians, cyclists and motorcyclists, and a distant skyline under a varied sky.
Objects are painted far to near, so nearer ones occlude farther ones, and they shrink with
depth. Colours are drawn per instance (cars of every colour, buildings of many hues), textures
come from noise with per-scene, per-class strengths, and every scene has its own lighting, colour
cast, haze, shadows, blur and sensor noise.

Label map and image are filled by the same calls (one RGB + class canvas), so they agree exactly;
texture, lighting, vignetting, blur and noise touch only the image afterwards. Rendering is
deterministic: the same seed and size give identical arrays, and the scene content does not depend
on the size (a seed shows the same street at 64x128 and at 1024x2048; only details a few pixels
big are simplified). Class 16 (train) is never drawn: a tram would need rails and a matching street
layout, and Cityscapes itself has very few train pixels.

Cost (one core, CPU time): about 12 ms per 256x512 scene and 22 ms per 512x1024 scene.

:class:`SceneSequence` drives a camera down one such street over time (objects move, people
walk), for demos and benchmarks. What is where comes from :mod:`.layout`; vehicles and the
painter are in :mod:`.objects`, people, two-wheelers, poles and trees in
:mod:`.sprites`.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from ..errors import InputError
from . import objects as so
from . import sprites as sp
from .layout import FPS, SEG, Z_FAR, World, rng_for

# Per-class texture strength (fine grain, blotches) in 0..255 units; scaled per scene.
_FINE = np.array([5, 4, 3, 5, 2, 2, 1, 1, 18, 12, 0.6, 3, 3, 2, 2, 2, 2, 2, 2, 0], np.float32)
_MID = np.array([6, 5, 7, 8, 3, 2, 1, 1, 22, 14, 12, 3, 3, 3, 4, 3, 3, 3, 2, 0], np.float32)


@functools.lru_cache(maxsize=4)
def _noise_bank(h: int, w: int) -> np.ndarray:
    """A fixed (2H, 2W) field of unit Gaussian noise; scenes crop it at random offsets (fast)."""
    return np.random.default_rng(20180618).standard_normal((2 * h, 2 * w), np.float32)


@functools.lru_cache(maxsize=4)
def _radius2(h: int, w: int) -> np.ndarray:
    """Squared distance from the image centre, 1 at the corners (for lens vignetting)."""
    y, x = np.ogrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    return ((x * x + y * y) / 2).astype(np.float32)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InputError(f"scene size {size!r} is not (height, width)") from None
    if h < 8 or w < 8:
        raise InputError(f"scene size {h}x{w} is too small; use at least 8x8")
    return h, w


def _camera(world: World, h: int, w: int) -> dict:
    c = world.cam
    return {
        "f": c["f"] * w,
        "cx": c["cx"] * w,
        "hy": c["hy"] * h,
        "height": c["height"],
        "x": c["x"],
        "curve": c["curve"],
    }


def _sky(p: so.Painter, world: World) -> None:
    """Vertical gradient from zenith to horizon colour, label sky everywhere to start with."""
    st = world.style
    h = p.cv.shape[0]
    t = np.clip(np.arange(h, dtype=np.float32) / max(p.hy, 1.0), 0, 1)[:, None]
    p.depth(300.0)
    top = np.asarray((*st["sky_top"], so.SKY), np.float32)
    hor = np.asarray(p.color(st["sky_horizon"], so.SKY), np.float32)
    column = (top * (1 - t) + hor * t).astype(np.uint8)[:, None, :]
    cv2.resize(column, (p.cv.shape[1], h), dst=p.cv, interpolation=cv2.INTER_NEAREST)


def _ground(p: so.Painter, world: World, z_cam: float) -> None:
    """Road, curbs, sidewalks and terrain in depth bands (so haze grows with distance)."""
    le, ri = world.left, world.right
    wl, wr = le - world.verge[-1], ri + world.verge[1]  # sidewalks start past any verge
    sl, sr = wl - world.sidewalk[-1], wr + world.sidewalk[1]
    side_strips = [
        (sl, wl, so.SIDEWALK, world.sidewalk_color),
        (wr, sr, so.SIDEWALK, world.sidewalk_color),
    ]
    verges = [(wl, le, so.TERRAIN, world.verge_color), (ri, wr, so.TERRAIN, world.verge_color)]
    strips = [
        (-90.0, sl, so.TERRAIN, world.terrain_color),
        *side_strips,
        *[v for v in verges if v[1] > v[0]],
        (le, ri, so.ROAD, world.road_color),
        (sr, 90.0, so.TERRAIN, world.terrain_color),
    ]
    curbs = [(le - 0.18, le), (ri, ri + 0.18)]
    shadow = world.style["shadow"]
    edges = np.concatenate([[1000.0], np.geomspace(Z_FAR + 40, so.NEAR, 9)])
    for za, zb in zip(edges[:-1], edges[1:], strict=True):
        zs = [zb, zb, za, za]
        p.depth(float(np.sqrt(za * zb)))
        for x0, x1, cls, col in strips:
            pieces = [(x0, x1, 1.0)]
            if shadow is not None:  # a building's shadow: split strips at its edge, darken one side
                s_side, s_x, k = shadow
                m = min(max(s_x, x0), x1)
                pieces = [
                    (a, b, k if s_side * (a + b) / 2 > s_side * s_x else 1.0)
                    for a, b in ((x0, m), (m, x1))
                    if b > a
                ]
            for a, b, k in pieces:
                p.quad([a, b, b, a], 0.0, zs, cls, so.shade(col, k))
        for a, b in curbs:
            p.quad([a, b, b, a], 0.0, zs, so.SIDEWALK, world.curb_color)


def _ground_details(p: so.Painter, world: World, seg: dict, side: int, zr: float) -> None:
    """Asphalt repairs, manhole covers and paving joints: structure that is not a class edge."""
    for x0, x1, z0, z1, k in seg["patches"]:
        if z1 - zr > so.NEAR:
            p.depth(z0 - zr)
            za, zb = max(z0 - zr, so.NEAR), z1 - zr
            p.quad([x0, x1, x1, x0], 0.0, [za, za, zb, zb], so.ROAD, so.shade(world.road_color, k))
    for x, z in seg["manholes"]:
        if z - zr > so.NEAR + 0.5:
            p.depth(z - zr)
            p.quad(
                [x + 0.45 * c for c in _COS], 0.0, [z - zr + 0.45 * c for c in _SIN], so.ROAD, _IRON
            )
    joint = world.joints
    z0 = seg["z0"] - zr
    if joint and z0 + SEG > so.NEAR and z0 < 30.0:  # joints vanish into texture beyond ~30 m
        edge = (world.right if side > 0 else world.left) + side * world.verge[side]
        a, b = edge + side * 0.2, edge + side * world.sidewalk[side]
        zz = np.arange(z0 - (seg["z0"] % joint), z0 + SEG, joint)
        zz = zz[zz > so.NEAR][:, None]
        if len(zz):
            p.depth(max(z0, so.NEAR))
            quads = p.px([[a, b, b, a]], 0.0, np.concatenate([zz, zz, zz + 0.05, zz + 0.05], 1))
            p.fill(quads, so.SIDEWALK, so.shade(world.sidewalk_color, 0.75))


_IRON = (45, 45, 48)
_COS = np.cos(np.linspace(0, 2 * np.pi, 8, endpoint=False)).tolist()
_SIN = np.sin(np.linspace(0, 2 * np.pi, 8, endpoint=False)).tolist()


def _marks(p: so.Painter, world: World, z_cam: float) -> None:
    """Lane marks, edge and centre lines and a zebra crossing (labelled road, like Cityscapes)."""
    nl, nr = world.lanes
    length, period = world.dash
    z = np.arange(-(z_cam % period), 90.0, period)
    z = z[z + length > so.NEAR]
    yellow = world.center_color != world.mark_color  # a solid coloured centre line
    dashed = [i * world.lane_w for i in range(1, nr)] + [-i * world.lane_w for i in range(1, nl)]
    xs = np.asarray(dashed + ([0.0] if nl and not yellow else []))
    p.depth(20.0)
    if len(xs) and len(z):
        xx, zz = (a.ravel()[:, None] for a in np.meshgrid(xs, z, indexing="ij"))
        za, zb = np.maximum(zz, so.NEAR), zz + length
        dash = p.px(xx + [-0.07, 0.07, 0.07, -0.07], 0.0, np.concatenate([za, za, zb, zb], 1))
        p.fill(dash, so.ROAD, world.mark_color)
    solid = [(world.left + 0.3, world.mark_color), (world.right - 0.3, world.mark_color)]
    solid = (solid if world.edge_lines else []) + (
        [(0.0, world.center_color)] if nl and yellow else []
    )
    zs = np.geomspace(so.NEAR, 120.0, 8)
    for x, color in solid:
        p.fill(
            np.concatenate([p.px(x - 0.07, 0.0, zs), p.px(x + 0.07, 0.0, zs[::-1])]), so.ROAD, color
        )
    if world.crosswalk is not None:
        zc = world.crosswalk - z_cam
        if zc + 3 > so.NEAR:
            x = np.arange(world.left + 0.5, world.right - 0.5, 1.0)[:, None]
            za, zb = max(zc, so.NEAR), zc + 3
            p.depth(za)
            p.fill(p.px(x + [0, 0.5, 0.5, 0], 0.0, [za, za, zb, zb]), so.ROAD, world.mark_color)


def _skyline(p: so.Painter, world: World) -> None:
    z = 200.0
    p.depth(z)
    for kind, x0, x1, h, col in world.skyline:
        if kind == "gap":
            continue
        if kind == "building":
            p.quad([x0, x1, x1, x0], [0, 0, h, h], z, so.BUILDING, col)
        else:
            u = np.linspace(x0, x1, 6)
            top = h * (0.7 + 0.3 * np.abs(np.sin(u * 0.37)))
            pts = np.concatenate([p.px(u, top, z), p.px([x1, x0], 0.0, z)])
            p.fill(pts, so.VEGETATION, col)


def _facade(p: so.Painter, f: dict, side: int, zr: float) -> None:
    """A building front on the plane X = f['x'], its end wall, and a grid of windows."""
    z0, z1 = max(f["z0"] - zr, so.NEAR), f["z1"] - zr
    if z1 <= so.NEAR:
        return
    x, h, col = f["x"], f["h"], f["color"]
    p.depth(z0)
    if z0 > so.NEAR:  # the end wall shows where the street front steps back or down
        p.quad(
            [x, x, x + side * 15, x + side * 15], [0, h, h, 0], z0, so.BUILDING, so.shade(col, 0.7)
        )
    zs = [z0, (2 * z0 + z1) / 3, (z0 + 2 * z1) / 3, z1]
    zl = zs + zs[::-1]
    p.poly(x, [0.0] * 4 + [h] * 4, zl, so.BUILDING, col)
    if p.f / z0 * 0.4 > 1.0:
        p.poly(x, [h - 0.4] * 4 + [h] * 4, zl, so.BUILDING, so.shade(col, 0.8))  # cornice
    win = f["win"]
    if win is None or p.f / z0 * win["floor"] * win["h"] < 1.5:
        return
    floors = np.arange(win["floor"] if win["shop"] else 0.8, h - 1.0, win["floor"])
    cols = np.arange(f["z0"] + 0.6, f["z1"] - win["w"] * win["pitch"], win["pitch"]) - zr
    cols = cols[cols > so.NEAR]
    if len(floors) and len(cols):
        yy, zz = np.meshgrid(floors, cols, indexing="ij")
        yy, zz = yy.ravel(), zz.ravel()
        y1, z2 = yy + win["h"] * win["floor"], zz + win["w"] * win["pitch"]
        quads = p.px(x, np.stack([yy, y1, y1, yy], 1), np.stack([zz, zz, z2, z2], 1))
        p.fill(quads, so.BUILDING, win["color"])
    if win["shop"]:
        p.poly(x, [0.3] * 4 + [win["floor"] - 0.6] * 4, zl, so.BUILDING, win["shop_color"])


def _band(p: so.Painter, x: float, lo, hi, zs: np.ndarray, cls: int, rgb) -> None:
    """Fill the plane X = x between heights ``lo`` and ``hi`` (scalars or per-``zs`` arrays)."""
    p.fill(np.concatenate([p.px(x, lo, zs), p.px(x, hi, zs)[::-1]]), cls, rgb)


def _boundary(p: so.Painter, b: dict, zr: float) -> None:
    """A wall, fence or hedge along the sidewalk's outer edge."""
    z0, z1 = max(b["z0"] - zr, so.NEAR), b["z1"] - zr
    if z1 <= so.NEAR:
        return
    x, h = b["x"], b["h"]
    p.depth(z0)
    zs = np.linspace(z0, z1, 7)
    if b["kind"] == "hedge":
        _band(p, x, 0.0, h * b["bumps"], zs, so.VEGETATION, b["green"])
    elif b["kind"] == "wall":
        _band(p, x, 0.0, h, zs, so.WALL, b["color"])
        _band(p, x, h - 0.12, h, zs, so.WALL, so.shade(b["color"], 1.15))  # coping
    elif b["style"] == 0:  # solid wooden planks
        _band(p, x, 0.05, h, zs, so.FENCE, b["color"])
    else:  # close bars, or posts with rails
        step, wid = (0.14, 0.05) if b["style"] == 1 else (2.4, 0.1)
        zz = np.arange(b["z0"], b["z1"], step) - zr
        zz = zz[zz > so.NEAR]
        posts = p.px(x, np.array([0, h, h, 0.0]), np.stack([zz, zz, zz + wid, zz + wid], 1))
        p.fill(posts, so.FENCE, b["color"])
        for y in (0.15, h - 0.1) if b["style"] == 1 else (0.3 * h, 0.6 * h, h - 0.08):
            _band(p, x, y, y + 0.07, zs, so.FENCE, b["color"])


def _treeline(p: so.Painter, t: dict, zr: float, k: int) -> None:
    """A belt of trees behind a park or open lot."""
    z0, z1 = max(k * SEG - zr, so.NEAR), (k + 1) * SEG - zr
    if z1 > so.NEAR:
        p.depth(z0)
        _band(
            p, t["x"], 0.0, t["h"] * t["bumps"], np.linspace(z0, z1, 7), so.VEGETATION, t["color"]
        )


def _draw_object(p: so.Painter, z: float, kind: str, x: float, q: dict) -> None:
    if kind == "vehicle":
        so.draw_vehicle(p, x, z, q)
        return
    coarse = p.f / z < 12.0  # under ~20 px tall: fewer parts, same silhouette and labels
    if kind == "person":
        p.sprite(x, z, sp.person_parts(q, coarse=coarse))
    elif kind == "two":
        p.sprite(x, z, sp.two_wheeler_parts(q, coarse), mirror=q["mirror"])
    elif kind == "pole":
        p.sprite(x, z, sp.pole_parts(q, coarse))
    elif kind == "tree":
        p.sprite(x, z, sp.tree_parts(q, p.f / z < 30.0))  # crowns are big: coarse until ~60 px


def _paint(world: World, size: tuple[int, int], z_cam: float, t: float) -> tuple:
    """Draw image and labels (before lighting, texture and noise) at camera position z_cam."""
    h, w = size
    canvas = np.empty((h, w, 4), np.uint8)
    st = world.style
    p = so.Painter(canvas, _camera(world, h, w), st["fog"], st["fog_k"])
    p.road_shadow = so.shade(world.road_color, 0.35)
    p.road = (world.left, world.right)
    _sky(p, world)
    _skyline(p, world)
    _ground(p, world, z_cam)
    ks = range(int((z_cam + so.NEAR) // SEG), int((z_cam + Z_FAR) // SEG) + 1)
    for k in reversed(ks):
        for side in (-1, 1):
            _ground_details(p, world, world.segment(k, side), side, z_cam)
    _marks(p, world, z_cam)
    objects = []
    for k in reversed(ks):  # side structures, far segments first
        for side in (-1, 1):
            seg = world.segment(k, side)
            if seg["treeline"] is not None:
                _treeline(p, seg["treeline"], z_cam, k)
            for zt, x, q in sorted(seg.get("back_trees", []), reverse=True):
                _draw_object(p, zt - z_cam, "tree", x, q)
            for f in reversed(seg["facades"]):
                _facade(p, f, side, z_cam)
            if seg["boundary"] is not None:
                _boundary(p, seg["boundary"], z_cam)
            for zo, kind, x, q in seg["objects"]:
                if kind == "person":  # pedestrians stroll back and forth around their spot
                    zo = zo + 2.5 * np.sin(t * 0.5 + q["phase"])
                    q = {**q, "phase": q["phase"] + 6.0 * t}
                objects.append((zo - z_cam, kind, x, q))
    span = Z_FAR + 20.0
    for car in world.traffic:
        z = (car["z0"] + car["dv"] * t) % span - 10.0
        if z < 4.0 and abs(car["x"] - p.cam_x) < 2.0:
            continue  # nothing drives inside our own bonnet
        q = car["thing"]
        if q.get("rider"):
            q = {**q, "rider": {**q["rider"], "phase": q["rider"]["phase"] + 8.0 * t}}
        objects.append((z, "vehicle" if "w" in q else "two", car["x"], q))
    objects.sort(key=lambda o: -o[0])
    for z, kind, x, q in objects:
        if so.NEAR <= z <= Z_FAR:
            _draw_object(p, z, kind, x, q)
    return cv2.cvtColor(canvas, cv2.COLOR_RGBA2RGB), np.ascontiguousarray(canvas[..., 3])


def _finish(img: np.ndarray, lab: np.ndarray, world: World, r: np.random.Generator) -> np.ndarray:
    """Texture, lighting, haze veil, blur and sensor noise (image only)."""
    h, w = lab.shape
    st = world.style
    bank = _noise_bank(h, w)
    oy, ox = r.integers(0, h + 1, 2), r.integers(0, w + 1, 2)
    mid = cv2.resize(r.standard_normal((max(2, h // 8), max(2, w // 8)), np.float32), (w, h))
    amp = np.zeros((2, 256, 1), np.float32)  # per-class strengths, jittered per scene
    amp[0, :19, 0], amp[1, :19, 0] = _FINE[:19] * st["texture"][0], _MID[:19] * st["texture"][1]
    # OpenCV rather than numpy for the per-pixel passes: several times faster on 1-2 cores.
    fine = bank[oy[0] : oy[0] + h, ox[0] : ox[0] + w]
    lum = cv2.add(cv2.multiply(fine, cv2.LUT(lab, amp[0])), cv2.multiply(mid, cv2.LUT(lab, amp[1])))
    out = cv2.add(img, cv2.cvtColor(lum, cv2.COLOR_GRAY2RGB), dtype=cv2.CV_32F)
    # Lighting, colour cast and a uniform haze veil in one affine pass per pixel.
    gain = st["gain"] * (1 - st["veil"]) * np.asarray(st["cast"])
    bias = np.asarray(st["fog"]) * st["veil"]
    out = cv2.transform(out, np.concatenate([np.diag(gain), bias[:, None]], 1))
    if st["vignette"]:
        vig = cv2.cvtColor(1.0 - st["vignette"] * _radius2(h, w), cv2.COLOR_GRAY2RGB)
        out = cv2.multiply(out, vig)
    sigma = st["blur"] * w / 1024
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if st["motion"]:
        n = max(3, int(st["motion"] * w) | 1)
        kernel = np.zeros((n, n), np.float32)
        if r.random() < 0.5:
            kernel[n // 2] = 1.0 / n
        else:
            kernel[:, n // 2] = 1.0 / n
        out = cv2.filter2D(out, -1, kernel)
    noise = bank[oy[1] : oy[1] + h, ox[1] : ox[1] + w] * np.float32(st["noise"])
    rgb = cv2.add(out, cv2.cvtColor(noise, cv2.COLOR_GRAY2RGB), dtype=cv2.CV_8U)  # saturates
    lut = (255.0 * (np.arange(256) / 255.0) ** st["gamma"]).astype(np.uint8)
    return cv2.LUT(rgb, lut)


def render_scene(seed: int, size: tuple[int, int] = (256, 512)) -> tuple[np.ndarray, np.ndarray]:
    """Render one street scene.

    Args:
        seed: scene seed; the same seed and size always give the same arrays.
        size: (height, width) in pixels, any size from 8x8 up.

    Returns:
        ``(rgb, labels)``: (H, W, 3) uint8 RGB image and (H, W) uint8 Cityscapes train ids.
    """
    return SceneSequence(seed, size).frame(0)


class SceneSequence:
    """A moving sequence (camera driving forward, objects moving) for demos and benchmarks.

    Frame ``t`` is the street at ``t / 30`` seconds; the camera moves at a per-seed speed of
    6-14 m/s, traffic at its own, pedestrians walk. Frames are deterministic by (seed, size, t).
    """

    def __init__(self, seed: int = 0, size: tuple[int, int] = (512, 1024)) -> None:
        self.seed = seed
        self.size = _check_size(size)
        self.world = World(seed)

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(rgb, labels) at time step ``t`` (frames at 30 per second)."""
        secs = t / FPS
        img, lab = _paint(self.world, self.size, self.world.speed * secs, secs)
        rgb = _finish(img, lab, self.world, rng_for(self.seed, 6, t))
        return rgb, lab
