"""A W&B sweep file translated for Optuna: the checked :class:`SweepSpec`, its Optuna distributions,
sampler and pruner, and the values a trial draws (``python -m train sweep``, :mod:`rsna_yolo.train.sweep`).

W&B parameter specs understood: ``value``; ``values`` (categorical); ``min``/``max`` (int_uniform when
both are whole numbers, else uniform); ``distribution`` one of constant, categorical, int_uniform, uniform,
q_uniform, log_uniform_values, log_uniform (min/max are natural-log exponents), q_log_uniform_values
(whole numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsna_yolo.core.cli import UserError

METHODS = ("grid", "random", "bayes")
NUMBER = (int, float)


@dataclass(frozen=True)
class SweepSpec:
    """A W&B sweep file, checked. ``fixed``: parameters with one value; ``space``: Optuna distributions."""

    name: str
    method: str
    metric: str
    goal: str
    fixed: dict[str, Any]
    space: dict[str, Any]  # name -> optuna.distributions.BaseDistribution
    early_terminate: dict[str, Any] = field(default_factory=dict)
    run_cap: int | None = None


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def distribution(name: str, spec: dict[str, Any]):
    """One W&B parameter spec -> an Optuna distribution, or ``("value", v)`` for a constant.

    >>> distribution("lr0", {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2})
    FloatDistribution(high=0.01, log=True, low=0.0001, step=None)
    >>> distribution("batch", {"values": [8, 16]})
    CategoricalDistribution(choices=(8, 16))
    >>> distribution("epochs", {"min": 10, "max": 50})
    IntDistribution(high=50, log=False, low=10, step=1)
    >>> distribution("epochs", {"value": 5})
    ('value', 5)
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not isinstance(spec, dict):
        raise UserError(
            f"parameter {name}: expected a mapping such as {{values: [...]}} or {{min: .., max: ..}}"
        )
    kind = spec.get("distribution")
    if kind is None:  # W&B's inference rules
        if "value" in spec:
            kind = "constant"
        elif "values" in spec:
            kind = "categorical"
        elif "min" in spec and "max" in spec:
            kind = "int_uniform" if _is_int(spec["min"]) and _is_int(spec["max"]) else "uniform"
        else:
            raise UserError(f"parameter {name}: needs value, values, or min and max")
    lo, hi, q = spec.get("min"), spec.get("max"), spec.get("q", 1)
    bounded = {"int_uniform", "uniform", "q_uniform", "log_uniform_values", "log_uniform"}
    bounded.add("q_log_uniform_values")
    if kind in bounded and not (isinstance(lo, NUMBER) and isinstance(hi, NUMBER) and lo < hi):
        raise UserError(f"parameter {name}: {kind} needs numbers min < max (got min={lo}, max={hi})")
    if kind == "constant":
        return ("value", spec["value"])
    if kind == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise UserError(f"parameter {name}: values must be a non-empty list")
        if "probabilities" in spec:
            raise UserError(f"parameter {name}: 'probabilities' is not supported by the local sweep")
        if any(not (v is None or isinstance(v, (bool, int, float, str))) for v in values):
            raise UserError(f"parameter {name}: values must be numbers, strings or booleans")
        return CategoricalDistribution(values)
    if kind == "int_uniform":
        return IntDistribution(int(lo), int(hi))
    if kind == "uniform":
        return FloatDistribution(float(lo), float(hi))
    if kind == "q_uniform":
        if all(_is_int(v) for v in (lo, hi, q)):
            return IntDistribution(lo, hi, step=q)
        return FloatDistribution(float(lo), float(hi), step=float(q))
    if kind == "log_uniform_values":
        return FloatDistribution(float(lo), float(hi), log=True)
    if kind == "log_uniform":
        return FloatDistribution(math.exp(lo), math.exp(hi), log=True)
    if kind == "q_log_uniform_values" and all(_is_int(v) for v in (lo, hi)) and q == 1:
        return IntDistribution(lo, hi, log=True)
    raise UserError(
        f"parameter {name}: distribution {kind!r} (with these bounds) is not supported by the local sweep; "
        "run this file with `wandb sweep` + `wandb agent`, or use values/min/max/log_uniform_values"
    )


def load_sweep(path: Path, name: str | None = None) -> SweepSpec:
    """Read and check a W&B sweep YAML (``method``, ``metric``, ``parameters``, ``early_terminate``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: sweep file not found (see yolo_configs/sweeps/)")
    doc = yaml.safe_load(path.read_text()) or {}
    method = doc.get("method")
    if method not in METHODS:
        raise UserError(f"{path}: method must be one of {', '.join(METHODS)} (got {method!r})")
    metric = doc.get("metric") or {}
    if not metric.get("name") or metric.get("goal", "maximize") not in {"maximize", "minimize"}:
        raise UserError(f"{path}: metric needs a name and goal maximize|minimize")
    params = doc.get("parameters")
    if not isinstance(params, dict) or not params:
        raise UserError(f"{path}: parameters must be a non-empty mapping")
    fixed, space = {}, {}
    for key, spec in params.items():
        if isinstance(spec, dict) and "parameters" in spec:
            raise UserError(
                f"{path}: parameter {key}: nested parameters are not supported by the local sweep"
            )
        d = distribution(str(key), spec)
        if isinstance(d, tuple):
            fixed[str(key)] = d[1]
        else:
            space[str(key)] = d
    early = doc.get("early_terminate") or {}
    if early and early.get("type") != "hyperband":
        raise UserError(f"{path}: early_terminate type {early.get('type')!r}: only hyperband is supported")
    run_cap = doc.get("run_cap")
    return SweepSpec(
        name=name or str(doc.get("name") or path.stem),
        method=method,
        metric=str(metric["name"]),
        goal=str(metric.get("goal", "maximize")),
        fixed=fixed,
        space=space,
        early_terminate=dict(early),
        run_cap=int(run_cap) if run_cap else None,
    )


def grid_values(spec: SweepSpec) -> dict[str, list[Any]]:
    """Every value of each swept parameter, for the grid method (categorical or whole-number ranges)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    grid = {}
    for key, d in spec.space.items():
        if isinstance(d, CategoricalDistribution):
            grid[key] = list(d.choices)
        elif isinstance(d, IntDistribution) and not d.log:
            grid[key] = list(range(d.low, d.high + 1, d.step))
        else:
            raise UserError(
                f"sweep {spec.name}: grid needs values or whole-number ranges; {key} is continuous"
            )
    return grid


def make_sampler(spec: SweepSpec, seed: int):
    """grid -> GridSampler, random -> RandomSampler, bayes -> TPESampler (seeded, so reruns agree)."""
    import optuna

    if spec.method == "grid":
        return optuna.samplers.GridSampler(grid_values(spec), seed=seed)
    if spec.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(spec: SweepSpec, epochs: int | None):
    """W&B ``hyperband`` (min_iter / max_iter / eta) -> Optuna's HyperbandPruner over epochs; else none."""
    import optuna

    if not spec.early_terminate:
        return optuna.pruners.NopPruner()
    et = spec.early_terminate
    max_iter = et.get("max_iter") or epochs or "auto"
    return optuna.pruners.HyperbandPruner(
        min_resource=int(et.get("min_iter", 1)), max_resource=max_iter, reduction_factor=int(et.get("eta", 3))
    )


def default_count(spec: SweepSpec) -> int:
    """Trials to run when ``--count`` is not given: the grid size, W&B's ``run_cap``, else 10."""
    if spec.method == "grid":
        return math.prod(len(v) for v in grid_values(spec).values())
    return spec.run_cap or 10


def objective_value(metric: str, result) -> float:
    """The sweep metric of a finished trial: ``kaggle/<key of kaggle.json>`` (a detector),
    ``classify/<key of classify.json>`` (a classifier: ``classify/auc_opacity``, ``classify/accuracy``) or
    an Ultralytics metric."""
    if metric.startswith("classify/") and result.classify is not None:
        value = result.classify.get(metric.removeprefix("classify/"))
        return float("nan") if value is None else float(value)
    if metric == "kaggle/mAP":
        return float(result.kaggle["score"])
    if metric.startswith("kaggle/"):
        return float(result.kaggle[metric.removeprefix("kaggle/")])
    if metric in result.metrics:
        return float(result.metrics[metric])
    raise UserError(
        f"metric {metric}: not produced by a run (use kaggle/mAP or one of {sorted(result.metrics)})"
    )


def example_values(spec: SweepSpec) -> dict[str, Any]:
    """One value of each swept parameter (the first choice, or the low end), to check keys before a study.

    >>> spec = load_sweep(Path(__file__).parents[2] / "yolo_configs/sweeps/optimizers.yaml")
    >>> example_values(spec)
    {'cfg': 'yolo_configs/hyp/sgd.yaml'}
    """
    from optuna.distributions import CategoricalDistribution

    space = spec.space
    return {k: d.choices[0] if isinstance(d, CategoricalDistribution) else d.low for k, d in space.items()}


def suggest(trial, key: str, d) -> Any:
    """Ask the trial for ``key`` from distribution ``d`` (define-by-run, so samplers see the same space)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(key, d.choices)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(key, d.low, d.high, step=d.step, log=d.log)
    return trial.suggest_float(key, d.low, d.high, step=d.step, log=d.log)
