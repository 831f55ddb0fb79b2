"""Compare synthetic films with real ones: a picture grid and a table of intensity statistics.

    python scripts/synth_vs_real.py --real DIR --out DIR [--n 12] [--seed 0]

Reads every ``*.dcm`` in ``--real`` (as the converter does), renders ``--n`` patients at the hard level
(:func:`convert.synth_hard.render_hard_radiograph`) and the same patients at the default level
(:func:`convert.synth.render_radiograph`), all at 1024 px, and writes into ``--out``:

- ``grid.png``: real films on top, then hard, then default synthetic ones, labelled, 200-px tiles;
- ``stats.md``: mean and spread across images of each :func:`convert.synth_stats.intensity_stats`
  value, for real / hard / default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for a plain run

from convert.synth_hard import render_hard_radiograph
from convert.synth_hard_sample import sample_hard_patients
from convert.synth_render import render_radiograph
from convert.synth_sample import load_box_sets
from convert.synth_stats import intensity_stats
from rsna_yolo.core.boxes import NATIVE_SIZE
from rsna_yolo.core.cli import UserError, call_reporting_errors
from rsna_yolo.core.dicom import DicomError, dicom_to_uint8, read_dicom

TILE = 200
COLUMNS = 6
LABEL_HEIGHT = 26


def read_real_films(folder: Path) -> list[np.ndarray]:
    """Every ``*.dcm`` in ``folder`` (sorted by name) as a display image ``(rows, cols)`` uint8."""
    paths = sorted(folder.glob("*.dcm"))
    if not paths:
        raise UserError(f"{folder}: no *.dcm files (pass the folder of real DICOMs as --real)")
    films = []
    for path in paths:
        try:
            films.append(dicom_to_uint8(read_dicom(path)))
        except DicomError as exc:
            raise UserError(f"{path}: {exc}") from exc
    return films


def render_synthetic(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` patients (real class mix) rendered at the hard and at the default level, 1024 px."""
    specs = sample_hard_patients(np.random.default_rng(seed), n, load_box_sets())
    hard = [render_hard_radiograph(s, NATIVE_SIZE) for s in specs]
    default = [render_radiograph(s, NATIVE_SIZE) for s in specs]
    return hard, default


def summarize(films: list[np.ndarray]) -> dict[str, tuple[float, float]]:
    """Each statistic's mean and standard deviation across ``films``."""
    rows = [intensity_stats(f) for f in films]
    return {k: (float(np.mean([r[k] for r in rows])), float(np.std([r[k] for r in rows]))) for k in rows[0]}


def make_grid(sections: list[tuple[str, list[np.ndarray]]], tile: int = TILE, columns: int = COLUMNS):
    """One uint8 picture: per section a label bar, then its films as ``tile``-px squares, ``columns``
    to a row (non-square films are fitted inside their square)."""
    width = tile * columns
    blocks = []
    for label, films in sections:
        bar = np.full((LABEL_HEIGHT, width), 40, np.uint8)
        cv2.putText(bar, label, (6, LABEL_HEIGHT - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 1, cv2.LINE_AA)
        blocks.append(bar)
        for start in range(0, len(films), columns):
            row = np.zeros((tile, width), np.uint8)
            for j, film in enumerate(films[start : start + columns]):
                scale = tile / max(film.shape)
                h, w = round(film.shape[0] * scale), round(film.shape[1] * scale)
                small = cv2.resize(film, (w, h), interpolation=cv2.INTER_AREA)
                row[(tile - h) // 2 : (tile - h) // 2 + h, j * tile + (tile - w) // 2 :][:, :w] = small
            blocks.append(row)
    return np.vstack(blocks)


def stats_markdown(summaries: dict[str, dict[str, tuple[float, float]]], counts: dict[str, int]) -> str:
    """The ``stats.md`` text: one row per statistic, one ``mean ± sd`` column per film set, and which
    synthetic level's mean is nearer the real one."""
    names = list(summaries)
    header = "| statistic | " + " | ".join(f"{n} (n={counts[n]})" for n in names) + " | nearer real |"
    lines = [header, "|" + " --- |" * (len(names) + 2)]
    for key in summaries[names[0]]:
        cells = []
        for n in names:
            mean, sd = summaries[n][key]
            digits = 3 if key.startswith("frac") else 1 if not key.startswith("lap") else 2
            cells.append(f"{mean:.{digits}f} ± {sd:.{digits}f}")
        real = summaries["real"][key][0]
        gaps = {n: abs(summaries[n][key][0] - real) for n in names if n != "real"}
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {min(gaps, key=gaps.get)} |")
    return "\n".join(lines) + "\n"


STATS_NOTE = """\
# Synthetic vs real films: intensity statistics

Written by `scripts/synth_vs_real.py` ({args}).

Each cell is the mean ± standard deviation across images of one statistic of
`convert.synth_stats.intensity_stats` (8-bit grey levels at 1024 px): percentiles `p1`..`p99`, the
fractions of near-black (`< 20`) and near-white (`> 235`) pixels, and the mean absolute Laplacian at
1024 px (`lap`, fine grain) and after a downsize to 256 px (`lap256`, structure). `nearer real` names
the synthetic level whose mean is closer to the real one.

These numbers only say how alike the grey-level distributions and textures are, over {n_real} real films.
**Synthetic numbers say nothing about real X-rays**: matching statistics do not make a synthetic film
a radiograph, and a detector's score on synthetic films says nothing about its score on real ones.

"""


def compare(real: Path, out: Path, n: int, seed: int) -> dict:
    """Write ``grid.png`` and ``stats.md`` into ``out``; return the three summaries."""
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if not real.is_dir():
        raise UserError(f"{real}: not a folder (pass the folder of real DICOMs as --real)")
    films = read_real_films(real)
    hard, default = render_synthetic(n, seed)
    out.mkdir(parents=True, exist_ok=True)
    sections = [
        (f"real RSNA films ({len(films)})", films),
        (f"synthetic, hard level ({n})", hard),
        (f"synthetic, default level ({n}, same patients)", default),
    ]
    cv2.imwrite(str(out / "grid.png"), make_grid(sections), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    summaries = {"real": summarize(films), "hard": summarize(hard), "default": summarize(default)}
    counts = {"real": len(films), "hard": n, "default": n}
    note = STATS_NOTE.format(
        args=f"`--n {n} --seed {seed}`, real films from `{real.name}/`", n_real=len(films)
    )
    (out / "stats.md").write_text(note + stats_markdown(summaries, counts))
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, required=True, help="folder of real RSNA DICOMs (*.dcm)")
    parser.add_argument("--out", type=Path, required=True, help="folder for grid.png and stats.md")
    parser.add_argument("--n", type=int, default=12, help="synthetic patients per level (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    args = parser.parse_args(argv)
    return call_reporting_errors("synth_vs_real", _run, args)


def _run(args: argparse.Namespace) -> int:
    compare(args.real, args.out, args.n, args.seed)
    print(f"wrote {args.out / 'grid.png'} and {args.out / 'stats.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
