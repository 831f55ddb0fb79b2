"""The recipe's one page: ``DIR/report.html`` (and ``report.md`` with its figures beside it).

Every step with its status, measured time (beside ``--plan``'s estimate when one was made), peak memory and
its tuned and held-out score; the threshold curves of the detector alone and gated; the gate curve; the worst
films of the final setting (the ones that cost the score most, by class); and each step's command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rsna_yolo.core import runs as names
from rsna_yolo.recipe.steps import DETECTOR_RUN, PLAN_JSON, RECIPE_JSON, SUBMISSION_CSV

WORST = 12


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_report(out: Path, steps, recipe: dict) -> Path:
    """Build and write the page from ``DIR/recipe.json``, ``plan.json`` and the steps' score files."""
    from matplotlib.figure import Figure

    from analysis.reports.report import Report

    record = _read(out / RECIPE_JSON) or {"steps": {}}
    plan = {r["step"]: r for r in (_read(out / PLAN_JSON) or {}).get("steps", [])}
    synthetic = recipe["data"]["synthetic"] is not None
    report = Report(f"Recipe {recipe['name']}", out)
    if synthetic:
        syn = recipe["data"]["synthetic"]
        report.text(
            f"SYNTHETIC data ({syn['patients']} patients, {syn['difficulty']} level, seed {syn['seed']}): "
            "these scores say nothing about real X-rays."
        )
    else:
        report.text(f"The Kaggle download in {recipe['data']['kaggle']}.")
    rows = []
    for step in steps:
        entry = record["steps"].get(step.name) or {}
        rows.append(
            {
                "step": step.name,
                "what": step.title,
                "status": entry.get("status", "not run"),
                "seconds": entry.get("seconds"),
                "planned s": (plan.get(step.name) or {}).get("seconds"),
                "peak MB": entry.get("peak_mb"),
                "Kaggle mAP": entry.get("score"),
                "held out": entry.get("score_heldout"),
                "AUC P(opacity)": entry.get("auc_opacity"),
            }
        )
    table = pd.DataFrame(rows).dropna(axis=1, how="all")
    report.heading("Steps")
    report.table(
        table,
        caption="Kaggle mAP: tuned on the images it is scored on; held out: tuned on one half "
        "of them (by patientId), scored on the other, both ways averaged",
    )
    scored = {s.name: _read(s.score) for s in steps if s.score is not None}
    curves = {name: pd.DataFrame(rec["sweep"]) for name, rec in scored.items() if rec and rec.get("sweep")}
    if curves:
        fig = Figure(figsize=(7, 3.6))
        ax = fig.subplots()
        for name, sweep in curves.items():
            best = sweep.groupby("conf")["score"].max()
            ax.plot(best.index, best.values, marker=".", label=name)
        ax.set_xlabel("confidence threshold")
        ax.set_ylabel("Kaggle mAP (best box scale)")
        ax.grid(alpha=0.3)
        ax.legend()
        report.heading("Threshold curves")
        report.figure(
            fig,
            "recipe_thresholds",
            "The tuned score at each confidence threshold (the best box "
            "scale at each); the steps' own tuning picks the top of its curve",
        )
    gates = next((pd.DataFrame(rec["gates"]) for rec in scored.values() if rec and rec.get("gates")), None)
    if gates is not None and not gates.empty:
        hard = gates[gates["mode"] == "hard"].sort_values("gate")
        fig = Figure(figsize=(7, 3.6))
        ax = fig.subplots()
        ax.plot(hard["gate"], hard["score"], marker=".", label="hard gate")
        soft = gates[gates["mode"] == "soft"]
        if not soft.empty:
            ax.axhline(float(soft["score"].max()), color="tab:orange", ls="--", label="soft gate (conf x P)")
        ax.set_xlabel("gate on P(opacity) (0: no gate)")
        ax.set_ylabel("Kaggle mAP")
        ax.grid(alpha=0.3)
        ax.legend()
        report.heading("The gate")
        report.figure(
            fig,
            "recipe_gate",
            "The best score for each gate: an image's boxes are dropped when the "
            "classifier's P(opacity) is below it",
        )
    worth = worth_table(out, recipe)
    if worth is not None:
        report.heading("What each part is worth")
        report.table(worth, caption=WORTH_CAPTION)
    worst = _worst_films(steps)
    if worst is not None:
        report.heading("The worst films")
        report.table(
            worst,
            caption=f"The {WORST} labelled films that cost the final tuned setting most (score 0 "
            "of a possible 1), with their class and boxes",
        )
    sub = out / SUBMISSION_CSV
    report.heading("Outputs")
    report.bullets(
        [
            f"submission: {sub}" if sub.is_file() else "no submission (no test films)",
            f"record: {out / RECIPE_JSON}",
        ]
    )
    report.heading("Commands")
    report.bullets([f"{s.name}: {s.command(out)}" for s in steps])
    return report.write()["html"]


def _worst_films(steps) -> pd.DataFrame | None:
    """Per-film scores of the detector's tuned setting (before the gate) on its scored images."""
    from analysis.scoring.metric import frame_to_preds, per_image_scores
    from analysis.scoring.submission import select_boxes
    from analysis.scoring.truth import read_truth

    det = next((s for s in steps if s.name == "detector"), None)
    rec = _read(det.score) if det and det.score else None
    if not rec or not rec.get("predictions") or not rec.get("data"):
        return None
    preds_path = det.score.parent / rec["predictions"]
    if not preds_path.is_file():
        return None
    split = None if rec.get("split") == "oof" else rec.get("split")
    gt = read_truth(rec["data"], split=split)
    preds = pd.read_csv(preds_path, dtype={"patientId": str})
    chosen = select_boxes(preds, conf=rec["conf"], box_scale=rec["scale"])
    scores = per_image_scores(gt.truth, frame_to_preds(chosen))
    n_pred = chosen.groupby("patientId").size()
    frame = pd.DataFrame({"patientId": list(scores), "score": list(scores.values())})
    frame["class"] = frame["patientId"].map(gt.classes)
    frame["true boxes"] = frame["patientId"].map(lambda p: len(gt.truth.get(p, ())))
    frame["predicted boxes"] = frame["patientId"].map(n_pred).fillna(0).astype(int)
    return frame.sort_values(["score", "patientId"]).head(WORST).reset_index(drop=True)


WORTH_CAPTION = (
    "Held out: tuned on one half of the images (by patientId), scored on the other, both ways averaged; "
    "tuned: the best setting on all of them. The change is against the row the part adds to: flip TTA and "
    "the gate to the fold ensemble, the tuned fusion to flip TTA, the gate again to the tuned fusion (the "
    "one detector is scored on a third of the images: no change is given); cost: the seconds of the steps "
    "the part adds."
)


def worth_table(out: Path, recipe: dict) -> pd.DataFrame | None:
    """The recipe's parts one at a time, held-out score first: a single detector (fold 0 on its own val
    images), the fold ensemble out of fold, + flip TTA (fused as the fold set is), + its fusion (WBF) tuned,
    + the gate, all of it. Rows whose files the recipe did not make are left out; None for one split."""
    if recipe["convert"]["folds"] < 2:
        return None
    det = out / DETECTOR_RUN
    steps = (_read(out / RECIPE_JSON) or {}).get("steps", {})

    def cost(*names: str) -> float | None:
        seconds = [steps.get(n, {}).get("seconds") for n in names]
        return None if any(v is None for v in seconds) else round(sum(seconds), 1)

    tta = _read(det / names.KAGGLE_OOF_TTA_JSON)
    # (part, its tuned record, the part it adds to, the seconds of the steps it adds)
    rows = [
        ("one detector (fold 0, on its val images)", _read(det / "fold0" / names.KAGGLE_JSON), None, None),
        ("fold ensemble, out of fold", _read(det / names.KAGGLE_OOF_JSON), None, cost("detector")),
        ("+ flip TTA (the fold set's fusion)", (tta or {}).get("default_fusion"), 1, cost("tta")),
        ("+ its fusion (WBF) tuned", tta, 2, None),
        ("fold ensemble + the gate", _read(det / names.KAGGLE_OOF_GATED_JSON), 1, cost("classifier", "gate")),
        ("all of it: flip TTA, WBF tuned, the gate", _read(det / names.KAGGLE_OOF_TTA_GATED_JSON), 3, None),
    ]
    held = [(rec or {}).get("score_heldout") for _, rec, _, _ in rows]
    table = []
    for (name, rec, base, seconds), h in zip(rows, held, strict=True):
        if not rec:
            continue
        b = None if base is None else held[base]
        table.append({"part": name, "held out": h, "tuned": rec.get("score"),
                      "held-out change": None if h is None or b is None else h - b,
                      "cost (s)": seconds})  # fmt: skip
    return pd.DataFrame(table) if len(table) > 1 else None


def worth_lines(out: Path, recipe: dict) -> list[str]:
    """:func:`worth_table` as printed lines (empty for one split)."""
    table = worth_table(out, recipe)
    if table is None:
        return []
    lines = [f"{'part':<44} {'held out':>8} {'tuned':>7} {'change':>7} {'cost s':>8}"]
    for row in table.itertuples(index=False):
        change = "" if pd.isna(row[3]) else f"{row[3]:+.4f}"
        spent = "" if pd.isna(row[4]) else f"{row[4]:.0f}"
        lines.append(f"{row[0]:<44} {_num(row[1]):>8} {_num(row[2]):>7} {change:>7} {spent:>8}")
    return lines


def _num(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.4f}"
