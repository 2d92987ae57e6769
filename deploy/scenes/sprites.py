"""Sprites for the procedural scenes: people, riders, two-wheelers, poles, signs, lights, trees.

Each function turns an object's parameters (drawn by :mod:`.layout`) into a list of parts
``(kind, class_id, rgb, *geometry)`` in metres — ``u`` to the right, ``v`` up from the ground
point — that :meth:`.objects.Painter.sprite` scales by f/Z and fills. ``coarse`` gives a
cheaper version with the same silhouette for objects only a few pixels tall.
"""

from __future__ import annotations

import math

import numpy as np

from .objects import (
    BICYCLE,
    LIGHT,
    MOTORCYCLE,
    PERSON,
    POLE,
    RIDER,
    SIGN,
    VEGETATION,
    Color,
    any_color,
    jitter,
    pick_color,
    shade,
)

SKINS = [(240, 200, 170), (210, 160, 120), (160, 110, 75), (100, 65, 45), (230, 185, 150)]


def sample_person(r, side_view: bool | None = None) -> dict:
    """Height, clothes and gait of a pedestrian."""
    child = r.random() < 0.1
    return {
        "h": r.uniform(1.0, 1.3) if child else r.uniform(1.5, 1.95),
        "phase": r.uniform(0, 2 * np.pi),
        "side": r.random() < 0.5 if side_view is None else side_view,
        "skin": pick_color(r, SKINS, 8),
        "top": any_color(r),
        "hair": jitter(r, (50, 35, 25), 25),
        "legs": pick_color(r, [(40, 50, 90), (30, 30, 32), (90, 90, 95), (170, 150, 120)], 12),
        "skirt": any_color(r) if r.random() < 0.15 else None,
        "bag": any_color(r) if r.random() < 0.3 else None,
    }


def sample_two_wheeler(r, kind: str, rider: bool) -> dict:
    """A bicycle or motorcycle, with or without its rider."""
    q = {"kind": kind, "color": any_color(r), "mirror": bool(r.random() < 0.5), "rider": None}
    if rider:
        q["rider"] = {
            "phase": r.uniform(0, 2 * np.pi),
            "top": any_color(r),
            "legs": pick_color(r, [(40, 50, 90), (30, 30, 32), (90, 90, 95)], 12),
            "helmet": any_color(r),
            "helmet_on": r.random() < 0.5,
            "skin": pick_color(r, SKINS, 8),
        }
    return q


def sample_tree(r, greens: list, big: bool = False) -> dict:
    """Trunk and crown of a tree in one of ``greens``."""
    h = r.uniform(2.0, 4.5) if not big else r.uniform(3.0, 7.0)
    n = r.randrange(4, 10)
    rad = r.uniform(1.0, 2.8 if big else 2.0)
    u = r.random
    blobs = [(rad * (1.2 * u() - 0.6), 2 * rad * u(), rad * (0.4 + 0.4 * u())) for _ in range(n)]
    base = greens[r.randrange(len(greens))]
    return {
        "h": h,
        "tw": r.uniform(0.15, 0.4),
        "trunk": jitter(r, (85, 65, 50), 15),
        "blobs": blobs,
        "greens": [shade(base, 0.75 + 0.5 * u()) for _ in range(n)],
    }


def sample_pole(r, side: int, kind: str) -> dict:
    """A lamp post, sign post or traffic light on the ``side`` (-1 left, 1 right) of the road."""
    grey = pick_color(r, [(130, 130, 135), (70, 75, 80), (160, 160, 150), (60, 80, 65)], 10)
    q = {
        "kind": kind,
        "color": grey,
        "towards_road": -side,
        "w": r.uniform(0.1, 0.22),
        "h": r.uniform(6, 9) if kind == "lamp" else r.uniform(2.3, 4.5),
    }
    if kind == "sign":
        shapes = ["circle", "triangle", "rectangle", "diamond", "octagon"]
        faces = [(235, 235, 230), (30, 80, 170), (200, 30, 30), (240, 200, 30), (30, 120, 60)]
        q["signs"] = [
            (
                r.choice(shapes),
                pick_color(r, faces, 10),
                pick_color(r, faces[:3], 10),
                r.uniform(0.5, 0.9),
            )
            for _ in range(r.integers(1, 3))
        ]
        q["w"] = r.uniform(0.06, 0.1)
    elif kind == "light":
        q["arm"] = r.uniform(2.5, 6.0) if r.random() < 0.4 else 0.0
        q["body"] = pick_color(r, [(35, 35, 35), (60, 60, 55), (200, 170, 40)], 8)
        q["lit"] = r.integers(3)
        q["h"] = r.uniform(5.0, 6.0) if q["arm"] else r.uniform(2.6, 3.8)
    return q


def person_parts(q: dict, cls: int = PERSON, coarse: bool = False) -> list:
    """Walking person (front/back or side view) of height q['h'], swinging legs by q['phase']."""
    h, ph = q["h"], q["phase"]
    skin, top, legs, hair = q["skin"], q["top"], q["legs"], q["hair"]
    lw, hip, sh = 0.085 * h, 0.48 * h, 0.82 * h
    if coarse:
        return [
            ("poly", cls, legs, [(-0.1 * h, 0.0), (0.1 * h, 0.0), (0.1 * h, hip), (-0.1 * h, hip)]),
            (
                "poly",
                cls,
                top,
                [(-0.13 * h, hip), (0.13 * h, hip), (0.12 * h, sh), (-0.12 * h, sh)],
            ),
            ("disc", cls, skin, (0.0, 0.9 * h), 0.07 * h),
        ]
    parts = []
    if q["side"]:
        sw = 0.16 * h * math.sin(ph)
        for d in (sw, -sw):
            parts.append(("line", cls, legs, (0.0, hip), (d, 0.03 * h), lw))
        parts.append(
            ("poly", cls, top, [(-0.08 * h, hip), (0.08 * h, hip), (0.07 * h, sh), (-0.07 * h, sh)])
        )
        parts.append(("line", cls, top, (0.0, sh - 0.03 * h), (-0.7 * sw, 0.5 * h), 0.06 * h))
    else:
        gap = 0.05 * h + 0.02 * h * math.sin(ph)
        for d in (-gap, gap):
            parts.append(("line", cls, legs, (d, hip), (d * 1.2, 0.03 * h), lw))
        parts.append(
            ("poly", cls, top, [(-0.12 * h, hip), (0.12 * h, hip), (0.14 * h, sh), (-0.14 * h, sh)])
        )
        for d in (-1, 1):
            parts.append(
                (
                    "line",
                    cls,
                    top,
                    (d * 0.15 * h, sh - 0.02 * h),
                    (d * 0.17 * h, 0.5 * h),
                    0.055 * h,
                )
            )
    if q.get("skirt"):
        parts.append(
            (
                "poly",
                cls,
                q["skirt"],
                [
                    (-0.15 * h, 0.3 * h),
                    (0.15 * h, 0.3 * h),
                    (0.1 * h, hip + 0.05 * h),
                    (-0.1 * h, hip + 0.05 * h),
                ],
            )
        )
    parts.append(("disc", cls, skin, (0.0, 0.9 * h), 0.065 * h))
    parts.append(
        (
            "poly",
            cls,
            hair,
            [
                (-0.065 * h, 0.92 * h),
                (0.065 * h, 0.92 * h),
                (0.05 * h, 0.97 * h),
                (-0.05 * h, 0.97 * h),
            ],
        )
    )
    if q.get("bag"):
        parts.append(
            (
                "poly",
                cls,
                q["bag"],
                [
                    (0.12 * h, 0.45 * h),
                    (0.22 * h, 0.45 * h),
                    (0.22 * h, 0.6 * h),
                    (0.12 * h, 0.6 * h),
                ],
            )
        )
    return parts


def two_wheeler_parts(q: dict, coarse: bool = False) -> list:
    """A bicycle or motorcycle in side view, with its rider when q['rider'] is set."""
    moto = q["kind"] == "motorcycle"
    cls = MOTORCYCLE if moto else BICYCLE
    col, dark = q["color"], (28, 28, 30)
    r = 0.33 if moto else 0.34
    rear, front = ((-0.7, r), (0.7, r)) if moto else ((-0.52, r), (0.52, r))
    parts: list = []
    if coarse:
        t = 0.3 if moto else 0.05
        parts += [("ring", cls, dark, rear, r, t), ("ring", cls, dark, front, r, t)]
        parts.append(("line", cls, col, rear, (0.4, 0.9), 0.12 if moto else 0.05))
        if q.get("rider"):
            rq = q["rider"]
            parts.append(("line", RIDER, rq["top"], (-0.2, 0.9), (0.05, 1.5), 0.3))
            parts.append(("disc", RIDER, rq["helmet"], (0.1, 1.65), 0.13))
        return parts
    if moto:
        parts += [("disc", cls, dark, rear, r), ("disc", cls, dark, front, r)]
        parts += [("disc", cls, (120, 120, 125), rear, 0.45 * r)]
        parts += [("disc", cls, (120, 120, 125), front, 0.45 * r)]
        parts.append(
            (
                "poly",
                cls,
                col,
                [(-0.55, 0.55), (0.45, 0.5), (0.55, 0.85), (0.2, 0.95), (-0.25, 0.85), (-0.7, 0.8)],
            )
        )
        parts.append(
            ("poly", cls, (60, 60, 62), [(-0.3, 0.3), (0.25, 0.3), (0.2, 0.55), (-0.3, 0.55)])
        )
        parts.append(("line", cls, (90, 90, 95), (0.7, r), (0.5, 1.0), 0.06))
        seat, bar = (-0.25, 0.95), (0.5, 1.05)
    else:
        parts += [("ring", cls, dark, rear, r, 0.05), ("ring", cls, dark, front, r, 0.05)]
        crank, seat, head = (0.0, 0.3), (-0.15, 0.85), (0.4, 0.9)
        for a, b in (
            (rear, crank),
            (crank, seat),
            (seat, rear),
            (crank, head),
            (seat, head),
            (head, front),
        ):
            parts.append(("line", cls, col, a, b, 0.04))
        bar = (0.38, 1.02)
        parts.append(("line", cls, dark, head, bar, 0.035))
    if not q.get("rider"):
        return parts
    rq = q["rider"]
    hip = (seat[0], seat[1] + 0.05)
    shoulder = (hip[0] + 0.25, hip[1] + 0.55)
    knee = (hip[0] + 0.35, hip[1] - 0.15 + 0.05 * math.sin(rq["phase"]))
    foot = (0.05 + 0.12 * math.cos(rq["phase"]), 0.3 + 0.12 * math.sin(rq["phase"]))
    parts.append(("line", RIDER, rq["legs"], hip, knee, 0.13))
    parts.append(("line", RIDER, rq["legs"], knee, foot, 0.11))
    parts.append(("line", RIDER, rq["top"], hip, shoulder, 0.3))
    parts.append(("line", RIDER, rq["top"], shoulder, bar, 0.09))
    hc = (shoulder[0] + 0.05, shoulder[1] + 0.2)
    parts.append(("disc", RIDER, rq["helmet"] if moto or rq["helmet_on"] else rq["skin"], hc, 0.12))
    return parts


def pole_parts(q: dict, coarse: bool = False) -> list:
    """A pole carrying a street lamp, a sign or a traffic light (q['kind'])."""
    grey, ht, side = q["color"], q["h"], q["towards_road"]
    parts: list = [("line", POLE, grey, (0.0, 0.0), (0.0, ht), q["w"])]
    if q["kind"] == "lamp":
        tip = (1.6 * side, ht + 0.35)
        parts.append(("line", POLE, grey, (0.0, ht), tip, 0.08))
        parts.append(
            (
                "poly",
                POLE,
                shade(grey, 0.8),
                [
                    (tip[0] - 0.3, tip[1] - 0.15),
                    (tip[0] + 0.3, tip[1] - 0.15),
                    (tip[0] + 0.25, tip[1] + 0.05),
                    (tip[0] - 0.25, tip[1] + 0.05),
                ],
            )
        )
    elif q["kind"] == "sign":
        for k, (shape, face, rim, sz) in enumerate(q["signs"]):
            cy = ht - k * (sz + 0.1)
            parts += _sign(shape, face, rim, sz, cy)[: 1 if coarse else 2]
    else:  # traffic light, on the pole or hanging from an arm over the road
        u = 0.0
        if q["arm"]:
            u = q["arm"] * side
            parts.append(("line", POLE, grey, (0.0, ht), (u, ht), 0.1))
        body, lit = q["body"], q["lit"]
        top, bot = ht + (0.0 if q["arm"] else 0.9), ht - (0.9 if q["arm"] else 0.0)
        parts.append(
            (
                "poly",
                LIGHT,
                body,
                [(u - 0.17, bot), (u + 0.17, bot), (u + 0.17, top), (u - 0.17, top)],
            )
        )
        colours = [(230, 30, 25), (240, 170, 20), (40, 220, 90)]
        for i, c in enumerate([] if coarse else colours):
            on = c if i == lit else shade(c, 0.25)
            parts.append(("disc", LIGHT, on, (u, top - 0.15 - 0.3 * i), 0.1))
    return parts


def _sign(shape: str, face: Color, rim: Color, sz: float, cy: float) -> list:
    r = sz / 2
    if shape == "circle":
        return [("disc", SIGN, rim, (0.0, cy), r), ("disc", SIGN, face, (0.0, cy), 0.75 * r)]
    if shape == "triangle":
        out = [(-r, cy - 0.8 * r), (r, cy - 0.8 * r), (0.0, cy + r)]
        inn = [(-0.65 * r, cy - 0.55 * r), (0.65 * r, cy - 0.55 * r), (0.0, cy + 0.6 * r)]
        return [("poly", SIGN, rim, out), ("poly", SIGN, face, inn)]
    if shape == "diamond":
        return [
            ("poly", SIGN, rim, [(0.0, cy - r), (r, cy), (0.0, cy + r), (-r, cy)]),
            (
                "poly",
                SIGN,
                face,
                [(0.0, cy - 0.8 * r), (0.8 * r, cy), (0.0, cy + 0.8 * r), (-0.8 * r, cy)],
            ),
        ]
    a = np.linspace(0, 2 * np.pi, 8, endpoint=False) + np.pi / 8
    if shape == "octagon":
        return [
            ("poly", SIGN, rim, np.stack([r * np.cos(a), cy + r * np.sin(a)], -1)),
            ("poly", SIGN, face, np.stack([0.8 * r * np.cos(a), cy + 0.8 * r * np.sin(a)], -1)),
        ]
    wr = 1.4 * r  # rectangle
    return [
        ("poly", SIGN, rim, [(-wr, cy - r), (wr, cy - r), (wr, cy + r), (-wr, cy + r)]),
        (
            "poly",
            SIGN,
            face,
            [
                (-0.9 * wr, cy - 0.85 * r),
                (0.9 * wr, cy - 0.85 * r),
                (0.9 * wr, cy + 0.85 * r),
                (-0.9 * wr, cy + 0.85 * r),
            ],
        ),
    ]


def tree_parts(q: dict, coarse: bool = False) -> list:
    """A tree: trunk and a crown of overlapping discs (all vegetation, as Cityscapes labels it)."""
    parts: list = [("line", VEGETATION, q["trunk"], (0.0, 0.0), (0.0, q["h"]), q["tw"])]
    n = 3 if coarse else len(q["blobs"])
    for (u, v, r), c in zip(q["blobs"][:n], q["greens"][:n], strict=True):
        parts.append(("disc", VEGETATION, c, (u, q["h"] + v), r))
    return parts
