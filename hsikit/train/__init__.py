"""Training: Lightning modules and the shared training entry point of the learned models.

:mod:`hsikit.train.entry` (``fit``: resumable runs, checkpoints, logs), :mod:`hsikit.train.denoise`
(denoising data streams and the Lightning module).
"""
