"""Which compressed films decode here: a real film recompressed the ways a PACS exports, through our reader.

The film (``--film``: a DICOM, or a folder whose first ``*.dcm`` is used) is decompressed with dcmtk's
``dcmdjpeg``, widened to 12 bits stored as a second source, and recompressed with real encoders: dcmtk's
``dcmcjpeg`` (JPEG lossless Process 14 with selection value 1 and any, JPEG extended at 8 and 12 bits),
``dcmcjpls`` (JPEG-LS lossless and near-lossless), ``dcmcrle`` (RLE) and GDCM's ``gdcmconv`` (JPEG 2000).
Each file goes through :func:`rsna_yolo.core.dicom.read_dicom` and ``dicom_to_uint8``; the table says
whether it decoded and how close it is to its uncompressed source (exact, or the PSNR). ``--without
pylibjpeg,gdcm`` hides those decoders from pydicom, to measure what each adds. Needs Debian's ``dcmtk`` and
``libgdcm-tools``.

    python scripts/dicom_coverage.py --film FILM.dcm [--work DIR] [--without pylibjpeg,gdcm]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ENCODINGS = {  # name -> (encoder command, source bits)
    "jpeg_lossless_sv1": (["dcmcjpeg", "+e1"], 8),
    "jpeg_lossless_p14": (["dcmcjpeg", "+el"], 8),
    "jpeg_lossless_sv1_12bit": (["dcmcjpeg", "+e1"], 12),
    "jpeg_extended_8bit": (["dcmcjpeg", "+ee"], 8),
    "jpeg_extended_12bit": (["dcmcjpeg", "+ee"], 12),
    "jpegls_lossless": (["dcmcjpls", "+el"], 8),
    "jpegls_lossless_12bit": (["dcmcjpls", "+el"], 12),
    "jpegls_near_lossless": (["dcmcjpls", "+en", "+md", "2"], 8),
    "rle": (["dcmcrle"], 8),
    "rle_12bit": (["dcmcrle"], 12),
    "j2k_lossless": (["gdcmconv", "--j2k"], 8),
    "j2k_lossless_12bit": (["gdcmconv", "--j2k"], 12),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--film", type=Path, required=True, help="a DICOM film, or a folder of them")
    p.add_argument("--work", type=Path, help="folder for the recompressed files (default: a temporary one)")
    p.add_argument("--without", default="", help="decoders to hide from pydicom: pylibjpeg, gdcm")
    a = p.parse_args()
    for name in filter(None, a.without.split(",")):  # before pydicom looks for its plugins
        for module in {"pylibjpeg": ("pylibjpeg", "libjpeg", "openjpeg", "rle"), "gdcm": ("gdcm",)}[name]:
            sys.modules[module] = None
    missing = [t for t in ("dcmdjpeg", "dcmcjpeg", "dcmcjpls", "dcmcrle", "gdcmconv") if not shutil.which(t)]
    if missing:
        raise SystemExit(f"dicom_coverage: needs {', '.join(missing)} (Debian's dcmtk and libgdcm-tools)")
    film = a.film if a.film.is_file() else sorted(a.film.glob("*.dcm"))[0]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import numpy as np
    import pydicom

    from rsna_yolo.core.dicom import decode_pixels, dicom_to_uint8, read_dicom

    work = a.work or Path(tempfile.mkdtemp(prefix="dicom_coverage_"))
    work.mkdir(parents=True, exist_ok=True)
    raw = {8: work / "raw8.dcm", 12: work / "raw12.dcm"}
    subprocess.run(["dcmdjpeg", str(film), str(raw[8])], check=True, capture_output=True)
    ds = pydicom.dcmread(raw[8])
    wide = ds.pixel_array.astype(np.uint16) * 16 + 7
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = wide.astype("<u2").tobytes()
    ds.save_as(raw[12])
    source = {bits: decode_pixels(read_dicom(path)).astype(np.float64) for bits, path in raw.items()}
    hidden = f" (hidden from pydicom: {a.without})" if a.without else ""
    print(f"{film.name} recompressed {len(ENCODINGS)} ways{hidden}")
    ok = 0
    for name, (command, bits) in ENCODINGS.items():
        out = work / f"{name}.dcm"
        subprocess.run([*command, str(raw[bits]), str(out)], check=True, capture_output=True)
        try:
            read = read_dicom(out)
            pixels = decode_pixels(read).astype(np.float64)
            dicom_to_uint8(read)
        except Exception as exc:
            print(f"  {name:26s} FAILS  {str(exc).splitlines()[0][:90]}")
            continue
        ok += 1
        mse = float(np.mean((pixels - source[bits]) ** 2))
        close = "exact" if mse == 0 else f"PSNR {10 * np.log10((2**bits - 1) ** 2 / mse):.1f} dB"
        print(f"  {name:26s} ok     {close}")
    print(f"decoded {ok} of {len(ENCODINGS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
