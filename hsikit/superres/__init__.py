"""Single-image super-resolution: bicubic and ESSAformer on a scene's eigen-images.

:func:`hsikit.superres.api.super_resolve` (also ``hsikit.super_resolve`` and ``hsikit super-resolve``)
streams a scene onto a grid ``scale`` times finer; :mod:`hsikit.superres.essaformer` is the network,
:mod:`hsikit.superres.subspace` the band-count-agnostic model built on it.
"""
