"""From a basic CNN to the winners' recipe, measured: detectors alone and gated by classifiers, from scratch
and transferred.

On a HARD synthetic dataset (``convert synth --difficulty hard``: Not Normal films carry findings that mimic
opacity inside the lungs, where detectors put false boxes, and whole-film clues: a large heart, effusions),
in one run:

1. generate ``--patients`` films and convert them (``--imgsz``) with the classification view;
2. train the basic CNN detector (``yolo_configs/models/basic_cnn_det.yaml``) and a YOLO detector
   (``--det-model``, default yolo11n.yaml) with ``python -m train`` (W&B off);
3. train every classifier of :func:`classifier_tries` at the same budget (``--cls-epochs``): the basic CNN
   classifier and a YOLO classifier (``--cls-model``), each from scratch and transferred from the detector of
   its family (``pretrained=<detector run>``: the backbone the detector learnt on the same films), with
   Ultralytics' classifier augmentation or whole-film augmentation (:data:`FILM_AUGMENT`), at half the
   detector's input size or (``_big``) at its full size;
4. gate each detector by each classifier, by the best classifier with flip TTA and by an ensemble of the
   best ones (``analysis rescore --classifier``; the gate is tuned with the threshold and box scale), and
   by the truth itself (the ceiling a perfect classifier would reach);
5. time inference on the val images (images/s, this machine, batch 16).

It prints two tables, detectors and classifiers (init, transferred tensors, input size, training seconds,
ROC AUC of P(opacity) on val, gate chosen, gated score, share of the gap to the ceiling recovered: tuned
score against the tuned ceiling and held-out score against the held-out ceiling, images/s), the total time,
and writes ``results.json`` and ``results.md`` into ``--out``. Reruns reuse finished steps (data, training
runs, cached predictions). SYNTHETIC scores say nothing about real X-rays.

    python benchmarks/gating_bench.py --out runs/gating_bench [--patients 2000] [--imgsz 256]
        [--det-epochs 15] [--cls-epochs 15] [--det-model yolo11n.yaml] [--cls-model yolo11n-cls.yaml]
        [--tries yolo_film,yolo_tr_film,yolo,yolo_tr,basic,basic_tr] [--ensemble 3] [--cls-args '...']
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rsna_yolo import offline  # noqa: E402,F401  (before anything imports ultralytics)

MODELS = REPO / "yolo_configs" / "models"


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def train(name: str, out: Path, args: list[str], epochs: int) -> Path:
    """A ``python -m train`` run in ``out/runs/name`` (reused when it finished its epochs). Detectors train
    with ``rescore=False``: the benchmark rescores them itself."""
    from rsna_yolo.train.resume import completed_epochs

    run_dir = out / "runs" / name
    if (run_dir / "weights" / "best.pt").is_file() and completed_epochs(run_dir / "results.csv") >= epochs:
        print(f"reusing {run_dir}")
        return run_dir
    start = time.perf_counter()
    run([sys.executable, "-m", "train", *args, "wandb=False", "plots=False", "workers=0",
         f"project={out / 'runs'}", f"name={name}", "exist_ok=True"])  # fmt: skip
    (run_dir / "bench_train_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    return run_dir


def train_seconds(run_dir: Path) -> float | None:
    """Wall time of the run's ``python -m train`` (setup and final evaluation included), else the training
    time Ultralytics recorded in ``results.csv`` (a run trained by an earlier, interrupted benchmark)."""
    path = run_dir / "bench_train_seconds.txt"
    if path.is_file():
        return float(path.read_text())
    results = run_dir / "results.csv"
    if not results.is_file():
        return None
    import pandas as pd

    frame = pd.read_csv(results)
    frame.columns = [c.strip() for c in frame.columns]
    return float(frame["time"].iloc[-1]) if "time" in frame and len(frame) else None


def images_per_second(kind: str, weights: list[Path], images: list[Path], tta: bool = False) -> float:
    """Inference rate on ``images`` (PNG decode included), after one warm-up batch."""
    if kind == "det":
        from analysis.inference.predict import predict_images as predict

        kwargs = {"floor": 0.01}
    else:
        from analysis.inference.classifier import predict_probs as predict

        kwargs = {"tta": tta}
    predict(weights, images[:16], batch=16, progress=False, **kwargs)
    start = time.perf_counter()
    predict(weights, images, batch=16, progress=False, **kwargs)
    return len(images) / (time.perf_counter() - start)


def val_truth(data_yaml: Path):
    from analysis.scoring.truth import dataset_truth
    from rsna_yolo.core.layout import dataset_split

    root, manifest = dataset_split(data_yaml, "val")
    return dataset_truth(root, manifest, "val")


def perfect_gate(gt, alone: dict) -> tuple[float, float | None]:
    """The ceiling of gating, tuned and held out: the detector's cached val predictions gated, with the same
    tuning, by the truth itself (P(opacity) 1 on Lung Opacity films, 0 on the others), i.e. by a perfect
    classifier."""
    import pandas as pd

    from analysis.tuning import tune_gate

    frame = pd.read_csv(Path(alone["out_dir"]) / alone["predictions"], dtype={"patientId": str})
    perfect = {pid: float(len(boxes) > 0) for pid, boxes in gt.truth.items()}
    tuned = tune_gate(gt, frame, perfect)
    return tuned.score, tuned.score_heldout


def recovered(gated: float | None, alone: float | None, ceiling: float | None) -> float | None:
    """The share of the gap between the detector alone and the truth-gated ceiling that a gate recovered
    (tuned scores with tuned scores, held-out with held-out); None without a gap."""
    if gated is None or alone is None or ceiling is None or ceiling <= alone:
        return None
    return (gated - alone) / (ceiling - alone)


def auc_of(gated: dict, truth: dict) -> float | None:
    """ROC AUC of the gate's P(opacity) (``classifier_val.csv`` of the gated rescoring) against the truth
    (Lung Opacity films: the ones with boxes)."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    probs = pd.read_csv(Path(gated["out_dir"]) / gated["classifier_predictions"], dtype={"patientId": str})
    labels = [int(len(truth.truth[pid]) > 0) for pid in probs["patientId"]]
    return float(roc_auc_score(labels, probs["p_opacity"])) if 0 < sum(labels) < len(labels) else None


# Ultralytics' classifier augmentation crops 50-100% of the film's area (RandomResizedCrop), adds
# RandAugment and random erasing: the whole-film clues of the hard level (heart size against the chest, an
# effusion at a base) are cut away or distorted. "film": whole films, flips and brightness only
# (scale=0.1 erasing=0.0 auto_augment=None hsv_h=0.0 hsv_s=0.0 hsv_v=0.2: the hyperparameter file users get).
FILM_AUGMENT = ["cfg=yolo_configs/hyp/classify_film.yaml"]
TRIES = "yolo_film,yolo_tr_film,yolo,yolo_tr,basic,basic_tr"


def classifier_tries(a, det_runs: dict[str, Path]) -> dict[str, dict]:
    """Every classifier tried, at the same training budget (``--cls-epochs``): ``{run name: {label, model,
    source, imgsz, args}}``. A try's key is ``basic`` or ``yolo`` (``--cls-model``), then any of ``_big``
    (the detector's input size instead of half of it), ``_tr`` (transferred from the detector of its family:
    ``pretrained=<det_basic or det_yolo run>``), ``_film`` (:data:`FILM_AUGMENT` instead of Ultralytics'
    augmentation); e.g. ``yolo_big_tr_film``."""
    out = {}
    for key in (t for t in a.tries.split(",") if t):
        family, *flags = key.split("_")
        if family not in ("basic", "yolo") or not set(flags) <= {"big", "tr", "film"}:
            raise SystemExit(f"--tries: {key}: basic or yolo, then any of _big, _tr, _film")
        model = str(MODELS / "basic_cnn_cls.yaml") if family == "basic" else a.cls_model
        imgsz = a.imgsz if "big" in flags else a.imgsz // 2
        source = f"det_{family}" if "tr" in flags else None
        name = "basic CNN classifier" if family == "basic" else f"YOLO classifier ({a.cls_model})"
        label = f"{name}, {f'transferred from {source}' if source else 'from scratch'}, {imgsz} px"
        out[f"cls_{key}"] = {"label": label + (", whole-film augmentation" if "film" in flags else ""),
                             "model": model, "source": det_runs[source] if source else None, "imgsz": imgsz,
                             "args": FILM_AUGMENT if "film" in flags else []}  # fmt: skip
    return out


def main() -> int:
    started = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "gating_bench")
    p.add_argument("--patients", type=int, default=2000)
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--det-epochs", type=int, default=15)
    p.add_argument("--cls-epochs", type=int, default=15)
    p.add_argument("--det-model", default="yolo11n.yaml")
    p.add_argument("--cls-model", default="yolo11n-cls.yaml")
    p.add_argument("--tries", default=TRIES,
                   help="classifiers to train, comma-separated (see classifier_tries)")  # fmt: skip
    p.add_argument("--ensemble", type=int, default=3, help="gate by the mean of the N best classifiers")
    p.add_argument("--cls-args", default="",
                   help="more key=value words for every classifier, e.g. 'batch=16 nbs=16 warmup_epochs=1' "
                   "(run names get a tag of them and the epochs)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    out = a.out.resolve()
    kaggle, data = out / "kaggle", out / "dataset"
    if not (kaggle / "stage_2_train_labels.csv").is_file():
        run([sys.executable, "-m", "convert", "synth", "--out", str(kaggle), "--patients", str(a.patients),
             "--seed", str(a.seed), "--imgsz", "512", "--difficulty", "hard"])  # fmt: skip
    if not (data / "classify").is_dir():
        run([sys.executable, "-m", "convert", "rsna", "--src", str(kaggle), "--out", str(data), "--imgsz",
             str(a.imgsz), "--classify", "--no-progress"])  # fmt: skip
    hyp = "cfg=yolo_configs/hyp/small_data.yaml"
    det_common = [
        hyp,
        f"data={data / 'data.yaml'}",
        f"imgsz={a.imgsz}",
        f"epochs={a.det_epochs}",
        "rescore=False",
    ]
    det_runs = {
        "det_basic": train(
            "det_basic", out, [*det_common, f"model={MODELS / 'basic_cnn_det.yaml'}"], a.det_epochs
        ),
        "det_yolo": train("det_yolo", out, [*det_common, f"model={a.det_model}"], a.det_epochs),
    }
    detectors = {
        "basic CNN detector": det_runs["det_basic"],
        f"YOLO detector ({a.det_model})": det_runs["det_yolo"],
    }
    classifiers: dict[str, dict] = {}
    extra = a.cls_args.split()
    # another training recipe or budget is another run: tag the run names so nothing is wrongly reused
    tag = (
        f"_e{a.cls_epochs}_{hashlib.sha1(a.cls_args.encode()).hexdigest()[:6]}"
        if extra or a.cls_epochs != 15
        else ""
    )
    for key, t in classifier_tries(a, det_runs).items():
        key += tag
        args = ["task=classify", f"data={data / 'classify'}", f"imgsz={t['imgsz']}", f"epochs={a.cls_epochs}",
                "batch=32", f"model={t['model']}", *t["args"], *extra]  # fmt: skip
        if t["source"] is not None:
            args.append(f"pretrained={t['source']}")
        try:
            classifiers[key] = {**t, "run_dir": train(key, out, args, a.cls_epochs)}
        except subprocess.CalledProcessError as exc:
            print(f"{key}: training failed ({exc}); left out of the table")

    from analysis.tuning.rescoring import rescore
    from rsna_yolo.core.layout import read_dataset

    root, manifest = read_dataset(data / "data.yaml")
    val_images = [root / png for png in manifest.loc[manifest["split"] == "val", "png"]]
    truth = val_truth(data / "data.yaml")
    det_rows, cls_rows = [], []
    alone_of: dict[str, dict] = {}
    for name, run_dir in detectors.items():
        alone = rescore(run_dir, data / "data.yaml", ultralytics_val=False, progress=False)
        alone_of[name] = alone
        b = alone["breakdown"]
        det_rows.append({
            "model": name, "kaggle_map": alone["score"], "conf": alone["conf"],
            "heldout": alone["score_heldout"],
            **dict(zip(("ceiling", "ceiling_heldout"), perfect_gate(truth, alone), strict=True)),
            "false_box_share": b["false_box_loss"] / b["loss"] if b["loss"] else 0.0,
            "images_per_s": images_per_second("det", [run_dir / "weights" / "best.pt"], val_images),
            "train_s": train_seconds(run_dir),
        })  # fmt: skip

    def gate_row(label: str, key: str, runs: list[Path], tta: bool, extra: dict) -> dict:
        row = {"classifier": label, "key": key, **extra}
        weights = [r / "weights" / "best.pt" for r in runs]
        row["images_per_s"] = images_per_second("cls", weights, val_images, tta=tta)
        for det in det_rows:
            det_dir = detectors[det["model"]]
            gated = rescore(det_dir, data / "data.yaml", classifier=runs, classifier_tta=tta,
                            ultralytics_val=False, progress=False,
                            out_dir=det_dir / f"kaggle_gated_{key}")  # fmt: skip
            row.setdefault("auc_opacity", auc_of(gated, truth))
            row[det["model"]] = {
                "gated": gated["score"], "gate": gated["gate"], "heldout": gated["score_heldout"],
                "recovered": recovered(gated["score"], det["kaggle_map"], det["ceiling"]),
                "recovered_heldout": recovered(gated["score_heldout"], det["heldout"],
                                               det["ceiling_heldout"]),
            }  # fmt: skip
        return row

    for key, c in classifiers.items():
        result = json.loads((c["run_dir"] / "classify.json").read_text())
        moved = result.get("transfer") or {}
        source = Path(moved["source"]).parent.parent.name if moved else None
        init = f"{moved['transferred']}/{moved['of']} tensors from {source}" if moved else "scratch"
        cls_rows.append(gate_row(c["label"], key, [c["run_dir"]], False, {
            "init": init, "imgsz": c["imgsz"], "epochs": a.cls_epochs, "accuracy": result["accuracy"],
            "train_s": train_seconds(c["run_dir"]),
        }))  # fmt: skip
    ranked = sorted(cls_rows, key=lambda r: -(r["auc_opacity"] or 0))
    if ranked:
        best = ranked[0]
        cls_rows.append(gate_row(f"{best['classifier']} + flip TTA", f"{best['key']}_tta",
                                 [classifiers[best["key"]]["run_dir"]], True,
                                 {"init": best["init"], "imgsz": best["imgsz"],
                                  "epochs": a.cls_epochs}))  # fmt: skip
    if a.ensemble > 1 and len(ranked) >= 2:
        members = ranked[: a.ensemble]
        cls_rows.append(gate_row(
            f"ensemble (mean P) of the {len(members)} best by AUC: " + ", ".join(m["key"] for m in members),
            f"ensemble{len(members)}", [classifiers[m["key"]]["run_dir"] for m in members], False,
            {"init": "-", "imgsz": "-", "epochs": a.cls_epochs},
        ))  # fmt: skip

    total = time.perf_counter() - started
    text = report(a, len(val_images), det_rows, cls_rows, total)
    print(text)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"detectors": det_rows, "classifiers": cls_rows,
                                                  "seconds": total, "args": vars(a)}, indent=2,
                                                 default=str) + "\n")  # fmt: skip
    return 0


def _f(value, fmt: str = ".4f") -> str:
    return "-" if value is None else format(value, fmt)


def gate_text(gate: dict) -> str:
    """``no gate`` (hard gate 0), ``soft`` or ``hard 0.35``."""
    if gate["mode"] == "soft":
        return "soft"
    return "no gate" if not gate["gate"] else f"hard {gate['gate']:g}"


def report(a, n_val: int, det_rows: list[dict], cls_rows: list[dict], seconds: float) -> str:
    lines = [
        f"SYNTHETIC (convert synth --difficulty hard, {a.patients} patients, {n_val} val images, imgsz "
        f"{a.imgsz}, detectors {a.det_epochs} epochs, classifiers {a.cls_epochs} epochs"
        + (f" with {a.cls_args}" if a.cls_args else "")
        + "): scores say nothing "
        "about real X-rays. Kaggle mAP on val, threshold, box scale and gate tuned on val (held out: tuned "
        "on one half of the val patients, scored on the other, both ways, averaged).",
        "",
        "| detector | Kaggle mAP alone (held out) | gated by the truth: the ceiling (held out) "
        "| best gated (held out, classifier) | val loss lost to false boxes | train s | images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in det_rows:
        gated = [
            (r[d["model"]]["gated"], r[d["model"]]["heldout"], r["key"]) for r in cls_rows if d["model"] in r
        ]
        top = max(gated, key=lambda g: g[0]) if gated else None
        lines.append(
            f"| {d['model']} | {d['kaggle_map']:.4f} ({_f(d['heldout'])}) | {d['ceiling']:.4f} "
            f"({_f(d['ceiling_heldout'])}) | "
            + (f"{top[0]:.4f} ({_f(top[1])}, {top[2]})" if top else "-")
            + f" | {d['false_box_share']:.0%} | {_f(d['train_s'], '.0f')} | {d['images_per_s']:.0f} |"
        )
    lines += ["", "| classifier | key | init | imgsz | train s | accuracy | ROC AUC P(opacity) | images/s | "
              + " | ".join(f"{d['model']}: gate, gated (held out), gap recovered (held out)"
                           for d in det_rows) + " |",
              "|---" * (8 + len(det_rows)) + "|"]  # fmt: skip
    for r in cls_rows:
        cells = [r["classifier"], r["key"], str(r.get("init", "-")), str(r.get("imgsz", "-")),
                 _f(r.get("train_s"), ".0f"), _f(r.get("accuracy"), ".3f"), _f(r.get("auc_opacity"), ".3f"),
                 f"{r['images_per_s']:.0f}"]  # fmt: skip
        for d in det_rows:
            g = r[d["model"]]
            cells.append(
                f"{gate_text(g['gate'])}, {g['gated']:.4f} ({_f(g['heldout'])}), {_f(g['recovered'], '.0%')} "
                f"({_f(g.get('recovered_heldout'), '.0%')})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"total time: {seconds:.0f} s ({seconds / 60:.1f} min) on this machine"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
