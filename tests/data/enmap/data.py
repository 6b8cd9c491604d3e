#!/usr/bin/env python3
"""Write a small, faithful EnMAP L2A product into this folder (fixed seed).

Run ``python tests/data/enmap/data.py``; the outputs are committed. It writes:

* ``<PRODUCT>/<PRODUCT>-SPECTRAL_IMAGE.TIF``: 224 bands x 24 rows x 20 columns, int16 reflectance
  x 10000, nodata -32768, EPSG:32633, 30 m pixels, a nodata corner (the rotated swath inside the
  north-up grid) and 0-based bands 129-134 (1331-1391 nm) entirely nodata, as in the real product.
* ``<PRODUCT>/<PRODUCT>-METADATA.XML``: the DLR schema parts readers use: ``base/temporalCoverage``,
  ``specific/bandCharacterisation/bandID`` (wavelengthCenterOfBand, FWHMOfBand, GainOfBand 1e-4,
  OffsetOfBand 0), ``specific/{vnir,swir}ProductQuality/expectedChannelsList``,
  ``product/bandStatistics/bandID`` (minimum, maximum, mean, stdDeviation of the valid pixels;
  nodata bands have mean -1000000 and stdDeviation 0) and ``product/productFileInformation``.
* ``<PRODUCT>/<PRODUCT>-QL_PIXELMASK.TIF`` and ``-QL_QUALITY_CLOUD.TIF``: uint8 masks.
* ``<PRODUCT>.ZIP``: the same folder zipped (as delivered by DLR).

Band centres and FWHM are the real ones of scene ENMAP01-____L2A-DT0000001867_20220724T104526Z
(Potsdam, processor v01.03.02), taken from the per-band tags of the EnMAP-Box tile
``enmap_potsdam_tiles/images/enmap_potsdam_tile_64_0.tif`` (EnMAP data (c) DLR 2022). In this
processor version the file is in detector order: VNIR bands 1-91 (418-993 nm), then SWIR bands
92-224 (902-2446 nm), overlapping at 900-1000 nm. The pixel values are synthetic: a mix of the
tile's median (vegetation) spectrum and a smooth soil-like spectrum plus noise.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import rasterio
from affine import Affine

HERE = Path(__file__).resolve().parent
SEED = 20220724
PRODUCT = "ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z"
HEIGHT, WIDTH = 24, 20
NODATA = -32768
CRS = "EPSG:32633"
TRANSFORM = Affine(30.0, 0.0, 364095.0, 0.0, -30.0, 5809965.0)  # upper-left corner, 30 m
GAIN, OFFSET = 1e-4, 0.0
N_VNIR = 91
NODATA_BANDS = tuple(range(129, 135))  # 0-based, entirely nodata (as in the real product)
START_TIME, STOP_TIME = "2022-07-24T10:45:26.405000Z", "2022-07-24T10:45:30.570000Z"
ZIP_TIME = (2023, 6, 28, 16, 56, 14)

WAVELENGTH = (
    418.24, 423.874, 429.294, 434.528, 439.603, 444.549, 449.391, 454.159, 458.884, 463.584, 468.265,
    472.934, 477.599, 482.265, 486.941, 491.633, 496.349, 501.094, 505.87, 510.678, 515.519, 520.397,
    525.313, 530.268, 535.265, 540.305, 545.391, 550.525, 555.71, 560.947, 566.239, 571.587, 576.995,
    582.464, 587.997, 593.596, 599.267, 605.011, 610.833, 616.737, 622.732, 628.797, 634.919, 641.1,
    647.341, 653.643, 660.007, 666.435, 672.927, 679.485, 686.11, 692.804, 699.567, 706.401, 713.307,
    720.282, 727.324, 734.431, 741.601, 748.833, 756.124, 763.472, 770.876, 778.333, 785.843, 793.402,
    801.01, 808.665, 816.367, 824.112, 831.901, 839.731, 847.601, 855.509, 863.455, 871.433, 879.442,
    887.478, 895.537, 903.617, 911.715, 919.827, 927.951, 936.082, 944.217, 952.355, 960.495, 968.638,
    976.783, 984.932, 993.083, 902.257, 911.872, 921.624, 931.512, 941.53, 951.677, 961.948, 972.341,
    982.851, 993.475, 1004.21, 1015.05, 1026.0, 1037.05, 1048.19, 1059.42, 1070.74, 1082.14, 1093.62,
    1105.17, 1116.79, 1128.47, 1140.2, 1151.98, 1163.81, 1175.67, 1187.56, 1199.48, 1211.42, 1223.37,
    1235.34, 1247.31, 1259.3, 1271.29, 1283.29, 1295.28, 1307.27, 1319.25, 1331.22, 1343.18, 1355.13,
    1367.06, 1378.96, 1390.84, 1461.46, 1473.1, 1484.69, 1496.24, 1507.75, 1519.22, 1530.64, 1542.02,
    1553.36, 1564.65, 1575.9, 1587.1, 1598.26, 1609.36, 1620.43, 1631.44, 1642.41, 1653.33, 1664.2,
    1675.03, 1685.8, 1696.53, 1707.2, 1717.83, 1728.4, 1738.93, 1749.4, 1759.83, 1939.44, 1948.98,
    1958.49, 1967.95, 1977.37, 1986.74, 1996.07, 2005.36, 2014.61, 2023.82, 2032.99, 2042.11, 2051.19,
    2060.24, 2069.24, 2078.21, 2087.13, 2096.01, 2104.86, 2113.67, 2122.44, 2131.17, 2139.87, 2148.52,
    2157.15, 2165.73, 2174.28, 2182.79, 2191.27, 2199.71, 2208.12, 2216.5, 2224.84, 2233.14, 2241.42,
    2249.66, 2257.86, 2266.04, 2274.18, 2282.29, 2290.37, 2298.42, 2306.44, 2314.42, 2322.37, 2330.29,
    2338.19, 2346.05, 2353.88, 2361.68, 2369.45, 2377.19, 2384.9, 2392.58, 2400.23, 2407.85, 2415.45,
    2423.01, 2430.55, 2438.05, 2445.53,
)
FWHM = (
    6.99561, 6.6675, 6.42408, 6.25124, 6.13485, 6.06076, 6.01486, 5.98302, 5.95232, 5.9199, 5.88775,
    5.8579, 5.83239, 5.81325, 5.8025, 5.8022, 5.81407, 5.83751, 5.87076, 5.91208, 5.95969, 6.01183,
    6.06674, 6.12279, 6.1794, 6.23648, 6.29397, 6.35179, 6.40987, 6.46815, 6.52654, 6.58497, 6.64338,
    6.70177, 6.76072, 6.82113, 6.88388, 6.94987, 7.01999, 7.09511, 7.17533, 7.25495, 7.33145, 7.40537,
    7.47729, 7.54777, 7.61738, 7.68669, 7.75628, 7.8267, 7.89853, 7.97235, 8.04871, 8.1281, 8.2102,
    8.29433, 8.3798, 8.46592, 8.552, 8.63735, 8.72128, 8.80311, 8.88214, 8.95779, 9.03034, 9.1005,
    9.16897, 9.23646, 9.30368, 9.37133, 9.44012, 9.51076, 9.58396, 9.66032, 9.73971, 9.82161, 9.90551,
    9.99089, 10.0772, 10.164, 10.2508, 10.3369, 10.422, 10.5054, 10.5862, 10.6589, 10.716, 10.75,
    10.7533, 10.7183, 10.6375, 9.17725, 9.31901, 9.45441, 9.58399, 9.7083, 9.82789, 9.94331, 10.0551,
    10.1638, 10.27, 10.3742, 10.4768, 10.5775, 10.6753, 10.769, 10.8578, 10.9405, 11.0162, 11.0839,
    11.1437, 11.196, 11.2414, 11.2806, 11.3139, 11.3421, 11.3656, 11.385, 11.4009, 11.4135, 11.4229,
    11.4292, 11.4325, 11.4329, 11.4305, 11.4253, 11.4176, 11.4073, 11.3946, 11.3796, 11.3624, 11.343,
    11.3215, 11.2981, 11.2728, 11.0876, 11.052, 11.0151, 10.9772, 10.9383, 10.8984, 10.8577, 10.8161,
    10.7738, 10.7308, 10.6872, 10.643, 10.5985, 10.5535, 10.5082, 10.4626, 10.4169, 10.371, 10.3251,
    10.2793, 10.2335, 10.1879, 10.1425, 10.0974, 10.0525, 10.0079, 9.96359, 9.91949, 9.16572, 9.12592,
    9.08633, 9.04694, 9.00775, 8.96875, 8.92995, 8.89134, 8.85292, 8.81469, 8.77665, 8.73878, 8.70111,
    8.66361, 8.62632, 8.58923, 8.55236, 8.51572, 8.47932, 8.44317, 8.40728, 8.37166, 8.33632, 8.30128,
    8.26653, 8.2321, 8.198, 8.16422, 8.13079, 8.09771, 8.065, 8.03267, 8.00072, 7.96916, 7.93802,
    7.90728, 7.87694, 7.84695, 7.81727, 7.78785, 7.75866, 7.72966, 7.70079, 7.67203, 7.64333, 7.61464,
    7.58593, 7.55715, 7.52827, 7.49924, 7.47001, 7.44055, 7.41082, 7.38077, 7.35037, 7.31957, 7.28832,
    7.25659, 7.22434, 7.19152, 7.1581,
)
#: Median spectrum (reflectance x 10000) of the real tile; 0 where the band is nodata.
VEGETATION = (
    403, 387, 388, 406, 394, 396, 404, 412, 410, 418, 421, 414, 410, 416, 422, 411, 408, 417, 419, 429,
    455, 480, 503, 539, 567, 595, 610, 619, 624, 622, 602, 583, 554, 539, 532, 526, 519, 512, 506, 495,
    491, 491, 485, 479, 475, 457, 450, 438, 436, 439, 483, 576, 736, 964, 1251, 1588, 1926, 2343, 2695,
    2939, 3172, 3108, 3313, 3363, 3395, 3407, 3435, 3492, 3488, 3537, 3538, 3604, 3640, 3704, 3747,
    3742, 3766, 3742, 3720, 3630, 3590, 3418, 3760, 4078, 3955, 3702, 3430, 3417, 3454, 3534, 3571,
    3737, 3667, 3777, 3556, 3848, 3688, 3615, 3624, 3697, 3764, 3806, 3889, 3956, 4014, 4056, 4101,
    4122, 4107, 4063, 3988, 3893, 4519, 3847, 3532, 3397, 3346, 3332, 3322, 3365, 3455, 3556, 3611,
    3649, 3738, 3681, 3603, 3473, 3343, 0, 0, 0, 0, 0, 0, 1872, 2061, 1542, 1326, 1362, 1442, 1517,
    1595, 1670, 1732, 1824, 1880, 1941, 2010, 2048, 2078, 2100, 2128, 2115, 2118, 2093, 2063, 2019,
    1981, 1942, 1939, 1925, 1887, 7169, 2584, 1697, 786, 630, 635, 616, 1025, 931, 782, 728, 754, 760,
    811, 829, 856, 847, 861, 882, 907, 927, 957, 958, 977, 1000, 1025, 1028, 1054, 1064, 1089, 1105,
    1110, 1099, 1084, 1041, 1015, 968, 947, 908, 904, 858, 849, 815, 788, 806, 769, 747, 757, 761,
    737, 736, 745, 733, 713, 662, 726, 723, 693, 575, 669, 607,
)


def name(suffix: str) -> str:
    """File name of a product part, e.g. ``name("METADATA.XML")``."""
    return f"{PRODUCT}-{suffix}"


def nodata_corner() -> np.ndarray:
    """(HEIGHT, WIDTH) bool, True in the upper-left triangle outside the rotated swath."""
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    return rows + cols < 7


def make_image() -> np.ndarray:
    """The spectral image, shape (224, HEIGHT, WIDTH), int16 reflectance x 10000."""
    rng = np.random.default_rng(SEED)
    wl = np.array(WAVELENGTH)
    veg = np.array(VEGETATION, dtype=np.float64)
    soil = 1200.0 + 1800.0 * np.clip((wl - 400.0) / 1800.0, 0.0, 1.0)
    fraction = rng.uniform(0.0, 1.0, size=(HEIGHT, WIDTH))
    image = fraction * veg[:, None, None] + (1.0 - fraction) * soil[:, None, None]
    image += rng.normal(0.0, 25.0, size=image.shape)
    image = np.clip(np.rint(image), -500, 12000).astype(np.int16)
    image[:, nodata_corner()] = NODATA
    image[list(NODATA_BANDS)] = NODATA
    return image


def write_tif(path: Path, data: np.ndarray, nodata: float | None) -> None:
    profile = dict(
        driver="GTiff", width=WIDTH, height=HEIGHT, count=data.shape[0], dtype=data.dtype.name, crs=CRS,
        transform=TRANSFORM, nodata=nodata, compress="deflate", predictor=2, zlevel=9, interleave="band",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def write_quicklooks(folder: Path, image: np.ndarray) -> list[Path]:
    """Pixel mask (1 = no data) and a cloud mask (all clear) as uint8 GeoTIFFs."""
    pixelmask = nodata_corner().astype(np.uint8)[None]
    cloud = np.zeros((1, HEIGHT, WIDTH), np.uint8)
    paths = [folder / name("QL_PIXELMASK.TIF"), folder / name("QL_QUALITY_CLOUD.TIF")]
    for path, data in zip(paths, (pixelmask, cloud)):
        write_tif(path, data, None)
    return paths


def _sub(parent: ET.Element, tag: str, text: object | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = str(text)
    return element


def _band_statistics(parent: ET.Element, image: np.ndarray) -> None:
    stats = _sub(parent, "bandStatistics")
    for i, band in enumerate(image):
        valid = band[band != NODATA].astype(np.float64)
        entry = _sub(stats, "bandID", number=str(i + 1))
        if valid.size == 0:
            values = (NODATA, NODATA, -1000000, 0)
        else:
            values = (int(valid.min()), int(valid.max()), round(valid.mean(), 4), round(valid.std(), 4))
        for tag, value in zip(("minimum", "maximum", "mean", "stdDeviation"), values):
            _sub(entry, tag, value)


def metadata_xml(image: np.ndarray, files: list[Path]) -> ET.ElementTree:
    """The METADATA.XML tree for ``image`` listing ``files`` (the product's other files)."""
    root = ET.Element("level_X")
    meta = _sub(root, "metadata")
    _sub(meta, "schema", "EnMAP L2A product metadata (test fixture written by tests/data/enmap/data.py)")
    _sub(meta, "name", PRODUCT)
    processing = _sub(root, "processing")
    _sub(processing, "version", "01.03.02")
    _sub(processing, "productFormat", "GeoTIFF+Metadata")
    base = _sub(root, "base")
    _sub(base, "level", "L2A")
    coverage = _sub(base, "temporalCoverage")
    _sub(coverage, "startTime", START_TIME)
    _sub(coverage, "stopTime", STOP_TIME)
    specific = _sub(root, "specific")
    _sub(specific, "numberOfBands", len(WAVELENGTH))
    _sub(specific, "numberOfVNIRBands", N_VNIR)
    _sub(specific, "numberOfSWIRBands", len(WAVELENGTH) - N_VNIR)
    bands = _sub(specific, "bandCharacterisation")
    for i, (wl, fw) in enumerate(zip(WAVELENGTH, FWHM)):
        entry = _sub(bands, "bandID", number=str(i + 1))
        _sub(entry, "wavelengthCenterOfBand", wl)
        _sub(entry, "FWHMOfBand", fw)
        _sub(entry, "GainOfBand", f"{GAIN:.4f}")
        _sub(entry, "OffsetOfBand", f"{OFFSET:.1f}")
    for detector, numbers in (("vnir", range(1, N_VNIR + 1)), ("swir", range(N_VNIR + 1, len(WAVELENGTH) + 1))):
        quality = _sub(specific, f"{detector}ProductQuality")
        _sub(quality, "expectedChannelsList", ",".join(str(n) for n in numbers))
        _sub(quality, "numChannelsExpected", len(numbers))
    product = _sub(root, "product")
    image_el = _sub(product, "image")
    merge = _sub(image_el, "merge")
    _sub(merge, "name", name("SPECTRAL_IMAGE.TIF"))
    _sub(merge, "channels", image.shape[0])
    dimension = _sub(merge, "dimension")
    _sub(dimension, "rows", HEIGHT)
    _sub(dimension, "columns", WIDTH)
    _band_statistics(product, image)
    info = _sub(product, "productFileInformation")
    for path in files:
        entry = _sub(info, "file")
        _sub(entry, "name", path.name)
        _sub(entry, "size", path.stat().st_size)
    tree = ET.ElementTree(root)
    ET.indent(tree, space="  ")
    return tree


def write_zip(folder: Path, target: Path) -> None:
    """Zip ``folder`` as ``target`` with the product folder inside, fixed timestamps (reproducible)."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.iterdir()):
            info = zipfile.ZipInfo(f"{folder.name}/{path.name}", date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())


def main() -> None:
    folder = HERE / PRODUCT
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    image = make_image()
    spectral = folder / name("SPECTRAL_IMAGE.TIF")
    write_tif(spectral, image, NODATA)
    files = [spectral, *write_quicklooks(folder, image)]
    metadata_xml(image, files).write(folder / name("METADATA.XML"), encoding="UTF-8", xml_declaration=True)
    write_zip(folder, HERE / f"{PRODUCT}.ZIP")


if __name__ == "__main__":
    main()
