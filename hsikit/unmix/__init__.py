"""Spectral unmixing: endmember extraction, abundance estimation, the RRLbS robust method, an
autoencoder, and :func:`hsikit.unmix.api.unmix`, which ties them to scenes and files.

Submodules: :mod:`~hsikit.unmix.abundances` (FCLS, NNLS, UCLS, SUnSAL), :mod:`~hsikit.unmix.endmembers`
(VCA, N-FINDR, ATGP, SiVM), :mod:`~hsikit.unmix.estimate_k` (HySime, HFC, NWHFC),
:mod:`~hsikit.unmix.robust_l21` (RRLbS), :mod:`~hsikit.unmix.autoencoder`, :mod:`~hsikit.unmix.reference`
(benchmark scenes with ground truth).

This package is also callable: once it is imported, the attribute ``hsikit.unmix`` is this package
(Python binds sub-packages over the lazy API function of the same name), so calling it forwards to
:func:`hsikit.unmix.api.unmix`.
"""

from __future__ import annotations

from hsikit._callable import callable_package


callable_package(__name__, "hsikit.unmix.api", "unmix")
