"""``analysis predict`` (a tuned run on a person's own films) and ``analysis show`` of a submission.

The slow tests train yolov8n for one epoch on a synthetic download (256-px DICOMs, converted at 64 px),
as ``tests/test_rescore_submit.py`` does; the fast ones use hand-made predictions and submissions. The
assertions are on what holds whatever the tiny model predicts: every file where ``--help`` says, every
film in ``predictions.csv``, each box drawn on its PNG where the CSV says, the submission byte for byte
``analysis submit``'s.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from analysis.inference.predictor import Prediction
from analysis.reports.film_tree import NOT_AN_IMAGE, find_films
from analysis.reports.films import KEPT_BGR, REMOVED_BGR, annotate
from analysis.reports.predict_run import predict_films, prediction_table
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.layout import PRED_COLUMNS
from tests.conftest import REPO_ROOT, subprocess_env

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
SOURCE_PX = 256  # the synthetic DICOMs' size
COLUMNS = [
    "patientId",
    "file",
    "transfer_syntax",
    "conf",
    "x",
    "y",
    "width",
    "height",
    "png_scale",
    "annotated",
    "error",
]


def run_analysis(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *map(str, args)],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def is_kept_colour(img: np.ndarray, x: int, y: int, slack: int = 1) -> bool:
    """Whether a pixel within ``slack`` of ``(x, y)`` has the kept boxes' pure red (a grey film has none)."""
    h, w = img.shape[:2]
    patch = img[max(0, y - slack) : min(h, y + slack + 1), max(0, x - slack) : min(w, x + slack + 1)]
    return bool((patch.reshape(-1, 3) == KEPT_BGR).all(axis=1).any())


def edge_midpoints(row, png_scale: float) -> list[tuple[int, int]]:
    """The middle pixel of each edge of a source-pixel box on a film drawn at ``png_scale``."""
    x1, y1 = row.x * png_scale, row.y * png_scale
    x2, y2 = (row.x + row.width) * png_scale, (row.y + row.height) * png_scale
    xm, ym = (x1 + x2) / 2, (y1 + y2) / 2
    return [(round(x1), round(ym)), (round(x2), round(ym)), (round(xm), round(y1)), (round(xm), round(y2))]


# ---------------------------------------------------------------------------------------------- fast tests


def test_table_has_every_image_and_the_gate_removed_boxes_scaled_like_the_kept() -> None:
    """A hand-made gated prediction: kept boxes, removed boxes (box scale applied to them too), an image
    without box, an unreadable one and a non-image file each appear, in that order of the ids."""
    boxes = pd.DataFrame([("a", 0.9, 10, 10, 100, 100), ("a", 0.7, 300, 300, 50, 50)], columns=PRED_COLUMNS)
    removed = pd.DataFrame([("b", 0.8, 100, 100, 200, 100)], columns=PRED_COLUMNS)
    pred = Prediction(ids=["a", "b", "c", "d"], raw=pd.concat([boxes, removed]), boxes=boxes,
                      removed=removed, p_opacity={"a": 0.91, "b": 0.12, "c": 0.4},
                      failed={"d": "not a DICOM"})  # fmt: skip
    table = prediction_table(
        pred, {k: f"{k}.dcm" for k in "abcd"}, classifier=True, gated=True, box_scale=0.5,
        annotated={"a": ("images/a.png", 2.0)}, ignored={"notes.txt": NOT_AN_IMAGE},
    )  # fmt: skip
    assert list(table.columns) == [*COLUMNS[:3], "p_opacity", "gate_removed", *COLUMNS[3:]]
    assert list(table["patientId"]) == ["a", "a", "b", "c", "d", "notes.txt"]
    assert list(table["conf"].fillna(-1)) == [0.9, 0.7, 0.8, -1, -1, -1]
    assert list(table["gate_removed"].astype(object).fillna("na")) == [False, False, True, "na", "na", "na"]
    # b's removed box shrunk by the box scale 0.5 about its centre, like the kept boxes of a submission
    assert table.loc[2, ["x", "y", "width", "height"]].tolist() == [150, 125, 100, 50]
    assert table.loc[0, "png_scale"] == 2.0 and table.loc[0, "annotated"] == "images/a.png"
    assert table.loc[3, "p_opacity"] == 0.4 and table.loc[3, "error"] == ""
    assert table.loc[4, "error"] == "not a DICOM" and table.loc[5, "error"] == NOT_AN_IMAGE


def test_annotate_draws_kept_boxes_red_and_removed_ones_dashed_grey() -> None:
    gray = np.full((200, 100), 90, np.uint8)
    img = annotate(gray, 0.5, np.array([[20.0, 160, 100, 180]]), [0.83], np.array([[120.0, 60, 60, 80]]),
                   title="x   P(opacity) 0.83")  # fmt: skip
    assert img.shape == (200, 100, 3)
    box = pd.Series({"x": 20.0, "y": 160.0, "width": 100.0, "height": 180.0})
    assert all(is_kept_colour(img, x, y, slack=0) for x, y in edge_midpoints(box, 0.5))
    # the removed box's left edge at x = 60 (120 * 0.5) from y = 30 to 70: grey dashes, gaps between them
    column = img[30:71, 60]
    grey = (column == REMOVED_BGR).all(axis=1)
    assert 0.3 < grey.mean() < 0.8 and not (column == KEPT_BGR).all(axis=1).any()
    assert not (img[60:, :8] == KEPT_BGR).all(axis=2).any()  # nothing red away from the kept box


def test_input_mistakes_are_one_line(tmp_path: Path) -> None:
    films = tmp_path / "films"
    films.mkdir()
    (films / "a.dcm").write_bytes(b"garbage")
    (films / "notes.txt").write_text("x")
    tree = find_films(films)
    assert list(tree.films) == ["a"] and tree.skipped == {"notes.txt": NOT_AN_IMAGE}
    with pytest.raises(UserError, match="inside --images"):
        predict_films(tmp_path / "run", films, films / "out", progress=False)
    with pytest.raises(UserError, match="no such file or folder"):
        predict_films(tmp_path / "run", tmp_path / "nowhere", tmp_path / "out", progress=False)
    with pytest.raises(UserError, match="not a DICOM or PNG film"):
        predict_films(tmp_path / "run", films / "notes.txt", tmp_path / "out", progress=False)
    done = run_analysis("predict", tmp_path / "run", "--images", films, "--out", tmp_path / "out")
    assert done.returncode == 2 and "kaggle.json: no tuned conf/scale (no such file)" in done.stderr
    assert done.stderr.count("\n") == 1 and not (tmp_path / "out").exists()


def test_help_names_every_output() -> None:
    """The outputs the slow tests find in --out are the ones --help promises (and predict is listed)."""
    done = run_analysis("predict", "--help")
    text = " ".join(done.stdout.split())
    assert done.returncode == 0
    for name in ("predictions.csv", "images/<patientId>.png", "report.html", "report.md", "--submission"):
        assert name in text, name
    assert "predict" in run_analysis("--help").stdout


@pytest.fixture(scope="module")
def test_films(tmp_path_factory) -> Path:
    """Five synthetic test DICOMs (256 px) of a Kaggle-layout download."""
    from convert.synth import generate

    root = tmp_path_factory.mktemp("films")
    generate(root / "kaggle", patients=6, test_patients=5, seed=2, imgsz=SOURCE_PX)
    return root / "kaggle" / "stage_2_test_images"


def test_show_a_submission_draws_its_boxes_and_names_the_mismatches(test_films: Path, tmp_path: Path) -> None:
    films = tmp_path / "test"
    shutil.copytree(test_films, films)
    ids = sorted(p.stem for p in films.glob("*.dcm"))
    sub = tmp_path / "sub.csv"
    rows = [
        "patientId,PredictionString",
        f"{ids[0]},0.5000 10.0 20.0 100.0 80.0",
        f"{ids[1]},0.9000 120.0 60.0 90.0 150.0 0.3000 20.0 40.0 50.0 50.0",
        f"{ids[2]},",
        f"{ids[3]},",  # ids[4] has no row
        "ghost-patient,0.7000 1.0 1.0 10.0 10.0",  # no film
    ]
    sub.write_text("\n".join(rows) + "\n")
    done = run_analysis("show", sub, "--images", films, "--out", tmp_path / "show", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "1 patientId(s) of sub.csv have no film" in done.stdout and "ghost-patient" in done.stdout
    assert f"1 film(s) of {films} have no row in sub.csv: {ids[4]}" in done.stdout
    assert "5 patients (3 with boxes, 2 without), 4 drawn" in done.stdout
    html = (tmp_path / "show" / "report.html").read_text()
    drawn = re.findall(r'data-file="images/([^"]+)\.png"', html)
    assert drawn == [ids[1], ids[0], *sorted(ids[2:4])]  # most confident box first
    assert "3 with boxes (4 boxes), 2 without" in html
    table = pd.read_csv(tmp_path / "show" / "images.csv", dtype={"patientId": str}, keep_default_na=False)
    assert list(table["n_boxes"]) == [1, 2, 0, 0, 1] and list(table["has_image"]) == [True] * 4 + [False]
    scale = 640 / SOURCE_PX
    for pid, boxes in ((ids[0], [(10, 20, 100, 80)]), (ids[1], [(120, 60, 90, 150), (20, 40, 50, 50)])):
        img = cv2.imread(str(tmp_path / "show" / "images" / f"{pid}.png"))
        assert img.shape[:2] == (640, 640)
        for x, y, w, h in boxes:
            box = pd.Series({"x": x, "y": y, "width": w, "height": h})
            assert all(is_kept_colour(img, *p) for p in edge_midpoints(box, scale)), (pid, box.tolist())
    img = cv2.imread(str(tmp_path / "show" / "images" / f"{ids[2]}.png"))
    assert not (img == KEPT_BGR).all(axis=2).any()  # no box, nothing red
    no_images = run_analysis("show", sub)
    assert no_images.returncode == 2 and "needs --images" in no_images.stderr
    assert no_images.stderr.count("\n") == 1


# ---------------------------------------------------------------------------------------------- slow tests


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """A tiny detector trained and rescored here, and a setting of it whose threshold keeps a handful of
    boxes on the test films (a barely trained model's tuned threshold may keep none on five films, which
    would leave the box checks nothing to check)."""
    from ultralytics import YOLO

    from analysis.inference.predictor import Predictor
    from analysis.tuning.rescoring import rescore
    from convert.rsna import convert_rsna
    from convert.synth import generate

    root = tmp_path_factory.mktemp("predict")
    generate(root / "kaggle", patients=24, test_patients=5, seed=1, imgsz=SOURCE_PX)
    convert_rsna(root / "kaggle", root / "ds", imgsz=64, val_fraction=0.34, workers=1, progress=False,
                 echo=lambda *a: None)  # fmt: skip
    YOLO("yolov8n.yaml").train(
        data=str(root / "ds" / "data.yaml"), imgsz=64, epochs=1, batch=4, workers=0, device="cpu",
        project=str(root / "runs"), name="tiny", plots=False, val=False, verbose=False, exist_ok=True,
    )  # fmt: skip
    run = root / "runs" / "tiny"
    rescore(run, root / "ds" / "data.yaml", progress=False, ultralytics_val=False)
    tests = sorted((root / "kaggle" / "stage_2_test_images").glob("*.dcm"))
    raw = Predictor.from_run(run).raw(tests, floor=0.001, progress=False)
    assert len(raw) >= 6, "the tiny model proposed fewer than 6 boxes on the test films"
    setting = json.loads((run / "kaggle.json").read_text())
    setting["conf"] = float(np.sort(raw["conf"].to_numpy())[::-1][5]) - 1e-6  # about 6 boxes kept
    tuned = root / "kaggle_test.json"
    tuned.write_text(json.dumps(setting))
    return {"root": root, "run": run, "tuned": tuned, "tests": tests}


@pytest.fixture(scope="module")
def predicted(project, tmp_path_factory) -> dict:
    """``analysis predict`` on five test DICOMs (four good, one of garbage bytes) and a text file."""
    tmp = tmp_path_factory.mktemp("predicted")
    films = tmp / "films"
    films.mkdir()
    for p in project["tests"][:4]:
        shutil.copy(p, films / p.name)
    (films / "broken-film.dcm").write_bytes(b"\x00garbage, not a DICOM\xff" * 50)
    (films / "notes.txt").write_text("not a film")
    before = sorted(p.name for p in films.rglob("*"))
    out = tmp / "out"
    done = run_analysis("predict", project["tuned"], "--images", films, "--out", out, "--submission",
                        tmp / "predict_sub.csv")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in films.rglob("*")) == before  # nothing written beside the films
    return {"films": films, "out": out, "done": done, "sub": tmp / "predict_sub.csv", "tmp": tmp}


@pytest.mark.slow
def test_predict_writes_every_output_where_the_help_says(project, predicted) -> None:
    out, films, done = predicted["out"], predicted["films"], predicted["done"]
    good = sorted(p.stem for p in films.glob("*.dcm") if p.stem != "broken-film")
    assert sorted(p.name for p in out.iterdir()) == ["images", "predictions.csv", "report.html", "report.md"]
    assert sorted(p.stem for p in (out / "images").iterdir()) == good
    assert "broken-film" in done.stdout and f"notes.txt: {NOT_AN_IMAGE}" in done.stdout
    assert "predict" in done.stderr  # the progress bar (films predicted and drawn)
    table = pd.read_csv(out / "predictions.csv", dtype={"patientId": str}, keep_default_na=False,
                        na_values=[""])  # fmt: skip
    assert list(table.columns) == COLUMNS  # no classifier in this setting: no p_opacity, no gate_removed
    assert set(table["patientId"]) == {*good, "broken-film", "notes.txt"}  # every file appears
    broken = table[table["patientId"] == "broken-film"]
    assert len(broken) == 1 and broken["conf"].isna().all() and broken["error"].iloc[0] != ""
    assert table.loc[table["patientId"] == "notes.txt", "error"].tolist() == [NOT_AN_IMAGE]
    conf = json.loads(project["tuned"].read_text())["conf"]
    boxes = table[table["conf"].notna()]
    assert len(boxes) >= 1 and (boxes["conf"] >= conf).all()
    for pid in good:  # each good film: its boxes, or one row with empty box columns
        mine = table[table["patientId"] == pid]
        assert mine["conf"].notna().all() or (len(mine) == 1 and mine["conf"].isna().all())
        assert (mine["annotated"] == f"images/{pid}.png").all() and mine["error"].isna().all()
        assert np.allclose(mine["png_scale"], 640 / SOURCE_PX)


@pytest.mark.slow
def test_boxes_of_the_csv_are_drawn_where_it_says(predicted) -> None:
    """Each box of predictions.csv is red at the middle of its four edges on the annotated PNG, at source
    coordinates x png_scale (640 / 256 for these 256-px DICOMs); a film without a box has no red at all."""
    out = predicted["out"]
    table = pd.read_csv(out / "predictions.csv", dtype={"patientId": str}, keep_default_na=False,
                        na_values=[""])  # fmt: skip
    checked = 0
    for pid, rows in table[table["annotated"].notna()].groupby("patientId"):
        img = cv2.imread(str(out / rows["annotated"].iloc[0]))
        assert img.shape[:2] == (640, 640)
        if rows["conf"].isna().all():
            assert not (img == KEPT_BGR).all(axis=2).any(), pid
            continue
        for row in rows.itertuples():
            assert all(is_kept_colour(img, *p) for p in edge_midpoints(row, row.png_scale)), (pid, row)
            checked += 1
    assert checked == int(table["conf"].notna().sum()) >= 1


@pytest.mark.slow
def test_report_has_one_card_per_film_most_confident_first(predicted) -> None:
    out = predicted["out"]
    html = (out / "report.html").read_text()
    table = pd.read_csv(out / "predictions.csv", dtype={"patientId": str}, keep_default_na=False,
                        na_values=[""])  # fmt: skip
    films = table[table["annotated"].notna()]
    cards = re.findall(r'<figure><img src="data:image/png;base64,([^"]+)" alt="[^"]*" data-file="([^"]+)"',
                       html)  # fmt: skip
    assert html.count("<figure>") == len(cards) == films["patientId"].nunique() == 4
    for data, name in cards:  # each card is its PNG, embedded
        assert base64.b64decode(data) == (out / name).read_bytes()
    best = films.groupby("patientId")["conf"].max().fillna(-1)
    order = [Path(name).stem for _, name in cards]
    assert [best[i] for i in order] == sorted(best, reverse=True)
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing to fetch: opens from disk
    assert "broken-film.dcm" in html and "notes.txt" in html  # the unreadable files are listed
    assert "conf &gt;=" in html and "1 model(s)" in html  # TunedSetting.describe() at the top


@pytest.mark.slow
def test_submission_is_analysis_submits_byte_for_byte(project, predicted) -> None:
    theirs = predicted["tmp"] / "submit.csv"
    done = run_analysis("submit", "--weights", project["run"], "--from-run", project["tuned"], "--images",
                        predicted["films"], "--out", theirs, "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert predicted["sub"].read_bytes() == theirs.read_bytes()
    assert "broken-film," in theirs.read_text()  # the corrupt film has its (empty) row in both


@pytest.mark.slow
def test_converted_pngs_are_mapped_back_with_their_manifest(project, predicted, tmp_path) -> None:
    """The same test films as the converted 64-px PNGs: the manifest's PNG scale (0.25) maps their boxes
    to the 256-px source frame, as from the DICOMs."""
    pngs = project["root"] / "ds" / "images" / "test"
    notes = []
    got = predict_films(project["tuned"], pngs, tmp_path / "png", cards=2, progress=False, echo=notes.append)
    assert notes == [f"note: PNG scales from {project['root'] / 'ds' / 'manifest.csv'}"]
    html = got.paths["html"].read_text()  # --cards 2: the two most confident of the five films as cards
    assert html.count("<figure>") == 2 and "The 2 most confident of 5 films are shown here" in html
    assert len(got.annotated) == 5 and got.table["patientId"].nunique() == 5
    dicom = pd.read_csv(predicted["out"] / "predictions.csv", dtype={"patientId": str})
    cols = ["patientId", "conf", "x", "y", "width", "height"]
    a = got.table[got.table["patientId"].isin(dicom["patientId"])][cols].reset_index(drop=True)
    b = dicom[dicom["patientId"].isin(a["patientId"])][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, atol=1e-3, rtol=0, check_dtype=False)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (`apt-get install chromium`)")
def test_report_opens_in_headless_chromium(predicted) -> None:
    from tests.test_report_html import rendered_images

    images = rendered_images(predicted["out"] / "report.html")
    assert len(images) == 4
    for name, complete, width, height in images:
        png = cv2.imread(str(predicted["out"] / name))
        assert complete and (height, width) == png.shape[:2], f"{name} did not render"


@pytest.mark.slow
def test_a_gated_setting_gives_every_film_its_p_opacity_and_draws_removed_boxes_apart(project, tmp_path):
    """A tiny classifier rescored with the detector (``kaggle_gated/kaggle.json``), its hard gate set
    between the P(opacity) of two films with boxes: the one below loses its boxes (``gate_removed``, dashed
    grey on its PNG), the one above keeps them; every readable film has its P(opacity); the submission
    is ``analysis submit --classifier``'s byte for byte."""
    from ultralytics import YOLO

    from analysis.inference.predictor import Predictor
    from analysis.tuning.rescoring import rescore
    from convert.classify import write_classify_view

    root, run, tests = project["root"], project["run"], project["tests"]
    write_classify_view(root / "ds")
    YOLO("yolo11n-cls.yaml").train(
        data=str(root / "ds" / "classify"), imgsz=64, epochs=1, batch=4, workers=0, device="cpu",
        project=str(root / "runs"), name="cls", plots=False, verbose=False, exist_ok=True,
    )  # fmt: skip
    cls = root / "runs" / "cls"
    rescore(run, root / "ds" / "data.yaml", classifier=cls, ultralytics_val=False, progress=False)
    setting = json.loads((run / "kaggle_gated" / "kaggle.json").read_text())
    conf = json.loads(project["tuned"].read_text())["conf"]
    predictor = Predictor.from_run(project["tuned"])
    raw = predictor.raw(tests, progress=False)
    p = Predictor.from_run(run / "kaggle_gated").probabilities(tests, progress=False)
    p = dict(zip(p["patientId"], p["p_opacity"], strict=True))
    boxed = sorted({i for i in raw.loc[raw["conf"] >= conf, "patientId"]}, key=p.get)
    assert len(boxed) >= 1
    gate = (p[boxed[0]] + p[boxed[-1]]) / 2 if p[boxed[0]] < p[boxed[-1]] else p[boxed[0]] + 1e-9
    setting.update(conf=conf, gate={"mode": "hard", "gate": gate})
    tuned = tmp_path / "kaggle_gated_test.json"
    tuned.write_text(json.dumps(setting))
    films = tmp_path / "films"
    films.mkdir()
    for t in tests:
        shutil.copy(t, films / t.name)
    got = predict_films(tuned, films, tmp_path / "out", submission=tmp_path / "mine.csv", progress=False)
    table = got.table
    assert {"p_opacity", "gate_removed"} <= set(table.columns)
    assert table["p_opacity"].notna().all() and set(table["patientId"]) == {t.stem for t in tests}
    np.testing.assert_allclose(table["p_opacity"], table["patientId"].map(p), atol=1e-6)
    removed = table[table["gate_removed"].fillna(False).astype(bool)]
    assert boxed[0] in set(removed["patientId"]) and (removed["p_opacity"] < gate).all()
    kept = table[(~table["gate_removed"].fillna(True).astype(bool)) & table["conf"].notna()]
    assert (kept["p_opacity"] >= gate).all()
    if p[boxed[0]] < p[boxed[-1]]:
        assert boxed[-1] in set(kept["patientId"])
    for row in removed.itertuples():  # grey dashes on the removed box's edges, no red box there
        img = cv2.imread(str(tmp_path / "out" / row.annotated))
        s = row.png_scale
        x1, y1, y2 = (round(v * s) for v in (row.x, row.y, row.y + row.height))
        left = img[y1 : y2 + 1, max(0, min(x1, img.shape[1] - 1))]
        assert (left == REMOVED_BGR).all(axis=1).any(), row
    theirs = tmp_path / "theirs.csv"
    done = run_analysis("submit", "--weights", run, "--from-run", tuned, "--classifier", cls,
                        "--images", films, "--out", theirs, "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mine.csv").read_bytes() == theirs.read_bytes()
    html = (tmp_path / "out" / "report.html").read_text()
    assert f"hard gate {gate:g}" in html and "dashed grey" in html

    # The soft gate: every box's confidence times its film's P(opacity), then the threshold; "removed by
    # the gate" are the boxes above the threshold before that product and below it after; the submission is
    # analysis submit's byte for byte.
    threshold = conf * p[boxed[-1]] / 2
    setting.update(conf=threshold, gate={"mode": "soft", "gate": 0.0})
    soft = tmp_path / "kaggle_gated_soft.json"
    soft.write_text(json.dumps(setting))
    got = predict_films(soft, films, tmp_path / "soft", submission=tmp_path / "mine_soft.csv", progress=False)
    boxes = got.table[got.table["conf"].notna()]
    kept, gone = boxes[~boxes["gate_removed"].astype(bool)], boxes[boxes["gate_removed"].astype(bool)]
    top = raw.sort_values("conf", ascending=False).groupby("patientId").head(1).set_index("patientId")["conf"]
    best = kept.groupby("patientId")["conf"].max()
    assert boxed[-1] in best.index and (best >= threshold).all()
    np.testing.assert_allclose(best, [top[i] * p[i] for i in best.index], rtol=1e-6)
    assert ((gone["conf"] >= threshold) & (gone["conf"] * gone["p_opacity"] < threshold)).all()
    done = run_analysis("submit", "--weights", run, "--from-run", soft, "--classifier", cls,
                        "--images", films, "--out", theirs, "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mine_soft.csv").read_bytes() == theirs.read_bytes()


def _pacs_tree(root: Path, dicoms: list[Path]) -> Path:
    """A folder as an archive exports it: films named IM0000N in series folders (no extension; the same
    name in two series), a DICOMDIR, an empty file, a dangling link, a symlink loop and a text file."""
    import pydicom
    from pydicom.dataset import FileMetaDataset

    tree = root / "export"
    for series, films in (("study1/series1", dicoms[:2]), ("study1/series2", dicoms[2:3])):
        (tree / series).mkdir(parents=True)
        for k, film in enumerate(films, 1):
            shutil.copyfile(film, tree / series / f"IM{k:05d}")
    index = pydicom.Dataset()
    index.file_meta = FileMetaDataset()
    index.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    index.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    index.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    index.FileSetID = "EXPORT"
    index.save_as(tree / "DICOMDIR", enforce_file_format=True)
    (tree / "empty.dcm").write_bytes(b"")
    (tree / "gone").symlink_to(tree / "nowhere")
    (tree / "study1" / "loop").symlink_to(tree / "study1")
    (tree / "readme.txt").write_text("exported films\n")
    return tree


def test_a_pacs_tree_is_read_by_content(test_films: Path, tmp_path: Path) -> None:
    films = sorted(test_films.glob("*.dcm"))
    tree = find_films(_pacs_tree(tmp_path, films))
    assert sorted(tree.films) == ["IM00002", "study1__series1__IM00001", "study1__series2__IM00001"]
    assert tree.files["IM00002"] == "study1/series1/IM00002"
    assert set(tree.syntax.values()) == {"JPEG Baseline (Process 1)"}
    assert tree.skipped == {
        "DICOMDIR": "DICOMDIR: the folder's index, not a film (its films are read from the tree itself)",
        "empty.dcm": "empty file (0 bytes): not predicted",
        "gone": "unreadable: No such file or directory",
        "readme.txt": NOT_AN_IMAGE,
        "study1/loop/": "symlink loop: this folder was read already",
    }


@pytest.mark.slow
def test_predict_on_a_pacs_tree_names_every_file(project, tmp_path: Path) -> None:
    tree = _pacs_tree(tmp_path, project["tests"][:3])
    out = tmp_path / "out"
    done = run_analysis("predict", project["tuned"], "--images", tree, "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "3 film(s):" in done.stdout and "5 other file(s) skipped" in done.stdout
    table = pd.read_csv(out / "predictions.csv", dtype={"patientId": str}, keep_default_na=False)
    films = table[table["transfer_syntax"] != ""]
    assert set(films["file"]) == {
        "study1/series1/IM00001",
        "study1/series1/IM00002",
        "study1/series2/IM00001",
    }
    assert (films["error"] == "").all() and (films["transfer_syntax"] == "JPEG Baseline (Process 1)").all()
    skipped = table[table["transfer_syntax"] == ""]
    assert set(skipped["file"]) == {"DICOMDIR", "empty.dcm", "gone", "readme.txt", "study1/loop/"}
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "IM00002.png", "study1__series1__IM00001.png", "study1__series2__IM00001.png"]  # fmt: skip
    assert not (out / ".films").exists()  # the staging links are gone
    html = (out / "report.html").read_text()
    assert "Files skipped, by reason" in html and "symlink loop" in html


@pytest.mark.slow
def test_dicom_answers_reference_each_film_and_draw_its_boxes(project, tmp_path: Path) -> None:
    """--dicom: one presentation state per film, referencing it by its UIDs, whose rectangles are the boxes
    of predictions.csv in the film's own pixels; valid by dciodvfy (dicom3tools) where it is installed."""
    import pydicom

    from analysis.reports.presentation import box_of

    films = tmp_path / "films"
    films.mkdir()
    for p in project["tests"]:
        shutil.copyfile(p, films / p.name)
    out = tmp_path / "out"
    done = run_analysis("predict", project["tuned"], "--images", films, "--out", out, "--dicom", "--quiet")
    assert done.returncode == 0, done.stderr
    assert f"presentation states: {len(project['tests'])} in {out / 'dicom'}" in done.stdout
    table = pd.read_csv(
        out / "predictions.csv", dtype={"patientId": str}, keep_default_na=False, na_values=[""]
    )
    drawn = 0
    for path in project["tests"]:
        film, pr = pydicom.dcmread(path), pydicom.dcmread(out / "dicom" / f"{path.stem}_pr.dcm")
        assert pr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.11.1"  # Grayscale Softcopy Presentation State
        assert pr.StudyInstanceUID == film.StudyInstanceUID
        series = pr.ReferencedSeriesSequence[0]
        assert series.SeriesInstanceUID == film.SeriesInstanceUID
        assert series.ReferencedImageSequence[0].ReferencedSOPInstanceUID == film.SOPInstanceUID
        rows = table[(table["patientId"] == path.stem) & table["conf"].notna()]
        expected = np.array(sorted(map(tuple, rows[["x", "y", "width", "height"]].to_numpy())))
        annotations = pr.get("GraphicAnnotationSequence", [])
        objects = [g for a in annotations for g in a.GraphicObjectSequence]
        texts = [t.UnformattedTextValue for a in annotations for t in a.get("TextObjectSequence", [])]
        found = np.array(sorted(box_of(g.GraphicData) for g in objects))
        assert found.shape == expected.shape and np.allclose(found, expected, atol=1e-3)  # FL: float32
        assert len(texts) == len(rows) and all(t.startswith("opacity 0.") for t in texts)
        assert all(g.GraphicAnnotationUnits == "PIXEL" and g.NumberOfGraphicPoints == 5 for g in objects)
        drawn += len(objects)
    assert drawn >= 1
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian's dicom3tools; .ci/run installs it) absent: objects not validated")
    for pr_file in sorted((out / "dicom").glob("*_pr.dcm")):
        check = subprocess.run(["dciodvfy", str(pr_file)], capture_output=True, text=True)
        errors = [line for line in (check.stdout + check.stderr).splitlines() if line.startswith("Error")]
        assert not errors, (pr_file.name, errors)


@pytest.mark.slow
def test_predict_reads_each_film_once(project, tmp_path: Path, monkeypatch) -> None:
    """The detector and the picture share one decode of each film (and a chunk at a time: CHUNK_BATCHES)."""
    import rsna_yolo.core.dicom as dicom
    from analysis.reports import predict_run

    decoded: list[str] = []
    real = dicom.read_dicom

    def counting(path, *, headers_only: bool = False):
        if not headers_only:
            decoded.append(Path(path).name)
        return real(path, headers_only=headers_only)

    monkeypatch.setattr(dicom, "read_dicom", counting)
    monkeypatch.setattr(predict_run, "CHUNK_BATCHES", 1)  # batch 2: three chunks for five films
    films = tmp_path / "films"
    films.mkdir()
    for p in project["tests"]:
        shutil.copyfile(p, films / p.name)
    result = predict_films(project["tuned"], films, tmp_path / "out", batch=2, progress=False,
                           echo=lambda *a: None)  # fmt: skip
    assert sorted(decoded) == sorted(p.name for p in project["tests"])  # once each, not twice
    assert len(result.annotated) == len(project["tests"]) and not result.failed
