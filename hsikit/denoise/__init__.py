"""Denoising: :func:`hsikit.denoise.api.denoise` (scenes), classical baselines (:mod:`.classical`), HSDT (:mod:`.hsdt`)."""
