"""Check the lock against the project and the virtual environment against the lock.

``requirements.lock`` is made from the ranges in ``pyproject.toml`` by ``make lock`` (``uv pip compile``,
exact versions and hashes). Two checks keep the three in step; each fails with one line:

``python scripts/lock_check.py lock``
    the lock still satisfies ``pyproject.toml``: every runtime dependency, every ``dev`` tool and every pin
    of ``[tool.uv] constraint-dependencies`` has a locked version inside its range. Needs no network and no
    virtual environment (``.ci/run`` runs it before installing).
``.venv/bin/python scripts/lock_check.py venv``
    the interpreter running it holds exactly the locked versions that apply to it (its platform and
    Python), nothing missing, nothing else, besides the project itself and the venv's own pip (``make
    venv`` runs it last).

Exit status 0 when the check holds, 1 with one line on standard error when it does not.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

try:  # the venv has packaging (pytest needs it); a bare interpreter has pip's copy
    from packaging.markers import Marker
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pragma: no cover - depends on the interpreter
    from pip._vendor.packaging.markers import Marker
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
PROJECT = "rsna-yolo"
# Besides the lock and the project: the pip that `python -m venv` seeds every venv with (it installs uv the
# first time; uv pip sync leaves it in place). It is the interpreter's own copy, not a download.
SEED = {"pip"}
REFRESH = "run `make lock` (docs/environment.md)"


class LockError(Exception):
    """A check that does not hold; its message is the one line printed."""


@dataclass(frozen=True)
class Pin:
    """One locked distribution: ``name==version`` and the environments it applies to."""

    name: str
    version: str
    marker: Marker | None

    def applies(self, env: dict[str, str] | None = None) -> bool:
        return self.marker is None or self.marker.evaluate(env)


def read_lock(path: Path = LOCK) -> list[Pin]:
    """The pins of a requirements file written by ``uv pip compile`` (hash and comment lines skipped)."""
    pins = []
    for raw in path.read_text().splitlines():
        line = raw.strip().rstrip("\\").strip()
        if not line or line.startswith(("#", "--")):
            continue
        spec, _, marker = line.partition(";")
        name, sep, version = spec.strip().partition("==")
        if not sep:
            raise LockError(f"{path.name}: not an exact pin: {line!r} ({REFRESH})")
        pins.append(
            Pin(canonicalize_name(name.split("[")[0]), version.strip(), Marker(marker) if marker else None)
        )
    return pins


def project_requirements(path: Path = PYPROJECT) -> list[tuple[str, Requirement]]:
    """``(where, requirement)``: each runtime dependency, ``dev`` tool and lock pin in ``pyproject.toml``."""
    data = tomllib.loads(path.read_text())
    found = [("dependencies", Requirement(r)) for r in data["project"].get("dependencies", [])]
    found += [
        ("dependency-groups.dev", Requirement(r)) for r in data.get("dependency-groups", {}).get("dev", [])
    ]
    pins = data.get("tool", {}).get("uv", {}).get("constraint-dependencies", [])
    found += [("tool.uv.constraint-dependencies", Requirement(r)) for r in pins]
    return found


def check_lock(pins: list[Pin], requirements: list[tuple[str, Requirement]]) -> None:
    """Every requirement has a locked version, and every locked version of it is inside its range."""
    by_name: dict[str, list[Pin]] = {}
    for pin in pins:
        by_name.setdefault(pin.name, []).append(pin)
    for where, req in requirements:
        name = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate():
            continue
        locked = by_name.get(name)
        if not locked:
            raise LockError(
                f"requirements.lock has no {req.name}, which pyproject.toml's {where} asks for ({REFRESH})"
            )
        for pin in locked:
            if not req.specifier.contains(pin.version, prereleases=True):
                raise LockError(
                    f"requirements.lock pins {req.name}=={pin.version}, outside pyproject.toml's {where} "
                    f"range {req.name}{req.specifier} ({REFRESH})"
                )


def installed() -> dict[str, str]:
    """``{name: version}`` of every distribution the running interpreter can import."""
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


def check_venv(pins: list[Pin], present: dict[str, str], env: dict[str, str] | None = None) -> None:
    """The distributions present are exactly the pins that apply here, plus the project and the venv's pip."""
    wanted = {pin.name: pin.version for pin in pins if pin.applies(env)}
    wrong = [
        f"{n} {present[n]} (locked {v})"
        for n, v in sorted(wanted.items())
        if n in present and present[n] != v
    ]
    missing = [f"{n}=={v}" for n, v in sorted(wanted.items()) if n not in present]
    extra = [
        f"{n} {v}" for n, v in sorted(present.items()) if n not in wanted and n != PROJECT and n not in SEED
    ]
    parts = []
    if wrong:
        parts.append("other versions than the lock: " + ", ".join(wrong))
    if missing:
        parts.append("missing: " + ", ".join(missing))
    if extra:
        parts.append("not in the lock: " + ", ".join(extra))
    if parts:
        raise LockError(
            f"{sys.prefix} does not hold exactly requirements.lock: " + "; ".join(parts) + " (make venv)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "what",
        choices=["lock", "venv"],
        help="lock: the lock against pyproject.toml; venv: this interpreter's packages against the lock",
    )
    parser.add_argument("--lock", type=Path, default=LOCK, help="the lock (default: requirements.lock)")
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT, help="default: pyproject.toml")
    args = parser.parse_args(argv)
    try:
        pins = read_lock(args.lock)
        if args.what == "lock":
            check_lock(pins, project_requirements(args.pyproject))
            print(f"lock_check: requirements.lock ({len(pins)} pins) satisfies pyproject.toml")
        else:
            check_venv(pins, installed())
            here = sum(pin.applies() for pin in pins)
            print(f"lock_check: {sys.prefix} holds exactly the {here} locked distributions that apply to it")
    except LockError as err:
        print(f"lock_check: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
