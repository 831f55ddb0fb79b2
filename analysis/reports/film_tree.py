"""The films of a folder tree as an archive (PACS) exports it: DICOM by content, not by name.

:func:`find_films` walks ``--images``: every ``.dcm`` / ``.png`` file, and every other file whose content is
DICOM (the ``DICM`` marker after the 128-byte preamble or at the start, or a dataset pydicom can read), is a
film, whatever its name (``series1/IM00001``); everything else is listed with the reason it was skipped:
a DICOMDIR (the folder's index, not a film: its films are read from the tree itself), an empty or
unreadable file, a symlink loop, a file that is neither DICOM nor PNG. Hidden files and folders are left
out. Each film gets an id: its file's stem, or, where two files share a stem (``IM00001`` in two series),
its path relative to the folder with ``/`` as ``__``. :func:`stage` gives the predictor one path per id with
the id as its name (symbolic links inside the output folder), so the rest of the path is unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rsna_yolo.core.cli import UserError

IMAGE_SUFFIXES = (".dcm", ".png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DICOMDIR_UID = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
NOT_AN_IMAGE = "not a DICOM or PNG file: not predicted"
EMPTY = "empty file (0 bytes): not predicted"
DICOMDIR = "DICOMDIR: the folder's index, not a film (its films are read from the tree itself)"
STAGING_DIR = ".films"
"""Inside ``--out``, while predicting: one symbolic link per film named by its id; removed at the end."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class FilmTree:
    """What :func:`find_films` found: ``films`` (id -> path), ``files`` (id -> path relative to the folder,
    as found), ``syntax`` (id -> transfer syntax name, ``PNG`` for a PNG, ``""`` where the header could not be
    read) and ``skipped`` (path relative to the folder -> why it is not a film)."""

    films: dict[str, Path] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    syntax: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def film_kind(path: Path) -> tuple[str | None, str]:
    """``("dicom" | "png" | "dicomdir" | None, transfer syntax name or why not)`` of a file, by content.

    >>> film_kind(Path(__file__))
    (None, 'not a DICOM or PNG file: not predicted')
    """
    with open(path, "rb") as fh:
        head = fh.read(132)
    if not head:
        return None, EMPTY
    if head.startswith(PNG_SIGNATURE):
        return "png", "PNG"
    marker = head[128:132] == b"DICM" or head[:4] == b"DICM"
    if not marker and path.suffix.lower() != ".dcm" and head[:2] not in (b"\x08\x00", b"\x02\x00"):
        return None, NOT_AN_IMAGE  # a bare dataset starts with group 0x0002 or 0x0008
    from rsna_yolo.core.dicom import DicomError, read_dicom

    try:
        ds = read_dicom(path, headers_only=True)
    except DicomError as exc:
        if path.suffix.lower() == ".dcm":
            return "dicom", ""  # named a film: the reader will say why it cannot be used
        return None, NOT_AN_IMAGE if not marker else f"unreadable DICOM: {exc}"
    meta = getattr(ds, "file_meta", None)
    if str(ds.get("SOPClassUID", "")) == DICOMDIR_UID or (
        meta and meta.get("MediaStorageSOPClassUID") == DICOMDIR_UID
    ):
        return "dicomdir", DICOMDIR
    if not marker and not any(k in ds for k in ("SOPClassUID", "Rows", "PixelData")):
        return None, NOT_AN_IMAGE
    syntax = meta.get("TransferSyntaxUID") if meta else None
    return "dicom", syntax.name if syntax is not None else ""


def _id(relative: Path) -> str:
    """A film id from its relative path (the stem's collision case): ``a/b/IM1`` -> ``a__b__IM1``."""
    return _UNSAFE.sub("_", "__".join(relative.with_suffix("").parts))


def find_films(images: str | Path) -> FilmTree:
    """The films of ``images`` (a file or a folder tree; see the module). :class:`UserError` when it does not
    exist, or when a single file given is not a film."""
    path = Path(images)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    tree = FilmTree()
    if path.is_file():
        try:
            kind, syntax = film_kind(path)
        except OSError as exc:
            raise UserError(f"{path}: unreadable ({exc.strerror or exc})") from None
        if kind not in ("dicom", "png"):
            raise UserError(f"{path}: not a DICOM or PNG film ({syntax})")
        tree.films[path.stem], tree.files[path.stem], tree.syntax[path.stem] = path, path.name, syntax
        return tree
    found: list[tuple[Path, str]] = []
    seen_dirs: set[tuple[int, int]] = set()
    for folder, dirs, names in os.walk(path, followlinks=True, onerror=None):
        here = Path(folder)
        stat = here.stat()
        if (stat.st_dev, stat.st_ino) in seen_dirs:  # a symlink back up the tree
            tree.skipped[here.relative_to(path).as_posix() + "/"] = (
                "symlink loop: this folder was read already"
            )
            dirs[:] = []
            continue
        seen_dirs.add((stat.st_dev, stat.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            file = here / name
            relative = file.relative_to(path).as_posix()
            try:
                kind, syntax = film_kind(file)
            except OSError as exc:
                tree.skipped[relative] = f"unreadable: {exc.strerror or exc}"
                continue
            if kind in ("dicom", "png"):
                found.append((file, syntax))
            else:
                tree.skipped[relative] = syntax
    stems: dict[str, int] = {}
    for file, _ in found:
        stems[file.stem] = stems.get(file.stem, 0) + 1
    for file, syntax in found:
        relative = file.relative_to(path)
        film_id = file.stem if stems[file.stem] == 1 else _id(relative)
        tree.films[film_id], tree.files[film_id], tree.syntax[film_id] = file, relative.as_posix(), syntax
    if not tree.films:
        raise UserError(f"{path}: no DICOM or PNG films found ({len(tree.skipped)} other file(s))")
    return tree


def stage(films: Mapping[str, Path], syntax: Mapping[str, str], out: Path) -> dict[str, Path]:
    """id -> the path to predict: the film itself where its name is ``<id>.dcm`` / ``<id>.png``, else a
    symbolic link ``out/.films/<id>.dcm|.png`` to it (the predictor names films by stem and tells DICOM
    from PNG by suffix)."""
    staged: dict[str, Path] = {}
    for film_id, path in films.items():
        suffix = ".png" if syntax.get(film_id) == "PNG" else ".dcm"
        if path.stem == film_id and path.suffix.lower() == suffix:
            staged[film_id] = path
            continue
        link = out / STAGING_DIR / f"{film_id}{suffix}"
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path.resolve())
        staged[film_id] = link
    return staged
