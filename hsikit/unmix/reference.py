"""Reference unmixing scenes with ground truth, read in place from the shared data folder.

Each scene comes back as a :class:`ReferenceScene`: the cube ``(L, H, W)``, the reference endmembers
``(L, p)`` and one or more ground-truth abundance sets ``(p, H, W)``, each under the name of its
convention (see ``../shared/data/README.md`` sections 2.1-2.7):

``fcls``
    The abundances are FCLS of the data with the reference endmembers (HySUPP / MiSiCNet practice):
    Samson (MiSiCNet ``A_true``), Moffett (``S_GT``, within 7e-4 of FCLS), Sim1/Sim2 (the simulation's
    true abundances, the data being noise-free mixtures).
``zhu``
    Zhu et al.'s hand-labelled abundances (the DeepTrans-HSU / CyCU-Net line): Samson ``A`` of the
    CyCU-Net file. They are 0.231 RMSE away from FCLS with the reference endmembers.
``label``
    MUUFL (MUNet file): the ``label`` abundance maps, 0.149 RMSE away from FCLS with ``M``.

Pixel order: Zhu-style ``L x N`` matrices are MATLAB column-major (``reshape(..., order="F")``); the
cube readers of :mod:`hsikit.io.matlab` already handle it, and the abundance matrices here follow the
same rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hsikit.errors import InputError, UsageError

SCENES = ("samson", "moffett", "muufl", "sim1", "sim2")


@dataclass
class ReferenceScene:
    """A scene with ground truth.

    Attributes
    ----------
    name
        Scene name (one of :data:`SCENES`).
    cube
        ``(L, H, W)`` float64 data.
    endmembers
        ``(L, p)`` reference endmembers.
    abundances
        ``{convention: (p, H, W)}`` reference abundance sets (the first is the default one).
    wavelength
        ``(L,)`` band centres in nm (NaN when the files do not give them).
    path
        The cube file.
    """

    name: str
    cube: np.ndarray
    endmembers: np.ndarray
    abundances: dict[str, np.ndarray]
    wavelength: np.ndarray
    path: Path
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def n_endmembers(self) -> int:
        return int(self.endmembers.shape[1])

    @property
    def spectra(self) -> np.ndarray:
        """``(L, H*W)`` pixel matrix in row-major (C) pixel order, matching ``abundances[...].reshape(p, -1)``."""
        return self.cube.reshape(self.cube.shape[0], -1)


def _mat(path: Path, key: str) -> np.ndarray:
    from hsikit.io.matlab import read_matlab_array

    return np.asarray(read_matlab_array(path, key), np.float64)


def _open(path: Path) -> np.ndarray:
    import hsikit

    return np.asarray(hsikit.open(path).values, np.float64)


def samson_wavelengths(root: str | os.PathLike) -> np.ndarray:
    """The 156 Samson band centres (nm) from DeepTrans-HSU's wavelength file."""
    return _mat(Path(root) / "apex_gt_only" / "DeepTransHSU_Wavelengths_Apex_DC_Samson.mat", "lambda_Samson").reshape(-1)


def load_reference_scene(root: str | os.PathLike, name: str) -> ReferenceScene:
    """Load one reference scene from the shared data folder ``root`` (``../shared/data``).

    Raises
    ------
    UsageError
        Unknown scene name.
    InputError
        Missing files.
    """
    root = Path(root)
    key = name.lower()
    if key not in SCENES:
        raise UsageError(f"unknown reference scene {name!r} (use one of {', '.join(SCENES)})")
    if not root.is_dir():
        raise InputError("shared data folder not found", root)
    if key == "samson":
        d = root / "samson"
        cube = _open(d / "samson_1.mat")
        E = _mat(d / "E_misicnet.mat", "E")
        p = E.shape[1]
        a_fcls = np.moveaxis(_mat(d / "A_true_misicnet.mat", "A_true"), -1, 0)
        h, w = cube.shape[1:]
        a_zhu = _mat(d / "samson_dataset_CyCU-Net.mat", "A").reshape(p, h, w, order="F")
        return ReferenceScene("samson", cube, E, {"fcls": a_fcls, "zhu": a_zhu}, samson_wavelengths(root),
                              d / "samson_1.mat")
    if key == "moffett":
        f = root / "moffett" / "moffett.mat"
        cube = _open(f)
        E = _mat(f, "GT").T
        a = np.moveaxis(_mat(f, "S_GT"), -1, 0)
        return ReferenceScene("moffett", cube, E, {"fcls": a}, np.full(cube.shape[0], np.nan), f)
    if key == "muufl":
        f = root / "muufl_subset" / "muffle_dataset_130_90.mat"
        cube = _open(f)
        E = _mat(f, "M")
        a = np.moveaxis(_mat(f, "label"), -1, 0)
        return ReferenceScene("muufl", cube, E, {"label": a}, np.full(cube.shape[0], np.nan), f)
    stem = "Sim1" if key == "sim1" else "Sim2"
    d = root / "misicnet_simulated"
    cube = _open(d / f"{stem}_Y_clean.mat")
    E = _mat(d / f"{stem}_E.mat", "E")
    a = np.moveaxis(_mat(d / f"{stem}_A_true.mat", "A_true"), -1, 0)
    return ReferenceScene(key, cube, E, {"fcls": a}, np.full(cube.shape[0], np.nan), d / f"{stem}_Y_clean.mat")
