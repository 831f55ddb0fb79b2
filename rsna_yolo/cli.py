"""``rsna-yolo``: the installed command, one subcommand per stage.

    rsna-yolo convert synth|rsna|check|classify ...   = python -m convert ...
    rsna-yolo train [key=value ...] | resume | folds | sweep   = python -m rsna_yolo.train ...
    rsna-yolo analysis score|rescore|submit|predict|show|... = python -m analysis ...
    rsna-yolo predict RUN --images FILMS --out DIR    = python -m analysis predict ...
    rsna-yolo recipe RECIPE.yaml [--out DIR] [--plan]  the whole recipe, resumable (docs/recipes.md)
    rsna-yolo export RUN --format onnx|openvino       = python -m analysis export ...

It works from any folder and writes where each subcommand's ``--help`` says, relative to the current
folder (``runs/``, ``runs/sweeps``, ``runs/folds``) unless ``project=`` / ``--out`` say otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = __doc__.split("\n\n")[1]
STAGES = ("convert", "train", "analysis", "predict", "export", "recipe")


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default: the command line) to the stage it names."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Ultralytics takes a process whose sys.argv[0] ends with "yolo" and whose arguments hold "predict" for
    # its own CLI, and then returns no results from YOLO.predict (ultralytics.engine.model: is_cli). This
    # command is named rsna-yolo: say which program this is instead (the list is changed in place, because
    # Ultralytics keeps a reference to it).
    if sys.argv:
        sys.argv[0] = __file__
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(f"usage: rsna-yolo {{{','.join(STAGES)}}} ...\n\n{USAGE}")
        return 0 if argv else 2
    stage, rest = argv[0], argv[1:]
    if stage == "train":
        from rsna_yolo.train.__main__ import main as train_main

        return train_main(rest)
    if stage in ("analysis", "predict", "export"):
        from analysis.__main__ import main as analysis_main

        return analysis_main(rest if stage == "analysis" else [stage, *rest], prog=f"rsna-yolo {stage}")
    if stage == "recipe":
        from rsna_yolo.recipe.cli import main as recipe_main

        return recipe_main(rest, prog="rsna-yolo recipe")
    if stage == "convert":
        from convert.__main__ import main as convert_main

        return convert_main(rest, prog="rsna-yolo convert")
    print(
        f"rsna-yolo: unknown command {stage!r}; one of {', '.join(STAGES)} (rsna-yolo --help)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
