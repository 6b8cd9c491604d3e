"""``hsikit super-resolve``: super-resolve a scene onto a grid ``--scale`` times finer (float32 COG)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``super-resolve`` command to the CLI."""
    from hsikit.superres.api import DEFAULT_MODEL

    @app.command("super-resolve")
    def super_resolve(
        src: Annotated[Path, typer.Argument(help="Scene (any format hsikit reads).")],
        dst: Annotated[Path, typer.Argument(help="Output Cloud-Optimized GeoTIFF (.tif) on the refined grid, written atomically.")],
        scale: Annotated[int, typer.Option("--scale", help="Integer factor >= 2 (a learned model: the one it was trained for).")] = 3,
        model: Annotated[str, typer.Option(
            "--model", help="auto (the released learned model for --scale, else bicubic), bicubic (cubic convolution, "
            "any scale) or a learned model (essaformer-sub-x3: ESSAformer on the scene's eigen-images, x3; the best "
            "on the test split, docs/superres.md).")] = DEFAULT_MODEL,
        tile: Annotated[int | None, typer.Option("--tile", help="Tile core edge in input pixels (default: the model's).")] = None,
        overlap: Annotated[int | None, typer.Option("--overlap", help="Halo in input pixels (default: the model's).")] = None,
        batch_size: Annotated[int | None, typer.Option(
            "--batch-size", help="Tiles per method call (default: as many as fit 64 MB of output).")] = None,
        device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
        weights: Annotated[Path | None, typer.Option(
            "--weights", help="Weights folder (config.json + model.safetensors, e.g. a training run's export) for "
            "the learned --model, instead of its released weights.")] = None,
        overwrite: Annotated[bool, typer.Option("--overwrite/--no-overwrite", help="Replace an existing output.")] = True,
    ) -> None:
        """Super-resolve a scene onto a grid --scale times finer, keeping CRS, corner, wavelengths and nodata.

        Values are physical (scale/offset applied), float32, NaN nodata. Learned models refine the bands
        with bbl=1 and leave the others bicubic. Prints one summary line.

        Examples:

            hsikit super-resolve enmap_30m.tif enmap_10m.tif

            hsikit super-resolve scene.tif scene_x2.tif --scale 2 --model bicubic
        """
        from hsikit.superres.api import super_resolve as run

        result = run(src, scale, model, out=dst, tile=tile, overlap=overlap, batch_size=batch_size, device=device,
                     weights=weights, overwrite=overwrite)
        typer.echo(result.summary(src))
