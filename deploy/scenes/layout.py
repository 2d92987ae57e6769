"""Where things are in a procedural street: street, camera, style, segments and traffic.

A world is pure data drawn from its seed; :mod:`.scenes` projects and paints it at any size. The
street is cut into 12 m segments along Z, each generated from its own ``(seed, k, side)`` random
stream, so a sequence can drive forward forever and every segment looks the same whenever it is
seen. Appearance varies per instance (colours, sizes, textures), never a class-colour lookup.
"""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np

from . import objects as so
from . import sprites as sp
from .objects import jitter

SEG = 12.0  # metres of street per segment
Z_FAR = 120.0  # metres: the last segment drawn; a distant skyline closes the view
FPS = 30.0

BUILDINGS = [
    (200, 185, 160),
    (150, 75, 60),
    (130, 130, 130),
    (220, 218, 210),
    (120, 90, 70),
    (75, 75, 80),
    (95, 112, 130),
    (210, 190, 120),
    (200, 150, 140),
    (170, 160, 150),
]
WALLS = [(160, 160, 155), (140, 80, 65), (175, 165, 140), (95, 95, 95), (120, 115, 100)]
FENCES = [(120, 125, 130), (60, 100, 70), (140, 105, 70), (215, 215, 210), (60, 60, 62)]
GREENS = [(60, 100, 40), (90, 120, 50), (40, 80, 40), (110, 130, 60), (75, 95, 55)]
AUTUMN = [(170, 120, 40), (150, 70, 30), (190, 160, 60)]
TERRAINS = [(95, 140, 60), (130, 150, 70), (150, 135, 95), (120, 100, 70), (140, 140, 120)]
SIDEWALKS = [(165, 165, 160), (185, 175, 155), (150, 95, 85), (120, 120, 118), (200, 195, 185)]
SKIES = {  # (top, horizon)
    "clear": ((55, 105, 185), (170, 200, 230)),
    "overcast": ((150, 155, 165), (200, 203, 208)),
    "dusk": ((70, 80, 140), (240, 165, 115)),
    "haze": ((175, 185, 200), (215, 215, 212)),
}


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent numpy stream for (seed, keys) (noise fields)."""
    return np.random.default_rng([int(seed) % (1 << 63), *keys])


class Rng(random.Random):
    """Python's Mersenne Twister with a few numpy-like helpers.

    About 10x cheaper per scalar draw than numpy, which matters because a scene makes thousands
    of small draws. Seeded by a stable hash of (seed, keys), so each segment has its own stream.
    """

    def __init__(self, seed: int, *keys: int) -> None:
        digest = hashlib.blake2b(repr((int(seed), *keys)).encode(), digest_size=8).digest()
        super().__init__(int.from_bytes(digest, "little"))

    def integers(self, lo: int, hi: int | None = None) -> int:
        return self.randrange(lo) if hi is None else self.randrange(lo, hi)

    def normal(self, mu: float, sigma: float) -> float:
        return self.gauss(mu, sigma)

    def pick(self, options: list, p: list[float]):
        return self.choices(options, weights=p)[0]

    def uniforms(self, lo: float, hi: float, n: int) -> np.ndarray:
        return np.array([self.uniform(lo, hi) for _ in range(n)])

    def poisson(self, lam: float) -> int:
        k, t, limit = 0, self.random(), math.exp(-lam)
        while t > limit:
            k += 1
            t *= self.random()
        return k


class World:
    """Street, camera, style, segments and traffic of one seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        r = Rng(seed, 1)
        lw = r.uniform(2.8, 3.6)
        nr, nl = r.integers(1, 4), r.choice([0, 1, 1, 2, 2, 3])
        park_r, park_l = r.random() < 0.4, r.random() < 0.3 and nl > 0
        self.lane_w, self.lanes = lw, (nl, nr)
        self.right = nr * lw + 2.2 * park_r  # road edges
        self.left = -(nl * lw + 2.2 * park_l) if nl else -2.2 * park_l - 0.5
        self.parking = {1: park_r, -1: park_l}
        self.sidewalk = {1: r.uniform(1.5, 5.0), -1: r.uniform(1.5, 5.0)}
        # A grass verge between curb and sidewalk on some streets (terrain, with the trees in it).
        self.verge = {d: r.uniform(0.8, 2.5) if r.random() < 0.3 else 0.0 for d in (1, -1)}
        lane = r.integers(nr)
        self.cam = {
            "x": (lane + 0.5) * lw + r.normal(0, 0.25),
            "height": r.uniform(1.15, 1.8),
            "f": r.uniform(0.5, 0.85),  # times the image width
            "hy": r.uniform(0.36, 0.52),  # times the image height
            "cx": 0.5 + r.uniform(-0.08, 0.08),
            "curve": r.uniform(-0.0012, 0.0012) if r.random() < 0.5 else 0.0,
        }
        self.speed = r.uniform(6.0, 14.0)  # m/s, for sequences
        road = r.uniform(55, 125)
        self.road_color = jitter(r, (road, road, road * r.uniform(0.95, 1.1)), 6)
        self.sidewalk_color = so.pick_color(r, SIDEWALKS, 12)
        self.curb_color = jitter(r, (185, 185, 180), 10)
        self.terrain_color = so.pick_color(r, TERRAINS, 15)
        self.verge_color = so.pick_color(r, TERRAINS[:2], 15)
        self.mark_color = jitter(r, (235, 235, 230), 10)
        self.center_color = self.mark_color if r.random() < 0.6 else jitter(r, (225, 180, 40), 10)
        self.dash = (r.uniform(2.0, 4.0), r.uniform(5.0, 10.0))  # length, period
        self.edge_lines = r.random() < 0.6
        self.crosswalk = r.uniform(8.0, 45.0) if r.random() < 0.3 else None
        self.joints = r.uniform(0.8, 3.0) if r.random() < 0.6 else 0.0  # paving joint spacing
        self.greens = AUTUMN if r.random() < 0.1 else GREENS
        self.style = self._style(Rng(seed, 2))
        self.skyline = self._skyline(Rng(seed, 3))
        self.traffic = self._traffic(Rng(seed, 4))
        self._segments: dict[tuple[int, int], dict] = {}

    @staticmethod
    def _style(r: Rng) -> dict:
        sky = r.choice(list(SKIES))
        top, hor = (jitter(r, c, 10) for c in SKIES[sky])
        fog_m = r.uniform(25, 70) if r.random() < 0.15 else math.exp(r.uniform(4.4, 7.3))
        fog = tuple(int(0.5 * a + 0.5 * b) for a, b in zip(hor, jitter(r, (190, 190, 190), 8)))
        return {
            "sky_top": top,
            "sky_horizon": hor,
            "fog": fog,
            "fog_k": 1.0 / fog_m,
            "gain": r.uniform(0.6, 1.3),
            "cast": r.uniforms(0.88, 1.12, 3),
            "gamma": r.uniform(0.8, 1.25),
            "veil": r.uniform(0.0, 0.15),
            "blur": r.uniform(0.0, 1.2),
            "noise": r.uniform(1.0, 8.0),
            "motion": r.uniform(0.003, 0.01) if r.random() < 0.2 else 0.0,
            "vignette": r.uniform(0.1, 0.45) if r.random() < 0.5 else 0.0,
            "texture": r.uniforms(0.5, 1.5, 38).reshape(2, 19),
            "shadow": (r.choice([-1, 1]), r.uniform(-4, 8), r.uniform(0.45, 0.75))
            if r.random() < 0.5
            else None,
        }

    def _skyline(self, r: Rng) -> list:
        items, x = [], -420.0
        while x < 420.0:
            w = r.uniform(8, 40)
            kind = r.pick(["building", "trees", "gap"], p=[0.55, 0.3, 0.15])
            h = r.uniform(5, 45) if kind == "building" else r.uniform(5, 15)
            color = (
                so.pick_color(r, BUILDINGS, 15)
                if kind == "building"
                else so.pick_color(r, self.greens)
            )
            items.append((kind, x, x + w, h, color))
            x += w
        return items

    def _traffic(self, r: Rng) -> list:
        nl, nr = self.lanes
        out = []
        for _ in range(r.integers(4, 14)):
            kind = r.pick(
                ["car", "truck", "bus", "motorcycle", "bicycle"], p=[0.6, 0.1, 0.08, 0.11, 0.11]
            )
            oncoming = nl > 0 and r.random() < nl / (nl + nr)
            if kind in ("car", "truck", "bus"):
                lane = r.integers(nl if oncoming else nr)
                x = (lane + 0.5) * self.lane_w * (-1 if oncoming else 1) + r.normal(0, 0.2)
                thing = so.sample_vehicle(r, kind, oncoming)
            else:
                x = (-(nl * self.lane_w) + 0.8) if oncoming else nr * self.lane_w - 0.8
                thing = sp.sample_two_wheeler(r, kind, rider=True)
            dv = -2 * self.speed + r.uniform(-3, 3) if oncoming else r.uniform(-3, 3)
            length = thing.get("L", 2.0) + 2.0
            for _ in range(4):  # keep vehicles in one lane from overlapping
                z0 = r.uniform(4, 130)
                if all(
                    abs(x - o["x"]) > 1.5
                    or abs(z0 - o["z0"]) > max(length, o["thing"].get("L", 2.0) + 2.0) + 3
                    for o in out
                ):
                    out.append({"x": x, "z0": z0, "dv": dv, "thing": thing})
                    break
        return out

    # -- segments ------------------------------------------------------------------------------
    def segment(self, k: int, side: int) -> dict:
        """Buildings, boundaries and street furniture of segment k on one side (cached)."""
        key = (k, side)
        if key not in self._segments:
            if len(self._segments) > 256:
                self._segments.clear()
            self._segments[key] = self._make_segment(Rng(self.seed, 5, k, side), k, side)
        return self._segments[key]

    def _make_segment(self, r: Rng, k: int, side: int) -> dict:
        z0, edge = k * SEG, self.right if side > 0 else self.left
        walk = edge + side * self.verge[side]  # inner edge of the sidewalk
        outer = walk + side * self.sidewalk[side]
        kind = r.pick(["building", "park", "open"], p=[0.6, 0.18, 0.22])
        seg: dict = {
            "kind": kind,
            "facades": [],
            "boundary": None,
            "objects": [],
            "treeline": None,
            "z0": z0,
            "patches": [],
            "manholes": [],
        }
        if side > 0:  # road surface details, generated once per segment
            for _ in range(r.randrange(3) if r.random() < 0.4 else 0):
                x = r.uniform(self.left, self.right - 1.0)
                z = r.uniform(z0, z0 + SEG - 2.0)
                seg["patches"].append(
                    (
                        x,
                        min(x + r.uniform(0.8, 4.0), self.right),
                        z,
                        z + r.uniform(1.0, 8.0),
                        r.uniform(0.75, 1.25),
                    )
                )
            if r.random() < 0.25:
                seg["manholes"].append(
                    (r.uniform(self.left + 1, self.right - 1), r.uniform(z0, z0 + SEG))
                )
        setback = 0.0 if kind == "building" and r.random() < 0.5 else r.uniform(1.0, 6.0)
        if kind == "open":
            setback = r.uniform(8.0, 25.0)
        if kind != "park" and not (kind == "open" and r.random() < 0.3):
            cuts = sorted(r.uniform(z0, z0 + SEG) for _ in range(r.integers(0, 3)))
            bounds = [z0, *cuts, z0 + SEG]
            base = BUILDINGS[r.integers(len(BUILDINGS))]
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                if b - a < 1.0:
                    continue
                color = jitter(
                    r, base if r.random() < 0.5 else BUILDINGS[r.integers(len(BUILDINGS))], 16
                )
                floor = r.uniform(2.8, 3.6)
                win = (
                    None
                    if r.random() < 0.1
                    else {
                        "floor": floor,
                        "pitch": r.uniform(1.8, 3.5),
                        "w": r.uniform(0.4, 0.75),
                        "h": r.uniform(0.4, 0.65),
                        "color": jitter(r, (60, 70, 85), 25),
                        "shop": r.random() < 0.4,
                        "shop_color": jitter(r, (70, 80, 90), 25),
                    }
                )
                seg["facades"].append(
                    {
                        "z0": a,
                        "z1": b,
                        "x": outer + side * setback,
                        "h": r.uniform(5.0, 30.0),
                        "color": color,
                        "win": win,
                    }
                )
        else:
            seg["treeline"] = {
                "x": outer + side * r.uniform(10, 30),
                "h": r.uniform(4, 12),
                "bumps": r.uniforms(0.6, 1.3, 7),
                "color": so.pick_color(r, self.greens, 12),
            }
        if setback > 0.5 and r.random() < 0.75:
            bkind = r.pick(["wall", "fence", "hedge"], p=[0.35, 0.45, 0.2])
            seg["boundary"] = {
                "kind": bkind,
                "x": outer,
                "h": r.uniform(0.6, 2.5),
                "style": r.integers(3),
                "color": so.pick_color(r, WALLS if bkind == "wall" else FENCES, 12),
                "bumps": r.uniforms(0.8, 1.2, 7),
                "green": so.pick_color(r, self.greens, 12),
                "z0": z0 + (r.uniform(0, 6) if r.random() < 0.3 else 0.0),
                "z1": z0 + SEG,
            }
        objs = seg["objects"]
        curb = edge + side * (self.verge[side] * r.uniform(0.3, 0.7) or r.uniform(0.3, 0.7))
        for kind_, p in (("lamp", 0.3), ("sign", 0.35), ("light", 0.22)):
            if r.random() < p:
                objs.append((z0 + r.uniform(0, SEG), "pole", curb, sp.sample_pole(r, side, kind_)))
        for _ in range(int(r.random() < 0.4) * r.integers(1, 3)):
            objs.append((z0 + r.uniform(0, SEG), "tree", curb, sp.sample_tree(r, self.greens)))
        if kind == "park" or (setback > 3 and r.random() < 0.5):
            for _ in range(r.integers(1, 5)):
                x = outer + side * r.uniform(
                    1.0, max(1.5, setback - 1.0) if kind != "park" else 12.0
                )
                seg["back_trees"] = seg.get("back_trees", []) + [
                    (z0 + r.uniform(0, SEG), x, sp.sample_tree(r, self.greens, True))
                ]
        for _ in range(r.poisson(0.9)):
            x = walk + side * r.uniform(0.4, max(0.6, self.sidewalk[side] - 0.3))
            objs.append((z0 + r.uniform(0, SEG), "person", x, sp.sample_person(r)))
        if r.random() < 0.12:
            x = walk + side * r.uniform(0.4, max(0.6, self.sidewalk[side] - 0.4))
            ridden = r.random() < 0.5
            objs.append(
                (z0 + r.uniform(0, SEG), "two", x, sp.sample_two_wheeler(r, "bicycle", ridden))
            )
        if self.parking[side]:
            z = z0 + r.uniform(-1, 3)
            while z < z0 + SEG and r.random() < 0.75:
                v = so.sample_vehicle(r, "truck" if r.random() < 0.08 else "car")
                # Kerbside, with the body and its road shadow inside the road edge.
                objs.append((z, "vehicle", edge - side * (v["w"] / 2 + 0.2), v))
                z += v["L"] + r.uniform(0.5, 4)
        if self.crosswalk is not None and k == 0 and side == 1:
            for _ in range(r.integers(0, 5)):
                x = r.uniform(self.left, self.right)
                objs.append(
                    (self.crosswalk + r.uniform(0, 3), "person", x, sp.sample_person(r, True))
                )
        return seg
