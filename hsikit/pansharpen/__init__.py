"""Pansharpening: fuse a hyperspectral (or multispectral) cube with a PAN image.

* :mod:`hsikit.pansharpen.classical` - bicubic (EXP), GSA, BT-H, MTF-GLP, MTF-GLP-FS, MTF-GLP-HPM on
  torch tensors (CPU or CUDA, batched windows), split into scene statistics (``fit``) and fusion
  (``apply``);
* :mod:`hsikit.pansharpen.protocols` - reduced-resolution (Wald) and full-resolution evaluation;
* :mod:`hsikit.pansharpen.grids` - the grid checks of a pair;
* :mod:`hsikit.pansharpen.api` - :func:`~hsikit.pansharpen.api.pansharpen`, files or cubes in, a
  georeferenced COG out.

This package is also callable: once it is imported, the attribute ``hsikit.pansharpen`` is this package
(Python binds sub-packages over the lazy API function of the same name), so calling it forwards to
:func:`hsikit.pansharpen.api.pansharpen`. See ``docs/pansharpen.md``.
"""

from __future__ import annotations

from hsikit._callable import callable_package

from hsikit.pansharpen.classical import METHODS, apply, fit, fuse


callable_package(__name__, "hsikit.pansharpen.api", "pansharpen")

__all__ = ["METHODS", "apply", "fit", "fuse"]
