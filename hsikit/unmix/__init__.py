"""Spectral unmixing: endmember extraction, abundance estimation, the RRLbS robust method, an
autoencoder, and :func:`hsikit.unmix.api.unmix` which ties them to scenes and files.

Import the submodules directly (``hsikit.unmix.abundances``, ``hsikit.unmix.endmembers``, ...);
``hsikit.unmix(...)`` is the task function.
"""
