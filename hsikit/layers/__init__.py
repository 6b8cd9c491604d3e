"""Shared spectral-spatial building blocks of the model zoo.

Each block lives in its own module (``s3conv``, ``gssa``, ``smffn``, ``essa``, ``selective_scan``,
``morphology``) with a plain PyTorch reference; blocks with a fused Triton kernel call it through
:mod:`hsikit.layers.kernels.dispatch`. Models import the blocks from their modules; they never
redefine them.
"""
