"""``hsikit evaluate``: metrics of an output against a reference (raster, class map or unmixing)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer


def _format(report: dict[str, Any], kind: str) -> str:
    lines: list[str] = []
    if kind == "raster":
        units = report.get("units", {})
        for k, v in report.items():
            if k in ("units", "conventions"):
                continue
            val = f"{v:.6g}" if isinstance(v, float) else str(v)
            lines.append(f"{k:<26} {val:>12}  {units.get(k, '')}")
        c = report["conventions"]
        lines.append(f"(data range {c['data_range']:.6g}, ERGAS ratio {c['ratio']}, {c['bands_scored']} bands, "
                     f"{c['pixels_scored']} pixels scored, {c['pixels_masked']} masked)")
    elif kind == "classmap":
        lines.append(f"OA {100 * report['oa']:.2f} %   AA {100 * report['aa']:.2f} %   kappa {report['kappa']:.4f}   "
                     f"mIoU {100 * report['miou']:.2f} %   ({report['n_pixels']} labelled pixels)")
        lines.append(f"{'class':<20} {'support':>8} {'recall':>8} {'precision':>9} {'F1':>8}")
        for c in report["classes"]:
            fmt = lambda x: f"{x:.4f}" if isinstance(x, float) else str(x)  # noqa: E731
            lines.append(f"{c['name'][:20]:<20} {c['support']:>8} {fmt(c['recall']):>8} {fmt(c['precision']):>9} {fmt(c['f1']):>8}")
    else:
        for m in report["matching"]:
            sad = report.get("sad_per_endmember_rad")
            extra = f"  SAD {sad[m['reference']]:.4f} rad" if sad else ""
            lines.append(f"reference {m['reference']} ({m['name']}) <- estimate {m['estimate']}{extra}")
        for k in ("sad_mean_rad", "sad_mean_deg", "abundance_rmse", "abundance_rmse_mean_per_endmember", "endmember_rmse"):
            if k in report:
                lines.append(f"{k:<34} {report[k]:.6g}")
        lines.append(f"(matched by {report['match_criterion']})")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``hsikit evaluate``."""

    @app.command()
    def evaluate(
        output: Annotated[Path, typer.Argument(help="The result: a cube, a class map, or an abundance raster.")],
        reference: Annotated[Optional[Path], typer.Option("--reference", "-r", help="Reference cube for full-reference metrics.")] = None,
        labels: Annotated[Optional[Path], typer.Option(help="Labels to score a class map: a raster on its grid (0 = unlabelled) or a vector file (.gpkg/.shp/.geojson).")] = None,
        class_field: Annotated[Optional[str], typer.Option(help="Class attribute of vector labels (default: class, label, ...).")] = None,
        reference_abundances: Annotated[Optional[Path], typer.Option(help="Reference abundance raster/.mat (endmember, y, x).")] = None,
        endmembers: Annotated[Optional[Path], typer.Option(help="Estimated endmembers (.csv with a wavelength column, or .mat).")] = None,
        reference_endmembers: Annotated[Optional[Path], typer.Option(help="Reference endmembers (.csv or .mat).")] = None,
        key: Annotated[Optional[str], typer.Option(help="Variable name in OUTPUT when it is a .mat file.")] = None,
        reference_key: Annotated[Optional[str], typer.Option(help="Variable name in --reference-abundances (.mat).")] = None,
        endmember_key: Annotated[Optional[str], typer.Option(help="Variable name in --endmembers (.mat).")] = None,
        reference_endmember_key: Annotated[Optional[str], typer.Option(help="Variable name in --reference-endmembers (.mat).")] = None,
        match: Annotated[str, typer.Option(help="Endmember matching: auto, sad, abundance, none.")] = "auto",
        metrics: Annotated[str, typer.Option(help="Full-reference metrics, comma-separated: psnr, psnr_cube, ssim, sam, ergas, rmse, cc, uiqi, q2n, rase, sre.")] = "psnr,ssim,sam,ergas",
        ratio: Annotated[float, typer.Option(help="ERGAS resolution ratio (1 for denoising, 4 for 4x super-resolution).")] = 1.0,
        data_range: Annotated[str, typer.Option(help="PSNR/SSIM data range: a number, or auto (max - min of the reference).")] = "auto",
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        """Score an output against a reference; grids must match (same size, CRS, transform).

        Examples:

            hsikit evaluate denoised.tif --reference clean.tif --metrics psnr,ssim,sam --json

            hsikit evaluate classes.tif --labels labels.tif

            hsikit evaluate classes.tif --labels polygons.gpkg --class-field landcover

            hsikit evaluate abundances.tif --reference-abundances A_true.mat --endmembers endmembers.csv --reference-endmembers E.mat

            hsikit evaluate A.mat --key a_Tra --reference-abundances A.mat --reference-key a_GT --endmembers E.mat --endmember-key E_Tra --reference-endmembers E.mat --reference-endmember-key E_GT
        """
        from hsikit.cli import _echo_json
        from hsikit.errors import UsageError
        from hsikit.evaluate import api

        modes = [reference is not None, labels is not None, reference_abundances is not None or reference_endmembers is not None]
        if sum(modes) != 1:
            raise UsageError("give exactly one of --reference (cube), --labels (class map) or --reference-abundances/--reference-endmembers (unmixing)")
        if reference is not None:
            try:
                dr: float | str = float(data_range)
            except ValueError:
                dr = data_range
            report, kind = api.evaluate_raster(output, reference, metrics=metrics, data_range=dr, ratio=ratio), "raster"
        elif labels is not None:
            report, kind = api.evaluate_classmap(output, labels, class_field=class_field), "classmap"
        else:
            from hsikit.io import open_cube

            opts = {"key": key} if key and output.suffix.lower() == ".mat" else {}
            ref_opts = {"key": reference_key} if reference_key and reference_abundances and reference_abundances.suffix.lower() == ".mat" else {}
            abund = open_cube(output, **opts) if reference_abundances is not None else None
            ref_abund = open_cube(reference_abundances, **ref_opts) if reference_abundances is not None else None
            report = api.evaluate_unmixing(
                abund, ref_abund, endmembers=endmembers if reference_endmembers else None,
                reference_endmembers=reference_endmembers if endmembers else None,
                endmember_key=endmember_key, reference_endmember_key=reference_endmember_key, match=match,
            )
            kind = "unmixing"
        if as_json:
            _echo_json(report)
        else:
            typer.echo(_format(report, kind))
