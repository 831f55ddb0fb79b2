"""``python -m convert {synth,rsna,check,classify}``."""

import sys

from rsna_yolo.core.cli import run_cli

COMMANDS = {
    "synth": ("convert.synth_cli", "write realistic synthetic DICOMs and CSVs in the exact Kaggle layout"),
    "rsna": ("convert.rsna_cli", "convert a Kaggle-layout folder (DICOMs + CSVs) to a YOLO dataset"),
    "check": ("convert.check_cli", "verify a converted dataset (labels, coordinates, counts)"),
    "classify": ("convert.classify_cli", "add the 3-class classification view (links) to a dataset"),
}


def main(argv=None, prog: str = "python -m convert") -> int:
    """Run the subcommand ``argv`` names (default: the command line)."""
    return run_cli(prog, __doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
