"""The ``hsikit`` command line: a thin door onto the task functions.

Every bad input is reported as one line ``hsikit: error: <file>: <problem>`` on stderr with exit
status 2; ``--debug`` shows the Python traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer._click import exceptions as click_exc  # typer >= 0.25 ships its own click

from hsikit.errors import HsikitError
from hsikit.jsonable import json_default as _json_default

app = typer.Typer(
    name="hsikit",
    help="Hyperspectral remote-sensing toolkit: inspect, convert, clean, sharpen, classify and unmix cubes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_STATE = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")] = False,
) -> None:
    _STATE["debug"] = debug


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=_json_default))


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="Scene: GeoTIFF/COG, ENVI, EnMAP L2A product, .mat, PNG stack, NetCDF, Zarr.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    fmt: Annotated[Optional[str], typer.Option("--format", help="Force a reader (raster, envi, enmap, matlab, pngstack, netcdf, zarr).")] = None,
) -> None:
    """Describe a scene: sensor, shape, dtype, CRS, resolution, bounds, wavelengths, bad bands, nodata.

    Examples:

        hsikit info scene.tif

        hsikit info ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z.ZIP --json
    """
    from hsikit.describe import describe_path, format_description

    desc = describe_path(path, format=fmt)
    if as_json:
        _echo_json(desc)
    else:
        typer.echo(format_description(desc))


@app.command()
def convert(
    src: Annotated[Path, typer.Argument(help="Input scene (any format hsikit reads).")],
    dst: Annotated[Path, typer.Argument(help="Output: .tif (Cloud-Optimized GeoTIFF), .nc (NetCDF-4, CF) or .zarr.")],
    bands: Annotated[str, typer.Option(help="Bands to keep: all, valid, torchgeo202, or a list like 1-126,142-160.")] = "all",
    fmt: Annotated[Optional[str], typer.Option("--format", help="Output format: cog, gtiff, netcdf, zarr (default: from the suffix).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite/--no-overwrite", help="Replace an existing output.")] = True,
) -> None:
    """Convert a scene to COG, NetCDF or Zarr, keeping georeference and band metadata.

    The output is written under a temporary name and renamed when complete, so an existing file is
    never left half-written.

    Examples:

        hsikit convert scene.tif scene_cog.tif --bands valid

        hsikit convert ENMAP_L2A.ZIP scene.zarr --bands torchgeo202
    """
    import time

    from hsikit.io import open_cube, output_format, save_cube
    from hsikit.io.atomic import check_output

    out_fmt = output_format(dst, fmt)
    check_output(dst, overwrite=overwrite)
    t0 = time.perf_counter()
    cube = open_cube(src, bands=bands)
    save_cube(cube, dst, format=out_fmt, overwrite=overwrite)
    typer.echo(
        f"wrote {dst} ({out_fmt}, {cube.sizes['band']} bands, {cube.sizes['y']}x{cube.sizes['x']} px) "
        f"in {time.perf_counter() - t0:.1f} s"
    )


def _register_task_commands() -> None:
    """Add the task commands: every module in :mod:`hsikit.commands` with a ``register(app)``.

    Each task (evaluate, denoise, unmix, classify, ...) keeps its command in its own module there, a
    thin door onto that task's ``api.py``; importing the module must stay cheap (heavy imports go
    inside the command function).
    """
    import importlib
    import pkgutil

    import hsikit.commands as commands

    for mod in sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")):
        module = importlib.import_module(f"hsikit.commands.{mod}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_task_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hsikit`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        app(args=args, prog_name="hsikit", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except click_exc.ClickException as exc:
        exc.show()
        return exc.exit_code
    except typer.Abort:
        typer.echo("hsikit: aborted", err=True)
        return 130
    except HsikitError as exc:
        if debug:
            raise
        typer.echo(f"hsikit: error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("hsikit: interrupted", err=True)
        return 130
    except Exception as exc:  # a bug, not a user error: say so and point to --debug
        if debug:
            raise
        typer.echo(f"hsikit: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
