"""Procedural street scenes with Cityscapes train ids: the built-in data (no download).

- :func:`render_scene` ``(seed, size) -> (rgb, labels)``: one deterministic scene;
- :class:`SceneSequence`: a camera driving down one street, for demos and benchmarks.

Modules: :mod:`.render` (the painter's passes, lighting and sensor effects), :mod:`.layout`
(what stands where along a street), :mod:`.objects` (camera, painter, vehicles, buildings) and
:mod:`.sprites` (people, two-wheelers, poles, trees).
"""

from .render import SceneSequence, render_scene

__all__ = ["SceneSequence", "render_scene"]
