"""The documentation cannot go stale: every command line of README.md and docs/*.md goes through the
project's real argument parsers (parse only: nothing is trained, converted or written), and every relative
link points to a file that exists (and every ``#anchor`` to a heading of it).

Commands are read from fenced code blocks (```bash, ```console, ```sh and unlabelled ones; in a console
block only the lines after ``$ ``), lines ending in ``\\`` joined, comments dropped, split at ``&&``, ``||``,
``;`` and ``|``, leading ``VAR=value`` words dropped. What is checked:

- ``python -m convert|analysis ...``, ``rsna-yolo convert|analysis|predict ...``: through the package's own
  entry point (``convert.__main__.main``, ``analysis.__main__.main``, ``rsna_yolo.cli.main``) with
  argparse stopped right after parsing;
- ``python -m train|rsna_yolo.train ...`` and ``rsna-yolo train ...``: ``key=value`` words through
  ``rsna_yolo.train.args.parse_key_values`` (what a training run calls before anything else); ``resume``,
  ``folds`` and ``sweep`` through ``rsna_yolo.train.__main__.main``, their ``key=value`` words as each
  subcommand reads them;
- ``python benchmarks/X.py ...``: the benchmark's ``main()`` with ``sys.argv`` set, stopped after parsing;
- ``make TARGET``: the target is in the Makefile; ``bash scripts/X.sh``, ``python scripts/X.py``: the file
  exists; any word naming a file under ``yolo_configs/``, ``scripts/`` or ``benchmarks/`` (also as a
  ``key=value`` value): the file exists;
- a literal ``...`` is never a word of a command (placeholders are names: ``DIR``, ``RUN``, ``FILMS``).

Other commands (``kaggle``, ``unzip``, ``cd``, ``source``, ``git``, ``pip``, ``wandb``, ``yolo``, ...) are
not the project's and are left alone. Optional words in brackets (``[--tta]``) are checked as if given;
``$(...)`` is dropped (its words are only known when it runs).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "runs" / "README.md"]
COMMAND_FENCES = {"", "bash", "console", "sh", "shell"}
SEPARATORS = {"&&", "||", ";", "|"}
PYTHONS = {"python", "python3", ".venv/bin/python", "$PY", "$(PY)"}
CHECKED_FOLDERS = ("yolo_configs/", "scripts/", "benchmarks/")
TRAIN_MODULES = {"train", "rsna_yolo.train"}
PROJECT_HEADS = {*PYTHONS, "rsna-yolo", "make", "bash", "sh"}


# ---------------------------------------------------------------------------------------------- extraction


@dataclass(frozen=True)
class Command:
    """One command of a document: where it is (file, 1-based line) and its words."""

    path: str
    line: int
    words: tuple[str, ...]

    def where(self) -> str:
        return f"{self.path}:{self.line}: {' '.join(self.words)}"


def code_lines(text: str) -> list[tuple[int, str, str]]:
    """``(line number, fence language, line)`` of every line inside a fenced code block."""
    out, fence, lang = [], None, ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if fence is None:
            match = re.match(r"^(`{3,}|~{3,})\s*([\w+-]*)", stripped)
            if match:
                fence, lang = match.group(1), match.group(2).lower()
        elif stripped.startswith(fence) and stripped.strip("`~") == "":
            fence = None
        else:
            out.append((number, lang, line))
    return out


def joined_lines(text: str) -> list[tuple[int, str]]:
    """Command lines of the command blocks, continuation lines (``\\``) joined, with their first line."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, lang, line in code_lines(text):
        if lang not in COMMAND_FENCES:
            continue
        if pending is None:
            if lang == "console":
                if not line.lstrip().startswith("$ "):
                    continue
                line = line.lstrip()[2:]
            elif lang == "" and (line[:1].isspace() or line.split(" ", 1)[0] not in PROJECT_HEADS):
                continue  # an unlabelled block also holds output and diagrams: only project commands
            pending = (number, "")
        start, so_far = pending
        so_far += line.rstrip()
        if so_far.endswith("\\"):
            pending = (start, so_far[:-1] + " ")
            continue
        out.append((start, so_far))
        pending = None
    if pending is not None:
        out.append(pending)
    return out


def unbracket(word: str) -> str:
    """``[--tta]`` -> ``--tta``: an optional word of a usage line is checked as if given."""
    if word.startswith("[") and "]" not in word[:-1]:
        word = word[1:]
    if word.endswith("]") and "[" not in word:
        word = word[:-1]
    return word


def commands_of(text: str, path: str) -> tuple[list[Command], list[str]]:
    """Every command of a document, and the lines that could not be split into words."""
    commands, problems = [], []
    for number, line in joined_lines(text):
        line = re.sub(r"\$\([^()]*\)", " ", line)  # $(cat best_args.txt): known only when it runs
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            problems.append(f"{path}:{number}: {line.strip()}: cannot be split into words ({exc})")
            continue
        segment: list[str] = []
        for word in [*words, "&&"]:
            trailing = word.endswith(";") and word != ";"
            if trailing:
                segment.append(word[:-1])
            if word in SEPARATORS or trailing:
                while segment and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", segment[0]):
                    segment.pop(0)  # VAR=value before the command
                if segment and segment[0] == "time":
                    segment.pop(0)
                words_ = [w for w in (unbracket(w) for w in segment) if w]
                if words_:
                    commands.append(Command(path, number, tuple(words_)))
                segment = []
            else:
                segment.append(word)
    return commands, problems


# ------------------------------------------------------------------------------------------------ checking


class Parsed(Exception):
    """Raised in place of returning from argparse: the command line parsed, nothing runs after it."""

    def __init__(self, namespace: argparse.Namespace):
        super().__init__("parsed")
        self.namespace = namespace


class ParseError(Exception):
    """argparse's ``error()``: the message it would print before exiting with status 2."""


@contextlib.contextmanager
def parse_only(argv0: str | None = None):
    """argparse raises :class:`Parsed` once a command line is parsed, :class:`ParseError` on an error;
    ``sys.argv[0]`` (which ``rsna-yolo`` rewrites) is restored afterwards."""
    parse_args = argparse.ArgumentParser.parse_args
    parse_intermixed = argparse.ArgumentParser.parse_intermixed_args

    def stop(original):
        def wrapper(self, args=None, namespace=None):
            raise Parsed(original(self, args, namespace))

        return wrapper

    def error(self, message):
        raise ParseError(f"{self.prog}: error: {message}")

    saved_argv = list(sys.argv)
    with (
        mock.patch.object(argparse.ArgumentParser, "parse_args", stop(parse_args)),
        mock.patch.object(argparse.ArgumentParser, "parse_intermixed_args", stop(parse_intermixed)),
        mock.patch.object(argparse.ArgumentParser, "error", error),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        try:
            if argv0 is not None:
                sys.argv[:] = [argv0]
            yield
        finally:
            sys.argv[:] = saved_argv


def run_parser(call, argv0: str | None = None) -> argparse.Namespace:
    """``call()`` under :func:`parse_only`: the namespace it parsed; its error as :class:`ParseError`."""
    with parse_only(argv0):
        try:
            call()
        except Parsed as done:
            return done.namespace
        except SystemExit as exc:  # an error argparse reported its own way
            raise ParseError(f"exited with status {exc.code} before its command line was parsed") from None
    raise ParseError("ran without parsing a command line")


def check_train_words(words: list[str], subcommand: str | None) -> None:
    """``key=value`` words as ``python -m train`` reads them: a training run (and ``resume``, ``folds``)
    through ``parse_key_values``; ``sweep`` through ``key_value_pairs``, each key one Ultralytics or this
    project knows (a sweep file may supply ``kaggle_every`` for a ``kaggle_patience`` given here)."""
    from rsna_yolo.core.cli import UserError
    from rsna_yolo.train.args import OPTION_KEYS, key_value_pairs, parse_key_values

    try:
        if subcommand == "sweep":
            from ultralytics.cfg import DEFAULT_CFG_DICT

            for key, _ in key_value_pairs(words):
                if key not in DEFAULT_CFG_DICT and key not in OPTION_KEYS:
                    raise UserError(f"'{key}' is not a valid key")
        else:
            parse_key_values(words)
    except UserError as exc:
        raise ParseError(f"key=value words: {exc}") from None


def check_train(words: list[str]) -> None:
    """``python -m train ...``: the subcommands through the entry point, a training run's words directly."""
    if not words or words[0] in {"-h", "--help", "help"}:
        return
    subcommand = words[0] if words[0] in {"resume", "folds", "sweep"} else None
    if subcommand is None:
        check_train_words(words, None)
        return
    if "-h" in words or "--help" in words:
        return
    from rsna_yolo.train.__main__ import main

    namespace = run_parser(lambda: main(words))
    check_train_words(list(namespace.overrides), subcommand)


def check_package(package: str, words: list[str]) -> None:
    """``python -m convert|analysis ...`` through the package's own ``__main__.main``."""
    if "-h" in words or "--help" in words:
        return
    main = importlib.import_module(f"{package}.__main__").main
    run_parser(lambda: main(words))


def check_rsna_yolo(words: list[str]) -> None:
    """``rsna-yolo STAGE ...`` through ``rsna_yolo.cli.main`` (``train`` as ``python -m train``)."""
    if not words or words[0] in {"-h", "--help", "help"}:
        return
    if words[0] == "train":
        check_train(words[1:])
        return
    if "-h" in words or "--help" in words:
        return
    from rsna_yolo.cli import STAGES, main

    if words[0] not in STAGES:
        raise ParseError(f"rsna-yolo: unknown command {words[0]!r}; one of {', '.join(STAGES)}")
    run_parser(lambda: main(words), argv0="rsna-yolo")


_BENCHMARKS: dict[Path, object] = {}


def check_script(script: str, words: list[str]) -> None:
    """``python benchmarks/X.py ...`` through its ``main()``; ``python scripts/X.py``: the file exists."""
    path = REPO / script
    if not path.is_file():
        raise ParseError(f"{script}: no such file")
    if not script.startswith("benchmarks/") or "-h" in words or "--help" in words:
        return
    if path not in _BENCHMARKS:
        spec = importlib.util.spec_from_file_location(f"_docs_bench_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _BENCHMARKS[path] = module
    module = _BENCHMARKS[path]
    with parse_only():
        sys.argv[:] = [str(path), *words]
        try:
            module.main()
        except Parsed:
            return
        except SystemExit as exc:
            raise ParseError(f"exited with status {exc.code} before its command line was parsed") from None
    raise ParseError("ran without parsing a command line")


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    targets = set()
    for match in re.finditer(r"^([A-Za-z0-9_.\- ]+):(?!=)", text, flags=re.MULTILINE):
        targets.update(match.group(1).split())
    return targets - {".PHONY"}


def check_files_named(words: list[str]) -> None:
    """Words naming a file of the repository's ``yolo_configs/``, ``scripts/``, ``benchmarks/``: it exists."""
    for word in words:
        value = word.split("=", 1)[1] if "=" in word and not word.startswith("-") else word
        if value.startswith(CHECKED_FOLDERS) and not (REPO / value).exists():
            raise ParseError(f"{value}: no such file in the repository")


def check_command(command: Command) -> str | None:
    """None when the command is fine (or not the project's), else what is wrong with it."""
    words = list(command.words)
    if any("..." in w for w in words):
        return "a literal '...' in a command: write the words out or use a placeholder name"
    head, rest = words[0], words[1:]
    try:
        if head in PYTHONS:
            if rest[:1] == ["-m"] and len(rest) >= 2:
                module, args = rest[1], rest[2:]
                if module in {"convert", "analysis"}:
                    check_files_named(args)
                    check_package(module, args)
                elif module in TRAIN_MODULES:
                    check_files_named(args)
                    check_train(args)
                else:
                    return None  # python -m pytest, pip, ...
            elif rest and rest[0].endswith(".py"):
                check_files_named(rest[1:])
                check_script(rest[0], rest[1:])
        elif head == "rsna-yolo":
            check_files_named(rest)
            check_rsna_yolo(rest)
        elif head == "make":
            for target in (w for w in rest if "=" not in w and not w.startswith("-")):
                if target not in make_targets():
                    return f"make {target}: no such target in the Makefile"
        elif head in {"bash", "sh"} and rest and not (REPO / rest[0]).is_file():
            return f"{rest[0]}: no such file"
    except ParseError as exc:
        return str(exc)
    return None


def check_text(text: str, path: str) -> tuple[int, list[str]]:
    """How many commands of a document were the project's, and every problem as ``path:line: ...``."""
    commands, problems = commands_of(text, path)
    checked = 0
    for command in commands:
        if not is_project_command(command):
            continue
        problem = check_command(command)
        checked += 1
        if problem:
            problems.append(f"{command.where()}\n    -> {problem}")
    return checked, problems


def is_project_command(command: Command) -> bool:
    head, rest = command.words[0], command.words[1:]
    if head in PYTHONS:
        module = rest[1] if rest[:1] == ("-m",) and len(rest) > 1 else None
        return module in {"convert", "analysis", *TRAIN_MODULES} or bool(rest and rest[0].endswith(".py"))
    return head in {"rsna-yolo", "make"} or (head in {"bash", "sh"} and bool(rest))


# --------------------------------------------------------------------------------------------------- links


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, seen = set(), {}
    outside = {number for number, _, _ in code_lines(path.read_text())}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*$", line)
        if match and number not in outside:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_problems(path: Path) -> list[str]:
    """Every relative link (and image) of a document: the file exists, its ``#anchor`` is a heading."""
    text = path.read_text()
    in_code = {number for number, _, _ in code_lines(text)}
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        if number in in_code:
            continue
        line = re.sub(r"`[^`]*`", "", line)
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(REPO)}:{number}: ({target})"
            if not linked.exists():
                problems.append(f"{where}: {file_part} does not exist")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{where}: no heading #{anchor} in {linked.relative_to(REPO)}")
    return problems


# ---------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_parses(path: Path) -> None:
    _, problems = check_text(path.read_text(), str(path.relative_to(REPO)))
    assert not problems, "\n".join(problems)


def test_the_documents_hold_commands() -> None:
    """The extraction finds the commands at all (a test that checks nothing would pass silently)."""
    counts = {str(p.relative_to(REPO)): check_text(p.read_text(), p.name)[0] for p in DOCS}
    assert counts["README.md"] >= 5, counts
    assert sum(counts.values()) >= 80, counts


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path: Path) -> None:
    problems = link_problems(path)
    assert not problems, "\n".join(problems)


BAD = """\
Some text.

```bash
python -m analysis rescore RUN --data D/data.yaml \\
    --no-such-flag
python -m convert rsna --src rsna --out D --imgsz 640
python -m train data=D/data.yaml model=yolo11n.yaml epoch=30
python -m train folds D/folds model=yolo11s.yaml ... name=f
python -m analysis ablation RUN --data D/data.yaml
python -m train sweep yolo_configs/sweeps/no_such_sweep.yaml --count 3
rsna-yolo predict RUN --images FILMS --out DIR --no-such-option
python benchmarks/metric_bench.py --no-such-bench-flag
make no_such_target
kaggle competitions download -c rsna-pneumonia-detection-challenge
```
"""


def test_a_wrong_command_is_reported_with_its_file_and_line() -> None:
    checked, problems = check_text(BAD, "docs/bad.md")
    report = "\n".join(problems)
    assert checked == 9, report  # kaggle is not the project's
    assert "docs/bad.md:4: python -m analysis rescore RUN" in report
    assert "unrecognized arguments: --no-such-flag" in report
    assert "docs/bad.md:6:" not in report  # a correct command is not reported
    assert "docs/bad.md:7:" in report and "epoch" in report  # Ultralytics' key check
    assert "docs/bad.md:8:" in report and "literal '...'" in report
    assert "docs/bad.md:9:" in report and "--out" in report  # a required option left out
    assert "docs/bad.md:10:" in report and "no_such_sweep.yaml: no such file" in report
    assert "docs/bad.md:11:" in report and "--no-such-option" in report
    assert "docs/bad.md:12:" in report and "--no-such-bench-flag" in report
    assert "docs/bad.md:13:" in report and "no_such_target" in report
    assert len(problems) == 8, report


def test_a_broken_link_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "a.md").write_text("# Title\n\n## A section\n\n[ok](#a-section) [bad](b.md) [c](a.md#none)\n")
    problems = link_problems(tmp_path / "a.md")
    assert len(problems) == 2, problems
    assert "a.md:5: (b.md): b.md does not exist" in problems[0]
    assert "no heading #none" in problems[1]


def test_the_shown_train_help_is_what_it_prints() -> None:
    """A ``$ python -m train --help`` console block shows exactly what the command prints now."""
    from rsna_yolo.train.__main__ import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(["--help"])
    shown = 0
    for path in DOCS:
        text = path.read_text()
        for match in re.finditer(r"```console\n\$ python -m train --help\n(.*?)```", text, flags=re.DOTALL):
            line = text[: match.start()].count("\n") + 1
            assert match.group(1).rstrip() == printed.getvalue().rstrip(), (
                f"{path.relative_to(REPO)}:{line}: `python -m train --help` as shown differs from its output"
            )
            shown += 1
    assert shown >= 1
