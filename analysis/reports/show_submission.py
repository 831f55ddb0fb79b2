"""``analysis show SUBMISSION.csv --images TEST_FOLDER``: a submission's boxes on its films, to look at
before sending it.

:func:`show_submission` reads the CSV strictly (:func:`analysis.scoring.submission.read_submission`),
matches its patientIds to the films of the folder (DICOMs, or PNGs mapped back to the source frame by their
dataset's ``manifest.csv``), draws the ``top`` films with the most confident boxes (then films without a box
if there is room) with :func:`analysis.reports.films.annotate`, and writes ``report.html`` / ``report.md``
(counts of images with and without boxes, the ids without a film and the films without a row, one card per
drawn film) and ``images.csv`` (every patient of the submission: boxes, most confident box, drawn PNG).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from analysis.reports.films import DRAW_SIZE, add_card, annotate, load_film, write_png
from analysis.reports.report import Report
from analysis.scoring.submission import image_ids, read_submission
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_csv_atomic
from rsna_yolo.core.layout import BOX_COLUMNS
from rsna_yolo.core.runs import ANNOTATED_DIR

IMAGES_CSV = "images.csv"


def _examples(ids: list[str]) -> str:
    return ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")


def show_submission(
    submission: str | Path,
    images: str | Path,
    out: str | Path | None = None,
    *,
    top: int = 48,
    size: int | None = None,
    png_scales_from: str | Path | None = None,
    progress: bool = True,
    echo: Callable[[str], object] = print,
) -> tuple[dict[str, Path], pd.DataFrame]:
    """Draw the boxes of ``submission`` on the films of ``images`` (a folder) into ``out`` (default
    ``<submission folder>/show_<submission name>``). Returns ``(paths, table)``: ``paths`` holds
    ``html``, ``markdown`` and ``images`` (``images.csv``); ``table`` one row per patient of the
    submission, ``patientId, n_boxes, max_conf, has_image, png`` (the annotated PNG relative to ``out``,
    empty when not drawn). A patientId without a film, or a film without a row, is one warning line through
    ``echo`` and in the report; none in common is a :class:`UserError`."""
    from tqdm import tqdm

    from analysis.inference.submit import find_manifest, read_png_scales

    if top < 1:
        raise UserError(f"--top must be at least 1 (got {top})")
    submission, images = Path(submission), Path(images)
    sub = read_submission(submission)
    films = image_ids(images)
    no_film = [i for i in sub.ids if i not in films]
    listed = set(sub.ids)
    no_row = [i for i in films if i not in listed]
    if len(no_film) == len(sub.ids):
        raise UserError(f"{submission}: none of its {len(sub.ids)} patientIds has a film in {images}")
    notes = []
    if no_film:
        where = f"have no film in {images}"
        notes.append(
            f"{len(no_film)} patientId(s) of {submission.name} {where}: {_examples(no_film)} (not drawn)"
        )
    if no_row:
        why = "Kaggle needs one row per test image: python -m analysis validate"
        notes.append(
            f"{len(no_row)} film(s) of {images} have no row in {submission.name}: {_examples(no_row)} ({why})"
        )
    for note in notes:
        echo(f"warning: {note}")
    manifest = png_scales_from or find_manifest(images, films)
    png_scales = read_png_scales(Path(manifest)) if manifest else None
    boxes = sub.boxes
    n_boxes = boxes.groupby("patientId").size()
    max_conf = boxes.groupby("patientId")["conf"].max()
    table = pd.DataFrame({"patientId": sub.ids})
    table["n_boxes"] = n_boxes.reindex(sub.ids).fillna(0).astype(int).to_numpy()
    table["max_conf"] = max_conf.reindex(sub.ids).to_numpy(dtype=float)
    table["has_image"] = [i in films for i in sub.ids]
    order = table[table["has_image"]].sort_values(["max_conf", "patientId"], ascending=[False, True],
                                                  na_position="last")  # fmt: skip
    drawn = list(order["patientId"].head(top))
    out = Path(out) if out else submission.parent / f"show_{submission.stem}"
    report = Report(f"Submission {submission.name} on {images.name}", out)
    with_boxes = int((table["n_boxes"] > 0).sum())
    report.text(
        f"{len(sub.ids)} patients in {submission}: {with_boxes} with boxes ({len(boxes)} boxes), "
        f"{len(sub.ids) - with_boxes} without; {len(films)} films in {images}."
    )
    report.bullets(notes)
    report.text(
        f"The {len(drawn)} films drawn: those with the most confident boxes first"
        + (", then films without a box" if len(drawn) > min(with_boxes, top) else "")
        + ". Red: each box with its confidence (the submission's coordinates, source pixels)."
    )
    pngs: dict[str, str] = {}
    for pid in tqdm(drawn, desc="draw", unit="img", disable=not progress):
        try:
            gray, png_scale = load_film(films[pid], int(size or DRAW_SIZE), png_scales)
        except Exception as exc:  # a corrupt film: said on its card's place, never fatal
            report.text(f"{pid}: could not read {films[pid].name} ({exc})")
            continue
        mine = boxes[boxes["patientId"] == pid].sort_values("conf", ascending=False, kind="stable")
        title = f"{pid}   {len(mine)} box(es)"
        picture = annotate(gray, png_scale, mine[list(BOX_COLUMNS)].to_numpy(float), mine["conf"].tolist(),
                           title=title)  # fmt: skip
        pngs[pid] = f"{ANNOTATED_DIR}/{pid}.png"
        write_png(out / pngs[pid], picture)
        caption = (
            f"{pid}: {len(mine)} box(es), most confident {mine['conf'].max():.4f}"
            if len(mine)
            else f"{pid}: no box"
        )
        add_card(report, out / pngs[pid], caption)
    table["png"] = [pngs.get(i, "") for i in sub.ids]
    paths = report.write()
    paths = {"html": paths["html"], "markdown": paths["markdown"]}
    paths["images"] = write_csv_atomic(table, out / IMAGES_CSV)
    return paths, table
