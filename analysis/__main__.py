"""``python -m analysis {score,rescore,submit,predict,export,validate,eda,compare,show,ablation}``."""

import sys

from rsna_yolo.core.cli import run_cli

COMMANDS = {
    "score": (
        "analysis.scoring.score_cli",
        "score a submission CSV against the labels with the exact Kaggle metric",
    ),
    "rescore": (
        "analysis.tuning.rescore_cli",
        "predict a split with a run's weights and tune threshold/scale",
    ),
    "submit": ("analysis.inference.submit_cli", "predict test DICOMs (or PNGs) to a Kaggle submission CSV"),
    "predict": (
        "analysis.reports.predict_cli",
        "predict your own DICOMs/PNGs as a run was tuned: predictions.csv, annotated PNGs, report.html",
    ),
    "export": (
        "analysis.inference.export_cli",
        "export a tuned setting's models for ONNX Runtime or OpenVINO (then --backend onnx|openvino)",
    ),
    "validate": ("analysis.inference.validate_cli", "check a submission CSV against the test image folder"),
    "eda": ("analysis.reports.eda_cli", "exploratory report (markdown, HTML, PNG figures) of a dataset"),
    "compare": (
        "analysis.reports.compare_cli",
        "compare trained runs: table, curves, effect of each hyperparameter",
    ),
    "show": (
        "analysis.reports.show_cli",
        "draw ground truth and predictions, worst images first; or a submission CSV's boxes on its films",
    ),
    "ablation": (
        "analysis.reports.ablation_cli",
        "what each step of the recipe is worth: score, loss, inference cost",
    ),
}


def main(argv=None, prog: str = "python -m analysis") -> int:
    """Run the subcommand ``argv`` names (default: the command line)."""
    return run_cli(prog, __doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
