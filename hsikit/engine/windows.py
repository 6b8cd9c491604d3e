"""Window planning: cover a scene with core tiles and read each with a halo (overlap-tile).

Each :class:`Tile` has a *core* (the pixels it writes; cores partition the scene) and a *read*
window: the core grown by ``halo`` pixels on every side, clipped to the scene; what the clip cut
off is restored by padding (reflection), so every tile reaches the method with the same shape
``(tile + 2 * halo)`` squared and the method never sees an artificial edge inside the scene.
Keeping only the core of each result (centre-crop) makes tiled output equal to whole-scene output
for any method whose receptive field radius is at most ``halo``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rasterio.windows import Window


@dataclass(frozen=True)
class Tile:
    """One tile: core window, read window and the padding that makes the read window full size.

    All offsets are in pixels of the scene; ``pad_*`` are the pixels to add on each side of the
    read window; ``crop_*`` locate the core inside the padded tile.
    """

    index: int
    core: Window
    read: Window
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int

    @property
    def crop(self) -> tuple[slice, slice]:
        """(rows, cols) slices of the core inside the padded tile."""
        top = self.pad_top + int(self.core.row_off - self.read.row_off)
        left = self.pad_left + int(self.core.col_off - self.read.col_off)
        return slice(top, top + int(self.core.height)), slice(left, left + int(self.core.width))


def plan_tiles(height: int, width: int, tile: int = 256, halo: int = 16) -> list[Tile]:
    """Tiles covering a ``height`` x ``width`` scene, row-major.

    Parameters
    ----------
    height, width
        Scene size in pixels.
    tile
        Core edge in pixels (clipped to the scene size; edge tiles are smaller and padded).
    halo
        Context pixels read on each side of a core.

    Returns
    -------
    list of Tile
        Cores partition the scene; every padded tile is ``min(tile, ...) + 2 * halo`` square
        (``th + 2 * halo`` by ``tw + 2 * halo`` with ``th = min(tile, height)``).
    """
    if tile < 1 or halo < 0:
        raise ValueError(f"tile must be >= 1 and halo >= 0, got tile={tile}, halo={halo}")
    th, tw = min(tile, height), min(tile, width)
    tiles: list[Tile] = []
    for r0 in range(0, height, th):
        for c0 in range(0, width, tw):
            ch, cw = min(th, height - r0), min(tw, width - c0)
            # a full-size window around the core: extend by the halo and by the shortfall at the edge
            want_r0, want_r1 = r0 - halo, r0 + th + halo
            want_c0, want_c1 = c0 - halo, c0 + tw + halo
            rr0, rr1 = max(want_r0, 0), min(want_r1, height)
            cc0, cc1 = max(want_c0, 0), min(want_c1, width)
            tiles.append(
                Tile(
                    index=len(tiles),
                    core=Window(c0, r0, cw, ch),
                    read=Window(cc0, rr0, cc1 - cc0, rr1 - rr0),
                    pad_top=rr0 - want_r0,
                    pad_bottom=want_r1 - rr1,
                    pad_left=cc0 - want_c0,
                    pad_right=want_c1 - cc1,
                )
            )
    return tiles
