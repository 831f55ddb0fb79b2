"""A recipe file: read, merged over the defaults, every key and type checked before anything runs.

The schema is :data:`DEFAULTS` itself (one flat, commented table in ``docs/recipes.md``): a key the table does
not have is refused with a close-match hint, a value of another type is refused naming the key, and
``--set key=value`` overrides go through the same check. Only ``detector.args`` / ``classifier.args`` take
any key: they are Ultralytics training arguments, checked by ``python -m train`` itself (and by
:func:`check_args` here, which refuses the keys the recipe owns).
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

from rsna_yolo.core.cli import UserError

DETECTOR = {
    "model": "yolo11n.yaml",
    "cfg": None,
    "epochs": 30,
    "imgsz": None,
    "pretrained": None,
    "args": {},
}
CLASSIFIER = {
    "model": "yolo_configs/models/basic_cnn_cls.yaml",
    "cfg": None,
    "epochs": 15,
    "imgsz": 128,
    "pretrained": None,
    "args": {},
}
SWEEP = {"file": "yolo_configs/sweeps/study.yaml", "trials": 6, "epochs": 8}
SYNTHETIC = {"patients": 300, "test_patients": 40, "difficulty": "easy", "imgsz": 1024, "seed": 0}
DEFAULTS: dict[str, Any] = {
    "name": None,
    "data": {"kaggle": None, "synthetic": None},
    "convert": {"imgsz": 640, "folds": 5, "seed": 0, "val_fraction": 0.2},
    "detector": DETECTOR,
    "classifier": None,
    "sweep": None,
    "tuning": {"tta": False},
    "device": None,
    "gpu": False,
}
"""Every key a recipe may hold, with its default. ``None`` as a default means "optional" (its type is then
the one in :data:`TYPES`). ``classifier``, ``sweep`` and ``data.synthetic``, when given, are merged over
:data:`CLASSIFIER`, :data:`SWEEP` and :data:`SYNTHETIC`."""

TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "data.kaggle": (str,),
    "detector.cfg": (str,),
    "detector.imgsz": (int,),
    "detector.pretrained": (str,),
    "classifier.cfg": (str,),
    "classifier.pretrained": (str,),
    "device": (str, int),
}
"""Types of the keys whose default is None."""
SECTIONS = {"classifier": CLASSIFIER, "data.synthetic": SYNTHETIC, "sweep": SWEEP}
CHOICES = {"data.synthetic.difficulty": ("easy", "hard")}
POSITIVE = {
    "convert.imgsz",
    "detector.epochs",
    "detector.imgsz",
    "classifier.epochs",
    "classifier.imgsz",
    "data.synthetic.patients",
    "data.synthetic.imgsz",
}
OWNED_ARGS = {
    "data",
    "project",
    "name",
    "model",
    "cfg",
    "epochs",
    "imgsz",
    "pretrained",
    "task",
    "device",
    "exist_ok",
    "resume",
}
"""Ultralytics arguments the recipe sets itself: refused in ``args`` (say them as the recipe's own keys)."""
DETECTOR_OF_THIS_RECIPE = "detector"
"""``classifier.pretrained: detector``: start the classifier from this recipe's detector (fold k's classifier
from fold k's detector)."""


def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join(
        {bool: "true/false", int: "an integer", float: "a number", str: "text", dict: "a mapping"}[t]
        for t in types
    )


def _types_of(key: str, default) -> tuple[type, ...]:
    if key in TYPES:
        return TYPES[key]
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (float, int)
    return (type(default),)


def _merge(where: str, source: str, defaults: dict, given) -> dict:
    if not isinstance(given, dict):
        raise UserError(f"{source}: {where or 'the recipe'} must be a mapping of keys, got {given!r}")
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in defaults:
            close = difflib.get_close_matches(str(key), [str(k) for k in defaults], n=1)
            hint = f" (did you mean {where + '.' if where else ''}{close[0]}?)" if close else ""
            raise UserError(f"{source}: unknown key {path}{hint}; the keys are in docs/recipes.md")
        merged[key] = _value(path, source, defaults[key], value)
    return merged


def _value(path: str, source: str, default, value):
    if path in SECTIONS:
        return None if value is None else _merge(path, source, SECTIONS[path], value or {})
    if path.endswith(".args"):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise UserError(f"{source}: {path} must be a mapping of Ultralytics arguments, got {value!r}")
        check_args(path, source, value)
        return dict(value)
    if isinstance(default, dict):
        return _merge(path, source, default, value)
    if value is None:
        if default is None or path in TYPES:
            return None
        raise UserError(f"{source}: {path} cannot be empty (its default is {default!r})")
    types = _types_of(path, default)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise UserError(f"{source}: {path} must be {_type_name(types)}, got {value!r}")
    if path in CHOICES and value not in CHOICES[path]:
        raise UserError(f"{source}: {path} must be one of {', '.join(CHOICES[path])}, got {value!r}")
    if path in POSITIVE and value < 1:
        raise UserError(f"{source}: {path} must be at least 1, got {value!r}")
    return value


def check_args(path: str, source: str, args: dict) -> None:
    """Refuse the Ultralytics arguments the recipe sets itself (one line naming the first)."""
    for key in args:
        if key in OWNED_ARGS:
            section = path.rsplit(".", 1)[0]
            raise UserError(
                f"{source}: {path}.{key}: set by the recipe; use {section}.{key} or the recipe's "
                "own keys (docs/recipes.md)"
            )


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["detector.epochs=3", ...]`` to a nested mapping, values read as YAML (``3`` an integer, ``null``
    None, ``true`` a boolean); :class:`UserError` for an item without ``=``.

    >>> parse_set(["detector.epochs=3", "data.synthetic.difficulty=hard", "classifier=null"])
    {'detector': {'epochs': 3}, 'data': {'synthetic': {'difficulty': 'hard'}}, 'classifier': None}
    """
    nested: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item}: expected key=value, e.g. --set detector.epochs=3")
        value = yaml.safe_load(text) if text else None
        *parents, last = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {item}: {part} was set to a value already")
        node[last] = value
    return nested


def _overlay(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _overlay(out[key], value)
        else:
            out[key] = value
    return out


def load_recipe(path: str | Path, sets: list[str] = ()) -> dict[str, Any]:
    """The recipe at ``path`` with ``--set`` overrides, merged over :data:`DEFAULTS` and checked. One
    :class:`UserError` line naming the file and key for anything wrong."""
    path = Path(path)
    try:
        given = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise UserError(f"{path}: cannot read the recipe ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(given, dict):
        raise UserError(
            f"{path}: a recipe is a mapping of keys (docs/recipes.md), got {type(given).__name__}"
        )
    recipe = _merge("", str(path), DEFAULTS, given)
    if sets:
        recipe = _merge("", f"{path} with --set", DEFAULTS, _overlay(given, parse_set(list(sets))))
    recipe["name"] = recipe["name"] or path.stem
    return check_recipe(recipe, str(path))


def check_recipe(recipe: dict, source: str) -> dict:
    """What needs more than one key: exactly one data source; a classifier ``pretrained`` from this recipe's
    detector; the fold count."""
    data = recipe["data"]
    if (data["kaggle"] is None) == (data["synthetic"] is None):
        raise UserError(
            f"{source}: data: give exactly one of data.kaggle (a download's folder) and "
            "data.synthetic (the generator's settings)"
        )
    folds = recipe["convert"]["folds"]
    if folds < 1:
        raise UserError(f"{source}: convert.folds must be 1 (one train/val split) or at least 2, got {folds}")
    if not 0.0 < recipe["convert"]["val_fraction"] < 1.0:
        raise UserError(f"{source}: convert.val_fraction must be between 0 and 1")
    return recipe
