#!/usr/bin/env bash
# Test the QGIS Processing plugin headless (docs/qgis.md).
# Idempotent, like scripts/env.sh: installs QGIS 3.22 from Debian when PyQGIS is missing (as root),
# builds .venv-qgis (/usr/bin/python3 --system-site-packages, pins from requirements-qgis.txt) only
# when requirements-qgis.txt changes, installs hsikit editable into it, then runs tests/qgis.
# Extra arguments go to pytest (e.g. scripts/test_qgis.sh -k denoise).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV_QGIS:-.venv-qgis}; REQ=requirements-qgis.txt

if ! /usr/bin/python3 -c "import qgis.core" 2>/dev/null || [ ! -x /usr/bin/qgis_process.bin ] || [ ! -x /usr/bin/proj ]; then
  echo "hsikit: installing QGIS (python3-qgis qgis-providers qgis proj-bin) from Debian (about 1 minute, once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends python3-qgis qgis-providers qgis proj-bin >/dev/null
fi

stamp="$VENV/.req-$(sha256sum "$REQ" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "hsikit: building the QGIS virtual environment in $VENV (about 2 minutes, once)" >&2
  rm -rf "$VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
  "$VENV/bin/pip" install --no-input -q --upgrade pip "setuptools==84.2.1" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  "$VENV/bin/pip" install --no-input -q -r "$REQ" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  # one PROJ per process: the pyproj wheel (bundled PROJ 9.7) makes qgis_process.bin, whose own
  # PROJ 9.1 symbols are global, crash at exit; Debian's pyproj 3.4.1 uses that same PROJ (it finds
  # /usr/share/proj through /usr/bin/proj from proj-bin). geopandas (torchgeo only) then reports pyproj<3.5.
  "$VENV/bin/pip" uninstall --no-input -q -y pyproj
  "$VENV/bin/python" - <<'EOF'
import numpy, torch
assert numpy.__version__ == "1.26.4", numpy.__version__
assert torch.__version__.startswith("2.14.1"), torch.__version__
from osgeo import gdal_array  # Debian's GDAL bindings need numpy<2
import rasterio  # noqa: F401 (fails with Debian's old attrs)
import pyproj
assert pyproj.__file__.startswith("/usr/lib/python3/dist-packages/"), pyproj.__file__
assert pyproj.CRS.from_epsg(32633).to_epsg() == 32633
from qgis.core import Qgis
print(f"hsikit: QGIS {Qgis.QGIS_VERSION}, numpy {numpy.__version__}, torch {torch.__version__}")
EOF
  touch "$stamp"
fi
"$VENV/bin/pip" install --no-input -q --no-deps --no-build-isolation -e . 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

export QT_QPA_PLATFORM=offscreen
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
exec "$VENV/bin/python" -m pytest -q -p no:xdist -p no:cacheprovider tests/qgis "$@"
