"""Where the Kaggle loss ``1 - score`` comes from, per class of image.

:func:`breakdown` is the ``breakdown`` entry of ``kaggle.json`` (docs/ARCHITECTURE.md) and what
``analysis score`` prints; :func:`format_breakdown` turns it into lines of text.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rsna_yolo.core.layout import CLASSES, NEGATIVE_CLASSES, NORMAL, POSITIVE_CLASS

BREAKDOWN_ORDER = tuple(reversed(CLASSES))
"""Classes in the breakdown: Normal, Not Normal (the false-box loss), then Lung Opacity."""
_COUNTERS = ("n_images", "n_scored", "n_with_boxes", "sum_score", "loss_sum", "missed", "missed_loss")


def breakdown(
    scores: Mapping[str, float],
    truth: Mapping[str, np.ndarray],
    classes: Mapping[str, str],
    n_boxes: Mapping[str, int],
) -> dict:
    """Where the loss ``1 - score`` comes from, per class of image.

    ``scores``: per-image scores (left-out images absent), ``truth``: every image, ``classes``: patientId ->
    class (an image without one counts as Lung Opacity when it has ground truth, else as Normal),
    ``n_boxes``: boxes kept per image. ``loss`` of a group is ``sum(1 - score) / n_scored_total``, so the
    groups' losses add up to ``1 - score``. For Lung Opacity images the loss is split into images with no
    box at all (``missed``) and the rest (``misplaced``: wrong, too few or extra boxes).
    """
    n_scored = len(scores)
    total_loss = sum(1.0 - s for s in scores.values())

    def cls_of(pid: str) -> str:
        return classes.get(pid) or (POSITIVE_CLASS if len(truth[pid]) else NORMAL)

    groups: dict[str, dict] = {}
    for pid in truth:
        g = groups.setdefault(cls_of(pid), dict.fromkeys(_COUNTERS, 0))
        g["n_images"] += 1
        k = int(n_boxes.get(pid, 0))
        g["n_with_boxes"] += k > 0
        if pid in scores:
            g["n_scored"] += 1
            g["sum_score"] += scores[pid]
            g["loss_sum"] += 1.0 - scores[pid]
            if len(truth[pid]) and k == 0:
                g["missed"] += 1
                g["missed_loss"] += 1.0 - scores[pid]
    out_classes = {}
    for name in sorted(groups, key=lambda c: (BREAKDOWN_ORDER.index(c) if c in BREAKDOWN_ORDER else 99, c)):
        g = groups[name]
        entry = {
            "n_images": g["n_images"],
            "n_scored": g["n_scored"],
            "n_with_boxes": g["n_with_boxes"],
            "mean_score": g["sum_score"] / g["n_scored"] if g["n_scored"] else None,
            "loss": g["loss_sum"] / n_scored if n_scored else 0.0,
            "loss_share": g["loss_sum"] / total_loss if total_loss else 0.0,
        }
        if name == POSITIVE_CLASS:
            entry["missed_images"] = g["missed"]
            entry["missed_loss"] = g["missed_loss"] / n_scored if n_scored else 0.0
            entry["misplaced_loss"] = (g["loss_sum"] - g["missed_loss"]) / n_scored if n_scored else 0.0
        out_classes[name] = entry
    false_box = sum(out_classes[c]["loss"] for c in out_classes if c in NEGATIVE_CLASSES)
    positive = out_classes.get(POSITIVE_CLASS, {}).get("loss", 0.0)
    return {
        "n_scored": n_scored,
        "loss": total_loss / n_scored if n_scored else 0.0,
        "false_box_loss": false_box,
        "lung_opacity_loss": positive,
        "classes": out_classes,
    }


def format_breakdown(b: dict) -> list[str]:
    """Human-readable lines of a :func:`breakdown`."""
    lines = [f"loss 1 - score = {b['loss']:.4f} over {b['n_scored']} scored images:"]
    for name, e in b["classes"].items():
        mean = "   -  " if e["mean_score"] is None else f"{e['mean_score']:.4f}"
        line = (
            f"  {name:<30} {e['n_images']:6d} images, {e['n_scored']:6d} scored, "
            f"{e['n_with_boxes']:6d} with boxes, mean {mean}, "
            f"loss {e['loss']:.4f} ({100 * e['loss_share']:.1f}%)"
        )
        if "missed_images" in e:
            line += (
                f" = missed {e['missed_loss']:.4f} ({e['missed_images']} image"
                f"{'' if e['missed_images'] == 1 else 's'})"
                f" + misplaced {e['misplaced_loss']:.4f}"
            )
        lines.append(line)
    return lines
