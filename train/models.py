"""The model zoo: ERFNet and the paper's efficient variants, any combination by name.

Names follow ``<encoder>[-sel<k>][-light]``:

- encoder ``erfnet`` (non-bt-1D), ``d`` (depthwise separable), ``dg<g>`` (grouped pointwise with g
  groups), ``dg<g>s`` (grouped and shuffled);
- ``-sel<k>`` leaves the first k of the 13 encoder blocks as ERFNet's dense non-bt-1D
  (the paper's "selective application");
- ``-light`` uses the light-weight decoder (1x1 conv + bilinear upsamplers, D-form blocks).

``create_model(name, num_classes, form)`` builds any of them; unknown names fail with a suggestion.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass

from torch import nn

from gradgroup.deploy.errors import InputError

from .blocks import (
    Downsampler,
    LightUpsampler,
    NonBottleneck1D,
    SeparableNonBottleneck,
    Upsampler,
)
from .grouping import Form

ENCODER_BLOCKS = 13  # 5 x NB(64) + 8 x NB(128)
_NAME = re.compile(
    r"^(?P<enc>erfnet|d|dg(?P<g>\d+)(?P<s>s)?)(?:-sel(?P<k>\d+))?(?P<light>-light)?$"
)

# The names `gradgroup models` lists: the paper's rows (* = applied to every encoder block) and
# their light-decoder ("proposed") forms. Any name the grammar accepts can still be built.
ZOO = (
    "erfnet", "d", "dg2", "dg4", "dg8", "dg2s", "dg4s", "dg8s",
    "d-light", "dg2-light", "dg4-light", "dg8-light", "dg2s-light", "dg4s-light", "dg8s-light",
)  # fmt: skip


@dataclass(frozen=True)
class ArchSpec:
    """A parsed architecture name."""

    name: str
    separable: bool  # encoder blocks in D form (False: ERFNet's non-bt-1D)
    groups: int = 1  # groups of the pointwise convs in the D-form encoder blocks
    shuffle: bool = False
    dense_blocks: int = 0  # first k encoder blocks left as non-bt-1D
    light_decoder: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def parse_arch(name: str) -> ArchSpec:
    """Parse an architecture name; raises InputError with a suggestion when it is not one."""
    match = _NAME.match(name.strip().lower())
    if not match:
        close = difflib.get_close_matches(name, ZOO, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(
            f"unknown model {name!r}{hint} (names are erfnet|d|dg<g>|dg<g>s with optional "
            "-sel<k> and -light, e.g. dg4s-light; see gradgroup models)"
        )
    groups = int(match["g"]) if match["g"] else 1
    if groups not in (1, 2, 4, 8, 16, 32, 64) or (match["g"] and groups < 2):
        raise InputError(
            f"model {name!r}: groups must be a power of two from 2 to 64, got {groups}"
        )
    dense = int(match["k"] or 0)
    if dense > ENCODER_BLOCKS:
        raise InputError(f"model {name!r}: -sel{dense} exceeds the {ENCODER_BLOCKS} encoder blocks")
    return ArchSpec(
        name=match.group(0),
        separable=match["enc"] != "erfnet",
        groups=groups,
        shuffle=bool(match["s"]),
        dense_blocks=dense if match["enc"] != "erfnet" else ENCODER_BLOCKS,
        light_decoder=bool(match["light"]),
    )


class ERFNet(nn.Module):
    """ERFNet (Romera et al.) with configurable encoder blocks and decoder."""

    def __init__(self, spec: ArchSpec, num_classes: int = 19, form: Form = Form.GROUPED) -> None:
        super().__init__()
        self.spec, self.num_classes, self.form = spec, num_classes, Form(form)
        self.initial_block = Downsampler(3, 16)
        layers: list[nn.Module] = [Downsampler(16, 64)]
        plan = [(64, 0.03, 1)] * 5 + [None] + [(128, 0.3, d) for d in (2, 4, 8, 16)] * 2
        index = 0
        for item in plan:
            if item is None:
                layers.append(Downsampler(64, 128))
                continue
            layers.append(self._encoder_block(index, *item))
            index += 1
        self.encoder = nn.Sequential(*layers)
        self.decoder = nn.Sequential(
            *self._decoder_stage(128, 64),
            *self._decoder_stage(64, 16),
        )
        self.output_conv = nn.ConvTranspose2d(16, num_classes, 2, stride=2)

    def _encoder_block(self, index: int, channels: int, dropout: float, dilation: int) -> nn.Module:
        if not self.spec.separable or index < self.spec.dense_blocks:
            return NonBottleneck1D(channels, dropout, dilation)
        return SeparableNonBottleneck(
            channels, dropout, dilation, self.spec.groups, self.spec.shuffle, self.form
        )

    def _decoder_stage(self, in_channels: int, out_channels: int) -> list[nn.Module]:
        if self.spec.light_decoder:
            up: nn.Module = LightUpsampler(in_channels, out_channels)
            blocks = [
                SeparableNonBottleneck(out_channels, 0.0, 1, form=self.form) for _ in range(2)
            ]
        else:
            up = Upsampler(in_channels, out_channels)
            blocks = [NonBottleneck1D(out_channels, 0.0, 1) for _ in range(2)]
        return [up, *blocks]

    def forward(self, x):  # noqa: D102 - (N, 3, H, W) -> (N, classes, H, W) logits
        return self.output_conv(self.decoder(self.encoder(self.initial_block(x))))


def create_model(name: str, num_classes: int = 19, form: Form | str = Form.GROUPED) -> ERFNet:
    """Build a zoo model by name.

    Args:
        name: architecture name, e.g. ``"erfnet"``, ``"dg4s"``, ``"dg4-sel5-light"``.
        num_classes: output classes.
        form: ``"gradual"`` (dense weights, alpha = 1, for gradual grouping) or ``"grouped"``.

    Raises:
        InputError: unknown name or impossible configuration.
    """
    if num_classes < 1:
        raise InputError(f"num_classes={num_classes} must be at least 1")
    try:
        form = Form(form)
    except ValueError:
        raise InputError(f"form {form!r} must be 'gradual' or 'grouped'") from None
    return ERFNet(parse_arch(name), num_classes, form)
