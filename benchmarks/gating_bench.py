"""From a basic CNN to the winners' recipe, measured: detectors alone and gated by classifiers.

On a HARD synthetic dataset (``convert synth --difficulty hard``: Not Normal films carry findings that mimic
opacity inside the lungs, where detectors put false boxes), in one run:

1. generate ``--patients`` films and convert them (``--imgsz``) with the classification view;
2. train the basic CNN detector (``yolo_configs/models/basic_cnn_det.yaml``) and a YOLO detector
   (``--det-model``, default yolo11n.yaml), the basic CNN classifier (``basic_cnn_cls.yaml``) and a YOLO
   classifier (``--cls-model``, default yolo11n-cls.yaml), each with ``python -m train`` (W&B off);
3. rescore each detector alone and gated by each classifier (``analysis rescore --classifier``);
4. time inference on the val images (images/s, this machine, batch 16).

It prints one table (model, Kaggle mAP alone, gated by each classifier, gated by the truth itself: the
ceiling a perfect classifier would reach, images/s) and the loss split of
each detector at its tuned threshold (the share lost to false boxes on Normal / Not Normal films is what
gating must reduce), and writes ``results.json`` and ``results.md`` into ``--out``. Reruns reuse finished
steps (data, training runs, cached predictions). SYNTHETIC scores say nothing about real X-rays.

    python benchmarks/gating_bench.py --out runs/gating_bench [--patients 2000] [--imgsz 256]
        [--det-epochs 15] [--cls-epochs 15] [--det-model yolo11n.yaml] [--cls-model yolo11n-cls.yaml]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import offline  # noqa: E402,F401  (before anything imports ultralytics)


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def train(name: str, out: Path, args: list[str]) -> Path:
    run_dir = out / "runs" / name
    if (run_dir / "weights" / "best.pt").is_file() and (
        (run_dir / "kaggle.json").is_file() or (run_dir / "classify.json").is_file()
    ):
        print(f"reusing {run_dir}")
        return run_dir
    start = time.perf_counter()
    run([sys.executable, "-m", "train", *args, "wandb=False", "plots=False", "workers=0",
         f"project={out / 'runs'}", f"name={name}", "exist_ok=True"])  # fmt: skip
    (run_dir / "bench_train_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    return run_dir


def images_per_second(kind: str, weights: Path, images: list[Path]) -> float:
    """Inference rate on ``images`` (PNG decode included), after one warm-up batch."""
    if kind == "det":
        from analysis.inference.predict import predict_images as predict

        kwargs = {"floor": 0.01}
    else:
        from analysis.inference.classifier import predict_probs as predict

        kwargs = {}
    predict([weights], images[:16], batch=16, progress=False, **kwargs)
    start = time.perf_counter()
    predict([weights], images, batch=16, progress=False, **kwargs)
    return len(images) / (time.perf_counter() - start)


def perfect_gate(run_dir: Path, data_yaml: Path, alone: dict) -> float:
    """The ceiling of gating: the detector's cached val predictions gated, with the same tuning, by the
    truth itself (P(opacity) 1 on Lung Opacity films, 0 on the others), i.e. by a perfect classifier."""
    import pandas as pd

    from analysis.scoring.truth import dataset_truth
    from analysis.tuning.gating import best_gate, gate_sweep
    from core.layout import dataset_split

    root, manifest = dataset_split(data_yaml, "val")
    truth = dataset_truth(root, manifest, "val").truth
    frame = pd.read_csv(Path(alone["out_dir"]) / alone["predictions"], dtype={"patientId": str})
    perfect = {pid: float(len(boxes) > 0) for pid, boxes in truth.items()}
    return float(best_gate(gate_sweep(truth, frame, perfect))["score"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "gating_bench")
    p.add_argument("--patients", type=int, default=2000)
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--det-epochs", type=int, default=15)
    p.add_argument("--cls-epochs", type=int, default=15)
    p.add_argument("--det-model", default="yolo11n.yaml")
    p.add_argument("--cls-model", default="yolo11n-cls.yaml")
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
    det_common = [hyp, f"data={data / 'data.yaml'}", f"imgsz={a.imgsz}", f"epochs={a.det_epochs}"]
    cls_common = ["task=classify", f"data={data / 'classify'}", f"imgsz={a.imgsz // 2}",
                  f"epochs={a.cls_epochs}", "batch=32"]  # fmt: skip
    models = REPO / "yolo_configs" / "models"
    detectors = {
        "basic CNN detector": train(
            "det_basic", out, [*det_common, f"model={models / 'basic_cnn_det.yaml'}"]
        ),
        f"YOLO detector ({a.det_model})": train("det_yolo", out, [*det_common, f"model={a.det_model}"]),
    }
    classifiers = {
        "basic CNN classifier": train(
            "cls_basic", out, [*cls_common, f"model={models / 'basic_cnn_cls.yaml'}"]
        ),
        f"YOLO classifier ({a.cls_model})": train("cls_yolo", out, [*cls_common, f"model={a.cls_model}"]),
    }

    from analysis.tuning.rescoring import rescore
    from core.layout import read_dataset

    root, manifest = read_dataset(data / "data.yaml")
    val_images = [root / png for png in manifest.loc[manifest["split"] == "val", "png"]]
    rows, detail = [], {}
    for name, run_dir in classifiers.items():
        result = json.loads((run_dir / "classify.json").read_text())
        rate = images_per_second("cls", run_dir / "weights" / "best.pt", val_images)
        rows.append({"model": name, "kind": "classifier", "accuracy": result["accuracy"],
                     "auc_opacity": result["auc_opacity"], "images_per_s": rate})  # fmt: skip
    for name, run_dir in detectors.items():
        alone = rescore(run_dir, data / "data.yaml", ultralytics_val=False, progress=False)
        rate = images_per_second("det", run_dir / "weights" / "best.pt", val_images)
        row = {"model": name, "kind": "detector", "kaggle_map": alone["score"], "conf": alone["conf"],
               "images_per_s": rate}  # fmt: skip
        b = alone["breakdown"]
        row["false_box_share"] = b["false_box_loss"] / b["loss"] if b["loss"] else 0.0
        row["gated by the truth"] = perfect_gate(run_dir, data / "data.yaml", alone)
        for cname, crun in classifiers.items():
            gated = rescore(run_dir, data / "data.yaml", classifier=crun, ultralytics_val=False,
                            progress=False, out_dir=run_dir / f"kaggle_gated_{crun.name}")  # fmt: skip
            row[f"gated by {cname}"] = gated["score"]
            detail[f"{name} + {cname}"] = {"gate": gated["gate"], "gate_effect": gated["gate_effect"]}
        rows.append(row)
        detail[name] = {"breakdown": b}

    lines = [
        f"SYNTHETIC (convert synth --difficulty hard, {a.patients} patients, {len(val_images)} val images, "
        f"imgsz {a.imgsz}); scores say nothing about real X-rays.",
        "",
        "| model | Kaggle mAP alone | "
        + " | ".join(f"gated by {c}" for c in classifiers)
        + " | gated by the truth (the ceiling) | val loss lost to false boxes | accuracy | ROC AUC P(opacity)"
        " | images/s |",
        "|---" * (7 + len(classifiers)) + "|",
    ]
    for r in rows:
        cells = [r["model"], f"{r['kaggle_map']:.4f}" if "kaggle_map" in r else "-"]
        cells += [f"{r[f'gated by {c}']:.4f}" if f"gated by {c}" in r else "-" for c in classifiers]
        cells += [f"{r['gated by the truth']:.4f}" if "gated by the truth" in r else "-"]
        cells += [f"{r['false_box_share']:.0%}" if "false_box_share" in r else "-"]
        cells += [f"{r['accuracy']:.3f}" if "accuracy" in r else "-"]
        cells += [f"{r['auc_opacity']:.3f}" if r.get("auc_opacity") is not None else "-"]
        cells += [f"{r['images_per_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"rows": rows, "detail": detail, "args": vars(a)}, indent=2,
                                                 default=str) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
