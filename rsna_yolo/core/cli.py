"""Shared command-line plumbing: lazy subcommands and one-line errors for mistakes users can fix.

Each subcommand lives in its own module exposing ``configure_parser(parser)`` and ``main(args) -> int``;
``__main__.py`` of each package only lists them. Modules are imported when their subcommand runs, so
``--help`` stays fast and does not import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence


class UserError(Exception):
    """A problem the user can fix (bad path, missing column, ...): printed as one line, exit status 2."""


def run_cli(
    prog: str, description: str, commands: dict[str, tuple[str, str]], argv: Sequence[str] | None = None
):
    """Parse ``argv`` and run the chosen subcommand.

    ``commands`` maps a subcommand name to ``(module, one-line help)``; the module provides
    ``configure_parser(parser)`` and ``main(args) -> int``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = argv[0] if argv and argv[0] in commands else None
    for name, (module, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # only the chosen command's module is imported
            mod = importlib.import_module(module)
            mod.configure_parser(p)
            p.set_defaults(_main=mod.main)
    args = parser.parse_args(argv)
    return call_reporting_errors(prog, args._main, args)


def call_reporting_errors(prog: str, func: Callable[..., int | None], *args) -> int:
    """Run ``func(*args)``; a ``UserError`` or a full disk becomes one line and exit status 2, Ctrl-C
    status 130."""
    from rsna_yolo.core.io import disk_full_message, is_disk_full

    try:
        return int(func(*args) or 0)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        print(f"{prog}: error: {disk_full_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
