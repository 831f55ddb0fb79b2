"""``analysis predict``: a tuned run's predictions on a person's own films, in a table and in pictures.

:func:`predict_films` builds the :class:`~analysis.inference.predictor.Predictor` of a run folder, fold set
or ``kaggle*.json`` (:meth:`TunedSetting.from_run`: the models, sizes, TTA, fusion, threshold, box scale,
classifier(s) and gate it was tuned with) and predicts a file or a folder of DICOMs / PNGs exactly as tuned.
It writes into ``out``:

- ``predictions.csv`` (:func:`prediction_table`): one row per box (kept boxes, then the boxes the gate
  removed), one row with empty box columns for an image without any, one row with ``error`` for a file
  that could not be read or was skipped (no film, an empty file, a DICOMDIR: the reason says): every file
  of the tree appears, with its path relative to ``images`` and its transfer syntax
  (:mod:`analysis.reports.film_tree` finds films by content, not by name);
- ``images/<patientId>.png``: each film with its boxes (:func:`analysis.reports.films.annotate`), longer
  side ``size`` px; a box of ``predictions.csv`` is drawn at ``(x, y, width, height) * png_scale``;
- ``report.html`` (self-contained: the pictures embedded, opens from disk) and ``report.md``: the setting
  (:meth:`TunedSetting.describe`), the counts, the unreadable files, one card per image, most confident
  first.

``submission`` also writes the Kaggle CSV, byte for byte ``analysis submit --weights RUN --from-run RUN``'s
(the same :func:`~analysis.scoring.submission.write_submission` of the same boxes), validated.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.inference.predictor import Prediction, Predictor
from analysis.inference.submit import png_scales_for
from analysis.record.setting import TunedSetting
from analysis.reports.film_tree import STAGING_DIR, find_films, stage
from analysis.scoring.submission import select_boxes, validate_submission, write_submission
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_csv_atomic
from rsna_yolo.core.layout import BOX_COLUMNS
from rsna_yolo.core.runs import ANNOTATED_DIR

PREDICTIONS_CSV = "predictions.csv"
CHUNK_BATCHES = 8
"""``analysis predict`` predicts and draws this many batches of films at a time, each film read from disk once
for the detector, the classifier and its picture (memory bounded by the chunk, not the folder)."""
DICOM_DIR = "dicom"
"""With ``--dicom``: one presentation state per DICOM film, ``<patientId>_pr.dcm``."""
"""Subfolder of ``out`` holding one annotated PNG per readable image, ``<patientId>.png``."""
DEFAULT_CARDS = 100
"""Films shown as cards in ``report.html`` (the most confident first): every card embeds its PNG (0.3-0.6 MB
at 640 px), so a page of a whole test set (3,000 films) would be gigabytes; ``predictions.csv`` and
``images/`` always hold every film."""


@dataclass(frozen=True)
class FilmPredictions:
    """What :func:`predict_films` wrote: ``paths`` (``predictions``, ``html``, ``markdown``, ``submission``
    when asked), ``table`` (the ``predictions.csv`` frame), ``annotated`` (patientId -> PNG), ``failed``
    (patientId -> why it could not be read), ``ignored`` (file relative to ``images`` -> why it was skipped)
    and the setting used."""

    out: Path
    paths: dict[str, Path]
    table: pd.DataFrame
    annotated: dict[str, Path]
    failed: dict[str, str]
    ignored: dict[str, str]
    setting: TunedSetting
    n_images: int
    presentation_states: dict[str, Path] = field(default_factory=dict)

    @property
    def n_with_boxes(self) -> int:
        """Images with at least one kept box (what a submission would hold)."""
        return int(self.table.loc[_kept(self.table), "patientId"].nunique())


def _kept(table: pd.DataFrame) -> pd.Series:
    """Rows of a ``predictions.csv`` frame that hold a box the setting keeps (not one the gate removed)."""
    removed = table["gate_removed"].fillna(False).astype(bool) if "gate_removed" in table else False
    return table["conf"].notna() & ~removed


def prediction_table(
    prediction: Prediction,
    files: Mapping[str, str],
    *,
    classifier: bool,
    gated: bool,
    box_scale: float = 1.0,
    annotated: Mapping[str, tuple[str, float]] | None = None,
    errors: Mapping[str, str] | None = None,
    ignored: Mapping[str, str] | None = None,
    syntax: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The ``predictions.csv`` frame: ``patientId, file, transfer_syntax, [p_opacity], [gate_removed], conf,
    x, y, width, height, png_scale, annotated, error``.

    Per image of ``prediction.ids`` (``files``: patientId -> its file as found, relative to the folder):
    its kept boxes (``prediction.boxes``, most confident first), then with ``gated`` the boxes the gate
    removed (``prediction.removed`` scaled by ``box_scale`` like the kept ones, ``gate_removed`` True), or
    one row with empty box columns when it has neither; ``syntax`` gives each film's transfer syntax.
    ``p_opacity`` (with ``classifier``) is the image's P(Lung Opacity); ``annotated`` maps patientId ->
    ``(PNG path relative to out, png_scale)``: a box is drawn on that PNG at ``(x, y, width, height) *
    png_scale``. ``error`` says why an image has no prediction (``prediction.failed``, then ``errors``);
    ``ignored`` (file -> reason) adds one row per file that was skipped."""
    annotated, errors, ignored, syntax = annotated or {}, dict(errors or {}), ignored or {}, syntax or {}
    errors = {**errors, **prediction.failed}
    kept = prediction.boxes.assign(gate_removed=False)
    removed = select_boxes(prediction.removed, box_scale=box_scale).assign(gate_removed=True)
    frames = [kept.sort_values("conf", ascending=False, kind="stable")]
    if gated:
        frames.append(removed.sort_values("conf", ascending=False, kind="stable"))
    boxes = pd.concat([f for f in frames if len(f)] or [kept], ignore_index=True)
    by_id = {pid: g for pid, g in boxes.groupby("patientId", sort=False)}
    rows: list[dict] = []
    for pid in prediction.ids:
        png, png_scale = annotated.get(pid, ("", np.nan))
        base = {"patientId": pid, "file": files.get(pid, pid), "transfer_syntax": syntax.get(pid, ""),
                "p_opacity": prediction.p_opacity.get(pid)}  # fmt: skip
        base.update(png_scale=png_scale, annotated=png, error=errors.get(pid, ""))
        group = by_id.get(pid)
        if group is None or pid in prediction.failed:
            rows.append({**base, "gate_removed": pd.NA})
            continue
        for box in group.itertuples(index=False):
            rows.append({**base, "gate_removed": bool(box.gate_removed), "conf": box.conf,
                         **{c: getattr(box, c) for c in BOX_COLUMNS}})  # fmt: skip
    for file, reason in ignored.items():
        rows.append({"patientId": Path(file).name, "file": file, "gate_removed": pd.NA, "error": reason})
    columns = ["patientId", "file", "transfer_syntax"] + (["p_opacity"] if classifier else [])
    columns += (["gate_removed"] if gated else []) + ["conf", *BOX_COLUMNS, "png_scale", "annotated", "error"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    if gated:
        table["gate_removed"] = table["gate_removed"].astype("boolean")
    for col in ["conf", *BOX_COLUMNS, "png_scale"] + (["p_opacity"] if classifier else []):
        table[col] = table[col].astype(float)
    table["error"] = table["error"].fillna("")
    table["transfer_syntax"] = table["transfer_syntax"].fillna("")
    table["annotated"] = table["annotated"].fillna("")
    return table


def _draw(
    prediction: Prediction,
    staged: Mapping[str, Path],
    setting: TunedSetting,
    out: Path,
    size: int,
    png_scales,
) -> tuple[dict[str, tuple[str, float]], dict[str, str]]:
    """``images/<id>.png`` for every readable film of ``prediction``, its kept boxes red and the gate's
    removed boxes dashed grey: ``({id: (PNG relative to out, png_scale)}, {id: why it could not be
    drawn})``."""
    from analysis.reports.films import annotate, load_film, write_png

    removed = select_boxes(prediction.removed, box_scale=setting.box_scale)
    annotated: dict[str, tuple[str, float]] = {}
    draw_errors: dict[str, str] = {}
    readable = [pid for pid in prediction.ids if pid not in prediction.failed]
    boxes_of = {pid: g for pid, g in prediction.boxes.groupby("patientId", sort=False)}  # grouped once
    removed_of = {pid: g for pid, g in removed.groupby("patientId", sort=False)} if setting.gate else {}
    for pid in readable:
        try:
            gray, png_scale = load_film(staged[pid], size, png_scales)
        except Exception as exc:  # read once already: only a file changed meanwhile gets here
            draw_errors[pid] = f"could not draw: {exc}"
            continue
        mine = boxes_of.get(pid, prediction.boxes.iloc[:0]).sort_values("conf", ascending=False)
        gone = removed_of.get(pid, removed.iloc[:0])
        xywh = mine[list(BOX_COLUMNS)].to_numpy(float)
        picture = annotate(
            gray, png_scale, xywh, mine["conf"].tolist(), gone[list(BOX_COLUMNS)].to_numpy(float),
            _title(pid, prediction),
        )  # fmt: skip
        name = f"{ANNOTATED_DIR}/{pid}.png"
        write_png(out / name, picture)
        annotated[pid] = (name, png_scale)
    return annotated, draw_errors


def _check_out(out: Path, images: Path) -> None:
    """``out`` must not lie inside the image folder: its annotated PNGs would be read as films next time."""
    if images.is_dir() and (out.resolve() == images.resolve() or images.resolve() in out.resolve().parents):
        raise UserError(
            f"--out {out} is inside --images {images}: its annotated PNGs would be taken for films on the "
            "next run; choose a folder outside it"
        )


def predict_films(
    run: str | Path,
    images: str | Path,
    out: str | Path,
    *,
    submission: str | Path | None = None,
    dicom: bool = False,
    size: int | None = None,
    cards: int = DEFAULT_CARDS,
    png_scales_from: str | Path | None = None,
    batch: int = 16,
    device=None,
    workers: int | None = None,
    backend: str = "torch",
    progress: bool = True,
    echo: Callable[[str], object] = print,
) -> FilmPredictions:
    """Predict the DICOMs / PNGs of ``images`` (a file or a folder) as ``run`` (a run folder, fold set or
    ``kaggle*.json``) was tuned, and write ``predictions.csv``, ``images/<patientId>.png`` (longer side
    ``size``, default :data:`~analysis.reports.films.DRAW_SIZE`), ``report.html`` and ``report.md`` (the
    ``cards`` most confident films as cards) into ``out`` (and the Kaggle CSV to ``submission`` when
    given). With ``dicom``, ``dicom/<patientId>_pr.dcm``: a presentation state per DICOM film that draws
    its kept boxes on the film in a radiology viewer (:mod:`analysis.reports.presentation`). PNGs of a
    converted dataset are mapped back to the source frame with its ``manifest.csv`` (or
    ``png_scales_from``). A file that cannot be read is listed, never fatal. ``echo`` receives notes.
    ``backend``: ``torch`` or the models' exports (:class:`~analysis.inference.predictor.Predictor`)."""
    from analysis.reports.films import DRAW_SIZE

    size = int(size or DRAW_SIZE)
    if size < 32:
        raise UserError(f"--size must be at least 32 px (got {size})")
    if cards < 1:
        raise UserError(f"--cards must be at least 1 (got {cards})")
    images, out = Path(images), Path(out)
    tree = find_films(images)
    films = tree.films
    _check_out(out, images)
    predictor = Predictor.from_run(run, batch=batch, device=device, workers=workers, backend=backend)
    setting = predictor.setting
    png_scales = png_scales_for(images if images.is_dir() else images.parent, films, png_scales_from, echo)
    staged = stage(films, tree.syntax, out)  # one path per film id, named by it
    annotated: dict[str, tuple[str, float]] = {}
    draw_errors: dict[str, str] = {}

    def draw(part: Prediction) -> None:  # each chunk drawn while its films are still decoded
        drawn, errors = _draw(part, staged, setting, out, size, png_scales)
        annotated.update(drawn)
        draw_errors.update(errors)

    try:
        prediction = predictor.predict(
            list(staged.values()), png_scales=png_scales, all_probabilities=bool(setting.classifiers),
            progress=progress, chunk=CHUNK_BATCHES * batch, on_chunk=draw,
        )  # fmt: skip
    finally:
        shutil.rmtree(out / STAGING_DIR, ignore_errors=True)
    table = prediction_table(
        prediction, tree.files, classifier=bool(setting.classifiers), gated=bool(setting.gate),
        box_scale=setting.box_scale, annotated=annotated, errors=draw_errors, ignored=tree.skipped,
        syntax=tree.syntax,
    )  # fmt: skip
    paths = {"predictions": write_csv_atomic(table, out / PREDICTIONS_CSV)}
    failed = {**draw_errors, **prediction.failed}
    result = FilmPredictions(out, paths, table, {k: out / v for k, (v, _) in annotated.items()}, failed,
                             tree.skipped, setting, len(films))  # fmt: skip
    paths.update(_write_report(result, images, prediction, cards))
    if dicom:
        from analysis.reports.presentation import write_presentation_states

        readable = {p: films[p] for p in films if p not in prediction.failed and tree.syntax.get(p) != "PNG"}
        written, missing = write_presentation_states(readable, prediction.boxes, out / DICOM_DIR,
                                                     description=setting.describe())  # fmt: skip
        for pid, why in missing.items():
            echo(f"note: {tree.files[pid]}: {why}")
        paths["dicom"] = out / DICOM_DIR
        result.presentation_states.update(written)
    if submission is not None:
        write_submission(submission, list(films), prediction.boxes)
        validate_submission(submission, films)
        paths["submission"] = Path(submission)
    return result


def _title(pid: str, prediction: Prediction) -> str:
    """The strip along the top of an annotated film: the patient, P(opacity) when a classifier saw it."""
    p = prediction.p_opacity.get(pid)
    return f"{pid}   P(opacity) {p:.2f}" if p is not None else pid


def _card_order(table: pd.DataFrame, ids: list[str]) -> list[str]:
    """Images by their most confident kept box, then their most confident removed box, then patientId."""
    kept = _kept(table)
    kept_max = table[kept].groupby("patientId")["conf"].max()
    removed_max = table[table["conf"].notna() & ~kept].groupby("patientId")["conf"].max()
    return sorted(ids, key=lambda i: (-kept_max.get(i, -1.0), -removed_max.get(i, -1.0), i))


def _caption(pid: str, rows: pd.DataFrame, setting: TunedSetting) -> str:
    kept = rows[_kept(rows)]
    gone = rows["conf"].notna() & ~_kept(rows)
    parts = [f"{pid} ({rows['file'].iloc[0]})"]
    parts.append(
        f"{len(kept)} box(es), most confident {kept['conf'].max():.2f}"
        if len(kept)
        else f"no box at conf >= {setting.conf:g}"
    )
    if "p_opacity" in rows and pd.notna(rows["p_opacity"].iloc[0]):
        parts.append(f"P(opacity) {rows['p_opacity'].iloc[0]:.3f}")
    if gone.any():
        parts.append(f"the gate removed {int(gone.sum())} box(es) (dashed grey)")
    return "; ".join(parts)


def _write_report(
    result: FilmPredictions, images: Path, prediction: Prediction, cards: int = DEFAULT_CARDS
) -> dict[str, Path]:
    """``report.html`` + ``report.md`` of :func:`predict_films`: summary, unreadable files, one card per
    image (the ``cards`` most confident), most confident first."""
    from analysis.reports.films import add_card
    from analysis.reports.report import Report

    setting, table = result.setting, result.table
    report = Report(f"Predictions on {images.name}", result.out)
    score = setting.info.get("score")
    heldout = setting.info.get("score_heldout")
    tuned = ""
    if score is not None:
        tuned = f" Tuned on {setting.info.get('n_images')} images of {setting.info.get('split')}: Kaggle mAP "
        tuned += f"{score:.4f}" + (f" (held out {heldout:.4f})" if heldout is not None else "") + "."
    report.text(f"Setting: {setting.describe()}.{tuned}")
    images_rows = table[~table["file"].isin(list(result.ignored))]
    kept = _kept(images_rows)
    gone = images_rows["conf"].notna() & ~kept
    has_kept = images_rows[kept]["patientId"].nunique()
    readable = result.n_images - len(result.failed)
    counts = {
        "images": result.n_images,
        "with boxes": has_kept,
        "without boxes": readable - has_kept,
        "boxes": int(kept.sum()),
        "could not be read": len(result.failed),
        "skipped (no film)": len(result.ignored),
    }
    if setting.gate:
        counts["images whose boxes the gate removed (some or all)"] = images_rows[gone]["patientId"].nunique()
    report.table(pd.DataFrame({"": list(counts), "count": list(counts.values())}))
    legend = (
        f"Red: the boxes the setting keeps (conf >= {setting.conf:g}, box scale {setting.box_scale:g}), with "
        "their confidence"
    )
    if setting.gate:
        legend += "; dashed grey: boxes above the threshold that the classifier's gate removed"
    report.text(legend + ". Most confident image first. Every box is in predictions.csv (source pixels).")
    unread = images_rows.loc[images_rows["error"] != "", ["file", "error"]].drop_duplicates()
    if len(unread):
        report.heading("Films that could not be read")
        report.table(unread.rename(columns={"error": "reason"}))
    if result.ignored:
        report.heading("Files skipped, by reason")
        by_reason: dict[str, list[str]] = {}
        for file, reason in result.ignored.items():
            by_reason.setdefault(reason, []).append(file)
        report.table(pd.DataFrame({
            "reason": list(by_reason),
            "files": [len(v) for v in by_reason.values()],
            "examples": [", ".join(v[:5]) + (" ..." if len(v) > 5 else "") for v in by_reason.values()],
        }))  # fmt: skip
    report.heading("Images, most confident first")
    order = _card_order(images_rows, [i for i in prediction.ids if i in result.annotated])
    if len(order) > cards:
        report.text(
            f"The {cards} most confident of {len(order)} films are shown here (--cards); every film is in "
            f"{PREDICTIONS_CSV} and {ANNOTATED_DIR}/."
        )
    for pid in order[:cards]:
        add_card(report, result.annotated[pid], _caption(pid, table[table["patientId"] == pid], setting))
    written = report.write()
    return {"html": written["html"], "markdown": written["markdown"]}
