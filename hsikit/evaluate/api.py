"""``hsikit evaluate``: score an output raster, class map or unmixing result against a reference.

The three evaluations open their inputs with :func:`hsikit.open`, check that the grids agree (same
size, CRS and transform, else a :class:`~hsikit.errors.MetadataError` that says how they differ),
align bands, mask nodata, and hand plain arrays to :mod:`hsikit.metrics`, whose reports they return
(JSON-ready dicts with units and conventions).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from hsikit.cube import BAND, grid_differences, to_reflectance
from hsikit.errors import InputError, MetadataError, UsageError
from hsikit.metrics.report import FULL_REFERENCE_METRICS, classification_report, full_reference_report, unmixing_report

DEFAULT_METRICS = ("psnr", "ssim", "sam", "ergas")


def _open(path: str | os.PathLike | xr.DataArray, **opts: Any) -> xr.DataArray:
    if isinstance(path, xr.DataArray):
        return path
    from hsikit.io import open_cube

    return open_cube(path, **opts)


def _label(obj: Any, fallback: str) -> str:
    return str(obj) if isinstance(obj, (str, os.PathLike)) else fallback


def check_same_grid(a: xr.DataArray, b: xr.DataArray, names: tuple[str, str]) -> None:
    """Raise :class:`MetadataError` naming every difference between the grids of ``a`` and ``b``."""
    diffs = grid_differences(a, b, names)
    if diffs:
        raise MetadataError(f"grids differ from {names[1]}: " + "; ".join(diffs), names[0])


def parse_metrics(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"psnr,ssim"`` or a sequence -> validated metric names (default psnr, ssim, sam, ergas)."""
    if spec is None:
        return DEFAULT_METRICS
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [n for n in names if n not in FULL_REFERENCE_METRICS]
    if unknown or not names:
        raise UsageError(f"unknown metrics {unknown or spec!r}; choose from {', '.join(FULL_REFERENCE_METRICS)}")
    return tuple(names)


def evaluate_raster(
    output: str | os.PathLike | xr.DataArray,
    reference: str | os.PathLike | xr.DataArray,
    *,
    metrics: str | Sequence[str] | None = None,
    data_range: float | str = "auto",
    ratio: float = 1.0,
) -> dict[str, Any]:
    """Full-reference metrics of ``output`` against ``reference`` (both (band, y, x) on one grid).

    Both cubes are converted to physical values (scale/offset applied, nodata -> NaN) so an int16
    x10000 reference scores against a float reflectance output. Bands flagged bad (``bbl``) in either
    cube are left out; pixels that are nodata in either are masked (window metrics uiqi and q2n then
    need a fully valid scene).

    Parameters
    ----------
    metrics
        Names (``"psnr,ssim,sam,ergas"`` by default) from :data:`FULL_REFERENCE_METRICS`.
    data_range
        For PSNR/SSIM: a number, or ``"auto"`` = max - min of the reference over the scored pixels
        and bands (recorded in the report's conventions).
    ratio
        ERGAS resolution ratio (1 for denoising, 4 for a 4x super-resolution).
    """
    names = ("output", "reference")
    label = _label(output, "output")
    est_c, ref_c = _open(output), _open(reference)
    for cube, name in ((est_c, label), (ref_c, _label(reference, "reference"))):
        if cube.dims != (BAND, "y", "x"):
            raise UsageError(f"expected a (band, y, x) cube, got dims {cube.dims}", name)
    if est_c.sizes[BAND] != ref_c.sizes[BAND]:
        raise MetadataError(f"{est_c.sizes[BAND]} bands vs {ref_c.sizes[BAND]} in the reference {_label(reference, '')}".rstrip(), label)
    check_same_grid(est_c, ref_c, names)
    good = est_c["bbl"].values.astype(bool) & ref_c["bbl"].values.astype(bool)
    if not good.any():
        raise MetadataError("no band is valid in both the output and the reference", label)
    est = np.asarray(to_reflectance(est_c).values, dtype=np.float32)[good]
    ref = np.asarray(to_reflectance(ref_c).values, dtype=np.float32)[good]
    valid = ~(np.isnan(est).any(axis=0) | np.isnan(ref).any(axis=0))  # a pixel scores only when every band has data
    if not valid.any():
        raise MetadataError("no pixel is valid in both the output and the reference", label)
    mask = None if valid.all() else valid
    est = np.where(np.isnan(est), 0, est)
    ref = np.where(np.isnan(ref), 0, ref)
    chosen = parse_metrics(metrics)
    if isinstance(data_range, str):
        if data_range.lower() != "auto":
            raise UsageError(f"data range must be a number or 'auto', got {data_range!r}")
        scored = ref[:, valid]
        data_range = float(scored.max() - scored.min())
        if data_range <= 0:
            raise MetadataError("the reference is constant: give --data-range explicitly", _label(reference, "reference"))
    report = full_reference_report(est, ref, chosen, data_range=float(data_range), ratio=ratio, mask=mask)
    report["conventions"].update(bands_scored=int(good.sum()), bands_excluded=int((~good).sum()),
                                 pixels_scored=int(valid.sum()), pixels_masked=int((~valid).sum()))
    return report


def _single_band(cube: xr.DataArray, path: str, *, first_of_many: bool = False) -> np.ndarray:
    """Band 1 of a class map (``first_of_many``: hsikit classify maps carry a confidence band 2) or of a label raster."""
    if cube.sizes[BAND] != 1 and not first_of_many:
        raise UsageError(f"a label raster has one band, this one has {cube.sizes[BAND]}", path)
    values = np.asarray(cube.isel({BAND: 0}).values)
    if np.issubdtype(values.dtype, np.floating):
        finite = np.isfinite(values)
        if not np.array_equal(values[finite], np.round(values[finite])):
            raise InputError("labels are not whole numbers", path)
    return values


def _class_names(cube: xr.DataArray) -> dict[int, str] | None:
    from hsikit.classify.labels import CLASS_NAMES_TAG, parse_class_names

    return parse_class_names(cube.attrs.get(CLASS_NAMES_TAG)) or None


def _vector_labels(labels: str | os.PathLike, pred_c: xr.DataArray, class_field: str | None,
                   map_names: dict[int, str] | None) -> tuple[np.ndarray, dict[int, str]]:
    """Rasterise vector labels on the class map's grid; codes follow the map's class names when both have names."""
    from hsikit.classify.labels import read_labels

    lab = read_labels(labels, pred_c, class_field=class_field)
    values, names = lab.values, dict(lab.names)
    if map_names and names:
        by_name = {v.lower(): k for k, v in map_names.items()}
        unknown = sorted({names[c] for c in lab.classes if names.get(c, "").lower() not in by_name})
        if unknown:
            raise MetadataError(f"label classes {unknown} are not classes of the map ({', '.join(map_names.values())})", labels)
        lut = np.zeros(int(values.max()) + 1, np.int64)  # label code -> map code (0 stays unlabelled)
        for c in lab.classes:
            lut[int(c)] = by_name[names[c].lower()]
        values = lut[values]
        names = dict(map_names)
    return values, names


def evaluate_classmap(
    classmap: str | os.PathLike | xr.DataArray,
    labels: str | os.PathLike | xr.DataArray,
    *,
    ignore_label: int = 0,
    class_field: str | None = None,
) -> dict[str, Any]:
    """OA, AA, kappa, mIoU and per-class scores of a class map (its band 1) against reference labels.

    ``labels`` is a label raster on the map's grid (0 = unlabelled) or a vector file (GeoPackage,
    Shapefile, GeoJSON) whose polygons are reprojected and rasterised onto the map's grid with
    their ``class_field`` (see :func:`hsikit.classify.labels.read_labels`). Unlabelled pixels
    (``ignore_label``) and nodata pixels of either input are not scored. Class names come from the
    class map's ``class_names`` tag (JSON ``{label: name}``, as ``hsikit classify`` writes it); vector
    classes given by name are matched to the map's codes by name.
    """
    from hsikit.classify.labels import VECTOR_SUFFIXES

    label = _label(classmap, "class map")
    pred_c = _open(classmap)
    pred = _single_band(pred_c, label, first_of_many=True)
    pred_c = pred_c.isel({BAND: [0]})
    map_names = _class_names(pred_c)
    skip = np.zeros(pred.shape, bool)
    if isinstance(labels, (str, os.PathLike)) and Path(labels).suffix.lower() in VECTOR_SUFFIXES:
        ref, vec_names = _vector_labels(labels, pred_c, class_field, map_names)
        map_names = map_names or vec_names or None
        arrays = [(pred_c, pred)]
    else:
        ref_c = _open(labels)
        check_same_grid(pred_c, ref_c, ("class map", "labels"))
        ref = _single_band(ref_c, _label(labels, "labels"))
        arrays = [(pred_c, pred), (ref_c, ref)]
    for cube, arr in arrays:
        nd = cube.rio.nodata
        if nd is not None:
            skip |= np.isnan(arr) if np.isnan(nd) else arr == nd
        if np.issubdtype(arr.dtype, np.floating):
            skip |= ~np.isfinite(arr)
    ref_i = np.where(skip, ignore_label, np.nan_to_num(ref)).astype(np.int64)
    pred_i = np.where(skip, ignore_label, np.nan_to_num(pred)).astype(np.int64)
    if not (ref_i != ignore_label).any():
        raise MetadataError("no labelled pixel to score (all unlabelled or nodata)", _label(labels, "labels"))
    scored = ref_i != ignore_label
    if (pred_i[scored] == ignore_label).any():
        # a labelled pixel the map leaves unclassified counts as an error, not as missing
        pred_i = np.where(scored & (pred_i == ignore_label), -1, pred_i)
    return classification_report(pred_i, ref_i, ignore_label=ignore_label, class_names=map_names)


def read_matrix(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, list[str] | None, np.ndarray | None]:
    """An endmember matrix from CSV or MATLAB: returns (values (bands, p), names or None, wavelength or None).

    CSV: a header row, one row per band; a first column named like ``wavelength`` is taken as the
    wavelengths (nm), the other columns are endmembers named by their headers. ``.mat``: the variable
    ``key`` (or the only 2-D numeric variable), oriented bands x endmembers (the longer side is bands).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found", p)
    if p.suffix.lower() == ".csv":
        with p.open(newline="") as f:
            rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
        if len(rows) < 2:
            raise InputError("CSV has no data rows", p)
        header, body = rows[0], rows[1:]
        try:
            data = np.array([[float(c) for c in r] for r in body], dtype=np.float64)
        except ValueError as exc:
            raise InputError(f"CSV has a non-numeric cell ({exc})", p) from None
        wl = None
        if "wavelength" in header[0].lower():
            wl, data, header = data[:, 0], data[:, 1:], header[1:]
        if data.shape[1] == 0:
            raise InputError("CSV has no endmember columns", p)
        return data, [h.strip() for h in header], wl
    if p.suffix.lower() == ".mat":
        from hsikit.io.matlab import matlab_variables, read_matlab_array

        variables = matlab_variables(p)
        if key is None:
            two_d = [v.name for v in variables.values() if v.numeric and len(v.shape) == 2 and min(v.shape) > 1]
            if len(two_d) != 1:
                raise UsageError(f"choose the variable with a key: 2-D numeric variables are {two_d or 'none'}", p)
            key = two_d[0]
        m = np.asarray(read_matlab_array(p, key), dtype=np.float64)
        if m.ndim != 2:
            raise InputError(f"variable {key!r} has shape {m.shape}, expected a bands x endmembers matrix", p)
        return (m if m.shape[0] >= m.shape[1] else m.T), None, None
    raise UsageError("endmembers must be a .csv or .mat file", p)


def evaluate_unmixing(
    abundances: str | os.PathLike | xr.DataArray | None = None,
    reference_abundances: str | os.PathLike | xr.DataArray | None = None,
    *,
    endmembers: str | os.PathLike | None = None,
    reference_endmembers: str | os.PathLike | None = None,
    endmember_key: str | None = None,
    reference_endmember_key: str | None = None,
    match: str = "auto",
) -> dict[str, Any]:
    """SAD, abundance RMSE and the matching of estimated to reference endmembers.

    Abundances are cubes (endmember, y, x) on one grid; endmembers are CSV or .mat matrices (bands x
    p). ``match``: ``"sad"`` (Hungarian on SAD), ``"abundance"``, ``"none"`` or ``"auto"`` (SAD when
    endmembers are given, else abundances). The report names the reference endmembers from the
    reference CSV header when there is one.
    """
    have_a = abundances is not None and reference_abundances is not None
    have_e = endmembers is not None and reference_endmembers is not None
    if not (have_a or have_e):
        raise UsageError("give --reference-abundances with the abundances and/or --endmembers with --reference-endmembers")
    a_est = a_ref = e_est = e_ref = None
    names: list[str] | None = None
    if have_a:
        ca, cr = _open(abundances), _open(reference_abundances)
        lab = _label(abundances, "abundances")
        if (ca.sizes["y"], ca.sizes["x"]) != (cr.sizes["y"], cr.sizes["x"]):
            raise MetadataError(f"abundance maps are {ca.sizes['y']}x{ca.sizes['x']}, the reference {cr.sizes['y']}x{cr.sizes['x']}", lab)
        if ca.rio.crs is not None and cr.rio.crs is not None:
            check_same_grid(ca, cr, ("abundances", "reference abundances"))
        a_est = np.nan_to_num(np.asarray(to_reflectance(ca).values, np.float64))
        a_ref = np.nan_to_num(np.asarray(to_reflectance(cr).values, np.float64))
    if have_e:
        e_est, _, _ = read_matrix(endmembers, endmember_key)
        e_ref, names, _ = read_matrix(reference_endmembers, reference_endmember_key)
        if e_est.shape[0] != e_ref.shape[0]:
            raise MetadataError(f"endmembers have {e_est.shape[0]} bands, the reference {e_ref.shape[0]}", endmembers)
    p_ref = e_ref.shape[1] if have_e else a_ref.shape[0]
    p_est = e_est.shape[1] if have_e else a_est.shape[0]
    if p_est < p_ref:
        raise MetadataError(f"{p_est} estimated endmembers for {p_ref} reference ones", endmembers or abundances)
    if match == "auto":
        match = "sad" if have_e else "abundance"
    if names is not None and len(names) != p_ref:
        names = None
    return unmixing_report(a_est, e_est, a_ref, e_ref, match=match, endmember_names=names)
