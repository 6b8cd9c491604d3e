"""``hsikit denoise``: denoise a scene into a georeferenced float32 COG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``denoise`` command to the CLI."""
    from hsikit.denoise.api import DEFAULT_MODEL

    @app.command()
    def denoise(
        src: Annotated[Path, typer.Argument(help="Noisy scene (any format hsikit reads).")],
        dst: Annotated[Path, typer.Argument(help="Output Cloud-Optimized GeoTIFF (.tif), written atomically.")],
        model: Annotated[str, typer.Option(
            "--model", help="fasthyde (subspace + non-local means), lrmr (low-rank + sparse: stripes, dead lines, "
            "impulse) or a released learned model (hsdt-s-sub, hsdt-m-sub). Default: the best on the test split "
            "(docs/denoise.md).")] = DEFAULT_MODEL,
        sigma: Annotated[str, typer.Option(
            "--sigma", help="auto (per-band robust HySime estimate) or a noise sigma in physical units "
            "(reflectance 0-1 after scale/offset).")] = "auto",
        tile: Annotated[int, typer.Option("--tile", help="Tile edge in pixels.")] = 256,
        overlap: Annotated[int, typer.Option("--overlap", help="Halo (context pixels per tile side).")] = 16,
        batch_size: Annotated[int, typer.Option("--batch-size", help="Tiles per method call.")] = 4,
        device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
        bands: Annotated[str, typer.Option(
            "--bands", help="valid: denoise bands with bbl=1, pass the others through; all: every band.")] = "valid",
        sparse: Annotated[str, typer.Option(
            "--sparse", help="auto: find impulse, stripe and dead-line values and replace them before the "
            "method runs (for scenes with such defects; about a third of an LRMR pass of extra time); off: do not.")] = "off",
        weights: Annotated[Path | None, typer.Option(
            "--weights", help="Weights folder (config.json + model.safetensors, e.g. a training run's export) for "
            "the learned --model, instead of its released weights.")] = None,
        overwrite: Annotated[bool, typer.Option("--overwrite/--no-overwrite", help="Replace an existing output.")] = True,
    ) -> None:
        """Denoise a hyperspectral scene tile by tile, keeping georeference, wavelengths and nodata.

        Values are physical (int16/uint16 reflectance with a scale tag become 0-1); the output is float32
        with NaN nodata; bad bands (bbl=0) are copied unchanged with --bands valid. Prints one summary
        line: model, bands, tiles, time, the noise sigma used and the share of values replaced as
        sparse noise.

        Examples:

            hsikit denoise scene.tif scene_clean.tif

            hsikit denoise noisy.tif clean.tif --model lrmr --tile 128

            hsikit denoise striped.tif clean.tif --sparse auto

            hsikit denoise enmap.tif clean.tif --sigma 0.01 --bands all --device cpu
        """
        from hsikit.denoise.api import denoise as run
        from hsikit.errors import UsageError

        if sigma.strip().lower() == "auto":
            value: str | float = "auto"
        else:
            try:
                value = float(sigma)
            except ValueError:
                raise UsageError(f"--sigma must be 'auto' or a number, got {sigma!r}") from None
        result = run(src, model, sigma=value, out=dst, tile=tile, overlap=overlap, batch_size=batch_size,
                     device=device, bands=bands, sparse=sparse, weights=weights, overwrite=overwrite)
        typer.echo(result.summary(src))
