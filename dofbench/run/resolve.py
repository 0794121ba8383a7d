"""Resolve a suite through the plugin registry: every component name and its params (validated by
the component's own pydantic model), every d against D, the success metric; then expand the suite
into trial specs, each with its identity."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dofbench.config.schemas import (
    ComponentRef, ResolvedComponent, SuiteSpec, TrainConfig, TrialSpec, format_validation_error, non_identity_fields,
)
from dofbench.config.suites import get_suite, load_suite_file
from dofbench.engine.flat import count_params
from dofbench.errors import DofbenchError


@dataclass
class Task:
    """A (model, dataset) pair of a suite with its parameter count D."""

    model: ResolvedComponent
    dataset: ResolvedComponent
    model_identity: dict[str, Any]
    dataset_identity: dict[str, Any]
    total_params: int


@dataclass
class ResolvedSuite:
    name: str
    spec: SuiteSpec
    trials: list[TrialSpec]
    tasks: list[Task]
    metric: str
    higher_is_better: bool
    baselines: frozenset[str] = frozenset()  # ids of the trials of full-training baseline methods
    nested: frozenset[str] = frozenset()     # ids of the trials of methods whose subspaces are nested

    def resolved_json(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json")

    def trial_specs_json(self) -> dict[str, dict[str, Any]]:
        """trial id → resolved trial spec (JSON), as the store's suite membership records it."""
        return {t.trial_id: t.model_dump(mode="json") for t in self.trials}


def _validate_params(comp, ref: ComponentRef, where: str) -> tuple[dict, dict]:
    try:
        params = comp.parse_params(ref.params)
    except ValidationError as exc:
        raise DofbenchError(format_validation_error(exc, prefix=f"{where}.params", model=comp.Params)) from None
    return params.model_dump(mode="json"), params.model_dump(
        mode="json", exclude_defaults=True, exclude=non_identity_fields(comp.Params))


def trial_spec(host, model: str | dict, dataset: str | dict, method: str | dict, *, d: int, seed: int = 0,
               train: TrainConfig | dict | None = None) -> TrialSpec:
    """One trial's spec, resolved through the registry exactly as a suite resolves its trials
    (params completed with their defaults, the identity of the non-default ones): for single
    trials in tests, notebooks and the speed benchmarks (perf/). Components are given by name or {name, params}."""
    parts = {}
    for kind, raw in (("model", model), ("dataset", dataset), ("method", method)):
        ref = ComponentRef.model_validate(raw)
        comp = host.get(kind, ref.name, where=kind)
        params, ident = _validate_params(comp, ref, kind)
        parts[kind] = (ResolvedComponent(name=ref.name, params=params), ident)
    train = train if isinstance(train, TrainConfig) else TrainConfig.model_validate(train or {})
    return TrialSpec(model=parts["model"][0], dataset=parts["dataset"][0], method=parts["method"][0], d=d,
                     seed=seed, train=train, identity={k: v[1] for k, v in parts.items()})


def resolve_suite(host, name: str, spec: SuiteSpec, *, where: str | None = None) -> ResolvedSuite:
    """Resolve names through the registry, validate every component's params, check every d
    against D, check the threshold metric, and expand into trials."""
    where = where or f"suites.{name}"
    models = []
    for i, ref in enumerate(spec.models):
        loc = f"{where}.models[{i}]"
        comp = host.get("model", ref.name, where=f"{loc}.name")
        models.append((comp, ref, *_validate_params(comp, ref, loc)))
    datasets = []
    for i, ref in enumerate(spec.datasets):
        loc = f"{where}.datasets[{i}]"
        comp = host.get("dataset", ref.name, where=f"{loc}.name")
        datasets.append((comp, ref, *_validate_params(comp, ref, loc)))
    methods = []
    for i, ref in enumerate(spec.methods):
        loc = f"{where}.methods[{i}]"
        comp = host.get("method", ref.name, where=f"{loc}.name")
        methods.append((comp, ref, *_validate_params(comp, ref, loc)))

    metric, higher = check_metric(host, spec.threshold.metric, f"{where}.threshold.metric")
    n_seeds, min_seeds = len(spec.seed_list()), spec.threshold.min_seeds
    if min_seeds is not None and min_seeds > n_seeds:
        raise DofbenchError(f"{where}.threshold.min_seeds: must be at most the suite's {n_seeds} seeds "
                            f"(got {min_seeds}); allowed: 1 ≤ min_seeds ≤ {n_seeds}")

    tasks: list[Task] = []
    for dcomp, dref, dparams, dident in datasets:
        info = dcomp.info(dcomp.parse_params(dparams))
        for mcomp, mref, mparams, mident in models:
            try:
                module = mcomp.build(mcomp.parse_params(mparams), info)
            except DofbenchError:
                raise
            except Exception as exc:
                raise DofbenchError(
                    f"{where}: model {mref.name!r} cannot be built for dataset {dref.name!r} "
                    f"(input {info.input_shape}): {' '.join(str(exc).split())}") from None
            tasks.append(Task(ResolvedComponent(name=mref.name, params=mparams),
                              ResolvedComponent(name=dref.name, params=dparams), mident, dident,
                              count_params(module)))

    trials: list[TrialSpec] = []
    baselines: set[str] = set()
    nested: set[str] = set()
    seeds = spec.seed_list()
    for task in tasks:
        D = task.total_params
        for meth, ref, params, ident in methods:
            parsed = meth.parse_params(params)
            fixed = meth.fixed_dim(parsed, D)
            dims = [fixed] if fixed is not None else spec.dims
            if fixed is None:
                limit = meth.max_dim(parsed, D)
                too_big = [d for d in dims if d > limit]
                if too_big:
                    raise DofbenchError(
                        f"{where}.dims: d={too_big[0]} exceeds the limit {limit} of method "
                        f"{ref.name!r} for model {task.model.name!r} on dataset {task.dataset.name!r} "
                        f"(D={D}); allowed: 1 ≤ d ≤ {limit}")
            for d in dims:
                for seed in seeds:
                    trials.append(TrialSpec(
                        model=task.model, dataset=task.dataset,
                        method=ResolvedComponent(name=ref.name, params=params), d=d, seed=seed,
                        train=spec.train,
                        identity={"model": task.model_identity, "dataset": task.dataset_identity,
                                  "method": ident}))
                    if getattr(meth, "baseline", False):
                        baselines.add(trials[-1].trial_id)
                    if meth.nested(parsed):
                        nested.add(trials[-1].trial_id)
    return ResolvedSuite(name, spec, trials, tasks, metric, higher, frozenset(baselines), frozenset(nested))


_METRIC_RE = re.compile(r"^(best_)?(train|test)_(.+)$")


def check_metric(host, metric: str, where: str) -> tuple[str, bool]:
    """Validate a success metric name like 'train_acc' or 'best_test_loss'; return it with
    whether higher is better."""
    names = host.names("metric")
    m = _METRIC_RE.match(metric)
    if not m or m.group(3) not in names:
        raise DofbenchError(
            f"{where}: unknown metric {metric!r}; allowed: [best_](train|test)_NAME with NAME one of "
            f"{', '.join(names)} (e.g. train_acc, best_test_loss)")
    comp = host.get("metric", m.group(3))
    return metric, bool(comp.higher_is_better)


def resolve(names: list[str], config: str | Path | None, host) -> list[ResolvedSuite]:
    """Validate every named suite of the suites file ``config`` (all of them before anything runs)."""
    suite_file = load_suite_file(config)
    where = str(config) if config else "benchmarks.toml"
    if not names:
        raise DofbenchError(f"no suite named; available in {where}: {', '.join(sorted(suite_file.suites))}")
    return [resolve_suite(host, n, get_suite(suite_file, n, where)) for n in names]
