"""Fused Triton kernels of the building blocks; each has a PyTorch reference twin with the same
signature and is reached only through :mod:`hsikit.layers.kernels.dispatch`."""
