"""Denoising: :func:`hsikit.denoise.api.denoise` (scenes), classical baselines (:mod:`.classical`), HSDT (:mod:`.hsdt`).

``hsikit.denoise(...)`` is the API function, and ``hsikit.denoise`` is also this package once any of
its modules is imported (Python then sets the package as an attribute of ``hsikit``). So the package
itself is callable and forwards to :func:`hsikit.denoise.api.denoise`; both spellings do the same.
"""

from __future__ import annotations

from hsikit._callable import callable_package


callable_package(__name__, "hsikit.denoise.api", "denoise")
