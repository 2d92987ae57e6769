"""Layer lists of the models TI published TDA4VM times for, built without torch or ONNX files.

The latency model (:mod:`gradgroup.deploy.estimate`) is fitted on TI's published rows, which give
a model name, input size and GMACs only; the fit needs each model's layers. These builders write
them down from the architectures' papers and reference configs, as :class:`Layer` records:

- exact (to the published GMACs within a few %): MobileNetV1, MobileNetV2 (x1.0, x1.4),
  MobileNetV3 large/small "lite" (TI's form: no squeeze-excite, ReLU), RegNetX 200MF-1.6GF,
  YOLOX-lite nano/tiny/s/m (CSPDarknet + PAFPN + decoupled head, stem conv for Focus),
  YOLOv5-ti-lite s6/m6/l6 (P6, four output levels);
- approximate: the SSD detectors' neck and head (FPN + depthwise-separable heads) are written in
  one generic form whose width is solved so that the total matches TI's GMACs; the backbone is
  exact. :func:`reference_layers` says which.

Names are keys of :data:`BUILDERS`; ``bench/soc_estimate.py`` maps the CSV's model names onto them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from .graph.stats import Layer


class Net:
    """A tiny shape-tracking builder: each call appends layers and moves the current tensor."""

    def __init__(self, h: int, w: int, c: int = 3) -> None:
        self.h, self.w, self.c = h, w, c
        self.layers: list[Layer] = []

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.h, self.w, self.c

    def at(self, shape: tuple[int, int, int]) -> Net:
        """Make ``shape`` (h, w, c) the current tensor (a branch or a saved feature map)."""
        self.h, self.w, self.c = shape
        return self

    def conv(self, cout: int, k: int | tuple[int, int] = 1, s: int = 1, g: int = 1) -> Net:
        """Conv k x k stride s, 'same' padding, groups g (+ fused BN / ReLU)."""
        kh, kw = (k, k) if isinstance(k, int) else k
        cin, h, w = self.c, math.ceil(self.h / s), math.ceil(self.w / s)
        kind = "dense" if g == 1 else "depthwise" if g == cin == cout else "grouped"
        macs = h * w * cout * (cin // g) * kh * kw
        self.layers.append(Layer(
            name=f"conv{len(self.layers)}", op="Conv", kind=kind, macs=macs, groups=g, cin=cin,
            cout=cout, kernel=(kh, kw), out_pixels=h * w, in_elems=self.h * self.w * cin,
            out_elems=h * w * cout, weight_elems=cout * (cin // g) * kh * kw + cout,
        ))  # fmt: skip
        self.h, self.w, self.c = h, w, cout
        return self

    def dw(self, k: int = 3, s: int = 1) -> Net:
        return self.conv(self.c, k, s, g=self.c)

    def other(self, op: str, inputs: int = 1, scale: float = 1.0) -> Net:
        """A layer without weights (Add, MaxPool, Resize) reading ``inputs`` tensors; the output
        is the current tensor resized by ``scale``."""
        h, w = math.ceil(self.h * scale), math.ceil(self.w * scale)
        self.layers.append(Layer(
            name=f"{op.lower()}{len(self.layers)}", op=op, kind="other",
            in_elems=self.h * self.w * self.c * inputs, out_elems=h * w * self.c,
        ))  # fmt: skip
        self.h, self.w = h, w
        return self

    def add(self) -> Net:
        return self.other("Add", inputs=2)

    def concat(self, cout: int) -> Net:
        """Concat to ``cout`` channels (input bytes = output bytes)."""
        self.layers.append(Layer(
            name=f"concat{len(self.layers)}", op="Concat", kind="other",
            in_elems=self.h * self.w * cout, out_elems=self.h * self.w * cout,
        ))  # fmt: skip
        self.c = cout
        return self

    def up(self) -> Net:
        return self.other("Resize", scale=2.0)

    def head(self, classes: int = 1000, hidden: tuple[int, ...] = ()) -> Net:
        """Global average pool and fully connected layers."""
        self.other("GlobalAveragePool", scale=1 / max(self.h, self.w))
        for n in (*hidden, classes):
            self.conv(n)
        return self


def _div(v: float, d: int = 8) -> int:
    """Channels rounded to a multiple of d, never down by more than 10 % (MobileNet rule)."""
    out = max(d, int(v + d / 2) // d * d)
    return out + d if out < 0.9 * v else out


# ---- classification backbones ------------------------------------------------------------
def mobilenet_v1(net: Net, width: float = 1.0) -> Net:
    net.conv(_div(32 * width), 3, 2)
    for c, s in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5,
                 (1024, 2), (1024, 1)):  # fmt: skip
        net.dw(3, s).conv(_div(c * width))
    return net


def mobilenet_v2(net: Net, width: float = 1.0, feats: list | None = None) -> Net:
    """Inverted residuals; with ``feats`` (SSD) the stride-16 and stride-32 stage outputs are
    collected and the final 1x1 conv to 1280 channels is left out."""
    net.conv(_div(32 * width), 3, 2)
    cfg = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip
    for t, c, n, s in cfg:
        for i in range(n):
            cin, cout, stride = net.c, _div(c * width), s if i == 0 else 1
            if t != 1:
                net.conv(cin * t)
            net.dw(3, stride).conv(cout)
            if stride == 1 and cin == cout:
                net.add()
        if feats is not None and c in (96, 320):
            feats.append(net.shape)
    return net if feats is not None else net.conv(_div(1280 * max(1.0, width)))


_V3_LARGE = ((3, 16, 16, 1), (3, 64, 24, 2), (3, 72, 24, 1), (5, 72, 40, 2), (5, 120, 40, 1),
             (5, 120, 40, 1), (3, 240, 80, 2), (3, 200, 80, 1), (3, 184, 80, 1), (3, 184, 80, 1),
             (3, 480, 112, 1), (3, 672, 112, 1), (5, 672, 160, 2), (5, 960, 160, 1),
             (5, 960, 160, 1))  # fmt: skip
_V3_SMALL = ((3, 16, 16, 2), (3, 72, 24, 2), (3, 88, 24, 1), (5, 96, 40, 2), (5, 240, 40, 1),
             (5, 240, 40, 1), (5, 120, 48, 1), (5, 144, 48, 1), (5, 288, 96, 2), (5, 576, 96, 1),
             (5, 576, 96, 1))  # fmt: skip


def mobilenet_v3(net: Net, large: bool = True) -> Net:
    """TI's lite form: no squeeze-excite, ReLU everywhere (kernels as in the paper)."""
    net.conv(16, 3, 2)
    for k, exp, c, s in _V3_LARGE if large else _V3_SMALL:
        cin = net.c
        if exp != cin:
            net.conv(exp)
        net.dw(k, s).conv(c)
        if s == 1 and cin == c:
            net.add()
    net.conv(960 if large else 576)
    return net.head(1000, (1280 if large else 1024,))


_REGNETX = {  # depths, widths, group width (Radosavovic et al. 2020, torchvision)
    "200mf": ((1, 1, 4, 7), (24, 56, 152, 368), 8),
    "400mf": ((1, 2, 7, 12), (32, 64, 160, 384), 16),
    "800mf": ((1, 3, 7, 5), (64, 128, 288, 672), 16),
    "1.6gf": ((2, 4, 10, 2), (72, 168, 408, 912), 24),
}


def regnetx(net: Net, size: str, feats: list | None = None) -> Net:
    depths, widths, gw = _REGNETX[size]
    net.conv(32, 3, 2)
    for depth, w in zip(depths, widths):
        for i in range(depth):
            x, s = net.shape, 2 if i == 0 else 1
            if i == 0 or x[2] != w:
                net.conv(w, 1, s).at(x)  # projection shortcut
            net.conv(w).conv(w, 3, s, g=w // gw).conv(w).add()
        if feats is not None:
            feats.append(net.shape)
    return net


# ---- detectors ---------------------------------------------------------------------------
def _csp(net: Net, cout: int, n: int, shortcut: bool = True) -> Net:
    """CSP layer / C3: two 1x1 branches, n bottlenecks on one, concat, 1x1."""
    x, hidden = net.shape, cout // 2
    net.conv(hidden).at(x).conv(hidden)
    for _ in range(n):
        net.conv(hidden).conv(hidden, 3)
        if shortcut:
            net.add()
    return net.concat(2 * hidden).conv(cout)


def _spp(net: Net, cout: int, pools: int = 3) -> Net:
    net.conv(net.c // 2)
    for _ in range(pools):
        net.other("MaxPool")
    return net.concat(net.c * (pools + 1)).conv(cout)


def yolox(net: Net, width: float, depth: float, classes: int = 80) -> Net:
    c, n = int(64 * width), max(round(3 * depth), 1)
    net.conv(c, 3, 2)  # TI's lite stem replaces Focus
    for mult, reps in ((2, n), (4, 3 * n), (8, 3 * n)):
        net.conv(c * mult, 3, 2)
        _csp(net, c * mult, reps)
    net.conv(c * 16, 3, 2)
    _spp(net, c * 16)
    _csp(net, c * 16, n, shortcut=False)
    net.conv(c * 8).up().concat(c * 16)  # lateral, up, concat with dark4
    _csp(net, c * 8, n, False)
    net.conv(c * 4).up().concat(c * 8)  # lateral, up, concat with dark3
    out3 = _csp(net, c * 4, n, False).shape
    net.conv(c * 4, 3, 2).concat(c * 8)
    out4 = _csp(net, c * 8, n, False).shape
    net.conv(c * 8, 3, 2).concat(c * 16)
    out5 = _csp(net, c * 16, n, False).shape
    hidden = int(256 * width)
    for level in (out3, out4, out5):
        net.at(level).conv(hidden)
        stem = net.shape
        net.conv(hidden, 3).conv(hidden, 3).conv(classes)
        net.at(stem).conv(hidden, 3).conv(hidden, 3).conv(4)
        net.conv(1, 1)
    return net


def yolov5_p6(net: Net, width: float, depth: float, classes: int = 80) -> Net:
    def ch(v: int) -> int:
        return _div(v * width)

    def rep(v: int) -> int:
        return max(round(v * depth), 1)

    net.conv(ch(64), 3, 2)  # TI's lite stem
    saved = []
    for c, n in ((128, 3), (256, 6), (512, 9), (768, 3)):
        net.conv(ch(c), 3, 2)
        _csp(net, ch(c), rep(n))
        saved.append(net.shape)
    net.conv(ch(1024), 3, 2)
    _csp(net, ch(1024), rep(3))
    _spp(net, ch(1024))
    laterals = []
    for c in (768, 512, 256):
        laterals.append(net.conv(ch(c)).shape)
        net.up().concat(2 * ch(c))
        _csp(net, ch(c), rep(3), False)
    outs = [net.shape]
    for c, lateral in zip((512, 768, 1024), reversed(laterals)):
        net.conv(net.c, 3, 2).concat(net.c + lateral[2])
        outs.append(_csp(net, ch(c), rep(3), False).shape)
    for level in outs:
        net.at(level).conv(3 * (classes + 5))
    return net


def _ssd_neck(net: Net, feats: list, width: int, fpn: bool, levels: int = 6,
              classes: int = 81, anchors: int = 6) -> Net:  # fmt: skip
    """Generic SSD neck and head: optional FPN, extra stride-2 levels, depthwise-separable heads."""
    maps = []
    if fpn:
        for f in feats:
            maps.append(net.at(f).conv(width).shape)
        for i in range(len(maps) - 1, 0, -1):
            net.at(maps[i]).up().at(maps[i - 1]).add()
        maps = [net.at(m).conv(width, 3).shape for m in maps]
    else:
        maps = list(feats)
    while len(maps) < levels:
        net.at(maps[-1]).conv(width // 2).dw(3, 2).conv(width)
        maps.append(net.shape)
    for m in maps:
        for outputs in (anchors * classes, anchors * 4):
            net.at(m).dw(3).conv(outputs)
    return net


def _ssd(backbone: Callable[[Net, list], Net], fpn: bool, taps: slice) -> Callable:
    def build(h: int, w: int, width: int) -> Net:
        net, feats = Net(h, w), []
        backbone(net, feats)
        return _ssd_neck(net, feats[taps], width, fpn)

    return build


def _regnetx_head(h: int, w: int, size: str) -> Net:
    return regnetx(Net(h, w), size).head()


def _regnetx_feats(net: Net, feats: list, size: str) -> Net:
    return regnetx(net, size, feats)


# name -> (builder(h, w) -> Net, exact?). The SSD necks' widths are solved to TI's GMACs.
BUILDERS: dict[str, tuple[Callable[..., Net], bool]] = {
    "mobilenet_v1": (lambda h, w: mobilenet_v1(Net(h, w)).head(), True),
    "mobilenet_v2": (lambda h, w: mobilenet_v2(Net(h, w)).head(), True),
    "mobilenet_v2_1.4": (lambda h, w: mobilenet_v2(Net(h, w), 1.4).head(), True),
    "mobilenet_v3_large_lite": (lambda h, w: mobilenet_v3(Net(h, w), True), True),
    "mobilenet_v3_small_lite": (lambda h, w: mobilenet_v3(Net(h, w), False), True),
    **{f"regnetx_{k}": (partial(_regnetx_head, size=k), True) for k in _REGNETX},
    "yolox_nano_lite": (lambda h, w: yolox(Net(h, w), 0.25, 0.33), True),
    "yolox_tiny_lite": (lambda h, w: yolox(Net(h, w), 0.375, 0.33), True),
    "yolox_s_lite": (lambda h, w: yolox(Net(h, w), 0.5, 0.33), True),
    "yolox_m_lite": (lambda h, w: yolox(Net(h, w), 0.75, 0.67), True),
    "yolov5s6_lite": (lambda h, w: yolov5_p6(Net(h, w), 0.5, 0.33), True),
    "yolov5m6_lite": (lambda h, w: yolov5_p6(Net(h, w), 0.75, 0.67), True),
    "yolov5l6_lite": (lambda h, w: yolov5_p6(Net(h, w), 1.0, 1.0), True),
    "ssd_mobilenetv2_lite": (_ssd(lambda n, f: mobilenet_v2(n, 1.0, f), False, slice(0, 2)), False),
    "ssd_mobilenetv2_fpn_lite": (_ssd(lambda n, f: mobilenet_v2(n, 1.0, f), True, slice(0, 2)),
                                 False),  # fmt: skip
    **{f"ssd_regnetx_{k}_fpn": (_ssd(partial(_regnetx_feats, size=k), True, slice(1, 4)), False)
       for k in ("200mf", "800mf", "1.6gf")},
}  # fmt: skip


def reference_layers(
    name: str, h: int, w: int, gmacs: float | None = None
) -> tuple[list[Layer], str]:
    """The layers of reference model ``name`` at h x w, and how they were obtained.

    Args:
        name: a key of :data:`BUILDERS`.
        h, w: input size.
        gmacs: TI's GMACs; the approximate (SSD) necks are widened or narrowed to match them.

    Returns:
        (layers, note): "architecture as published" or "neck width W solved to TI's GMACs".
    """
    build, exact = BUILDERS[name]
    if exact or gmacs is None:
        return (build(h, w) if exact else build(h, w, 128)).layers, "architecture as published"
    widths = range(16, 1025, 8)
    best = min(widths, key=lambda c: abs(sum(x.macs for x in build(h, w, c).layers) / 1e9 - gmacs))
    return build(h, w, best).layers, f"neck width {best} solved to TI's GMACs"
