"""Tiled engine: plan windows with a halo, run a method on batches, centre-crop, stream to a sink."""

from hsikit.engine.run import ArraySink, Cancelled, RunStats, run_tiled
from hsikit.engine.windows import Tile, plan_tiles

__all__ = ["ArraySink", "Cancelled", "RunStats", "Tile", "plan_tiles", "run_tiled"]
