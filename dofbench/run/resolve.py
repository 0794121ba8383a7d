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
    MAX_TRIALS_PER_SUITE, ComponentRef, ResolvedComponent, SuiteSpec, TrainConfig, TrialSpec, format_validation_errors,
    non_identity_fields,
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
    yardsticks: frozenset[str] = frozenset()  # ids of the trials of the comparison's yardstick methods
    nested: frozenset[str] = frozenset()     # ids of the trials of methods whose subspaces are nested

    def resolved_json(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json")

    def trial_specs_json(self) -> dict[str, dict[str, Any]]:
        """trial id → resolved trial spec (JSON), as the store's suite membership records it."""
        return {t.trial_id: t.model_dump(mode="json") for t in self.trials}


class SuiteErrors(DofbenchError):
    """Every problem of a suite (or a suites file), one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _validate_params(comp, ref: ComponentRef, where: str, problems: list[str] | None = None
                     ) -> tuple[dict, dict] | None:
    """(params with defaults, identity) of ``ref`` for ``comp``; its errors raise, or go to
    ``problems`` (then None is returned)."""
    try:
        raw = expand_preset(comp, ref, where)
    except DofbenchError as exc:
        if problems is None:
            raise
        problems.append(str(exc))
        return None
    try:
        params = comp.parse_params(raw)
    except ValidationError as exc:
        lines = format_validation_errors(exc, prefix=f"{where}.params", model=comp.Params)
        if problems is None:
            raise DofbenchError(lines[0]) from None
        problems.extend(lines)
        return None
    return params.model_dump(mode="json"), params.model_dump(
        mode="json", exclude_defaults=True, exclude=non_identity_fields(comp.Params))


def expand_preset(comp, ref: ComponentRef, where: str) -> dict[str, Any]:
    """``ref.params`` over the params of ``ref.preset`` (a name from ``comp.presets``)."""
    if ref.preset is None:
        return ref.params
    presets = getattr(comp, "presets", {}) or {}
    if ref.preset not in presets:
        raise DofbenchError(f"{where}.preset: unknown preset {ref.preset!r} for {comp.kind} {comp.name!r}; "
                            f"allowed: {', '.join(sorted(presets)) or 'none'}")
    return {**presets[ref.preset], **ref.params}


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
    against D and what each method can run (e.g. a dense projection's memory), check the success
    metric and the range of its ε, and expand into trials. Every problem found is reported (one
    line each, :class:`SuiteErrors`), not just the first."""
    where = where or f"suites.{name}"
    problems: list[str] = []

    def components(kind: str, refs: list[ComponentRef], key: str) -> list[tuple]:
        out = []
        for i, ref in enumerate(refs):
            loc = f"{where}.{key}[{i}]"
            try:
                comp = host.get(kind, ref.name, where=f"{loc}.name")
            except DofbenchError as exc:
                problems.append(str(exc))
                continue
            resolved = _validate_params(comp, ref, loc, problems)
            if resolved is not None:
                out.append((comp, ref, *resolved, loc))
        return out

    models = components("model", spec.models, "models")
    datasets = components("dataset", spec.datasets, "datasets")
    methods = components("method", spec.methods, "methods")
    metric, higher = spec.threshold.metric, True
    try:
        metric, higher, metric_comp = check_metric(host, spec.threshold.metric, f"{where}.threshold.metric")
        lo, hi = getattr(metric_comp, "range", None) or (float("-inf"), float("inf"))
        for i, eps in enumerate(spec.threshold.epsilons):
            if not lo <= eps <= hi:
                problems.append(f"{where}.threshold.epsilons[{i}]: {eps:g} is outside [{lo:g}, {hi:g}], the range "
                                f"of metric {metric_comp.name!r}")
    except DofbenchError as exc:
        problems.append(str(exc))
    n_seeds, min_seeds = len(spec.seed_list()), spec.threshold.min_seeds
    if min_seeds is not None and min_seeds > n_seeds:
        problems.append(f"{where}.threshold.min_seeds: must be at most the suite's {n_seeds} seeds "
                        f"(got {min_seeds}); allowed: 1 ≤ min_seeds ≤ {n_seeds}")

    tasks: list[Task] = []
    for dcomp, dref, dparams, dident, dloc in datasets:
        info = dcomp.info(dcomp.parse_params(dparams))
        for mcomp, mref, mparams, mident, mloc in models:
            try:
                module = mcomp.build(mcomp.parse_params(mparams), info)
            except DofbenchError as exc:
                problems.append(f"{mloc}: {exc}")
                continue
            except Exception as exc:
                problems.append(f"{mloc}: model {mref.name!r} cannot be built for dataset {dref.name!r} "
                                f"(input {info.input_shape}): {' '.join(str(exc).split())}")
                continue
            tasks.append(Task(ResolvedComponent(name=mref.name, params=mparams),
                              ResolvedComponent(name=dref.name, params=dparams), mident, dident,
                              count_params(module)))

    seeds = spec.seed_list()
    planned = []  # (task, method, its dims)
    for task in tasks:
        for m in methods:
            fixed = m[0].fixed_dim(m[0].parse_params(m[2]), task.total_params)
            planned.append((task, m, [fixed] if fixed is not None else spec.dims))
    count = sum(len(dims) for *_, dims in planned) * len(seeds)
    if count > MAX_TRIALS_PER_SUITE:
        problems.append(f"{where}: the suite expands to {count:,} trials; at most {MAX_TRIALS_PER_SUITE:,} "
                        "(fewer seeds, dims, methods or tasks)")
        planned = []
    trials: list[TrialSpec] = []
    baselines: set[str] = set()
    yardsticks: set[str] = set()
    nested: set[str] = set()
    for task, (meth, ref, params, ident, loc), dims in planned:
        D = task.total_params
        parsed = meth.parse_params(params)
        if meth.fixed_dim(parsed, D) is None:
            limit = meth.max_dim(parsed, D)
            too_big = [d for d in dims if d > limit]
            if too_big:
                problems.append(f"{where}.dims: d={too_big[0]} exceeds the limit {limit} of method {ref.name!r} for "
                                f"model {task.model.name!r} on dataset {task.dataset.name!r} (D={D}); allowed: "
                                f"1 ≤ d ≤ {limit}")
                continue
        found = next((p for p in (meth.check_dim(parsed, D, d) for d in dims) if p), None)
        if found:
            problems.append(f"{loc}.params: {found} (model {task.model.name!r} on dataset {task.dataset.name!r}, D={D})")
            continue
        for d in dims:
            for seed in seeds:
                trials.append(TrialSpec(
                    model=task.model, dataset=task.dataset,
                    method=ResolvedComponent(name=ref.name, params=params), d=d, seed=seed, train=spec.train,
                    identity={"model": task.model_identity, "dataset": task.dataset_identity, "method": ident}))
                if getattr(meth, "baseline", False):
                    baselines.add(trials[-1].trial_id)
                if getattr(meth, "yardstick", False):
                    yardsticks.add(trials[-1].trial_id)
                if meth.nested(parsed):
                    nested.add(trials[-1].trial_id)
    if problems:
        raise SuiteErrors(list(dict.fromkeys(problems)))
    return ResolvedSuite(name, spec, trials, tasks, metric, higher, baselines=frozenset(baselines),
                         yardsticks=frozenset(yardsticks), nested=frozenset(nested))


_METRIC_RE = re.compile(r"^(best_)?(train|test)_(.+)$")


def check_metric(host, metric: str, where: str) -> tuple[str, bool, Any]:
    """Validate a success metric name like 'train_acc' or 'best_test_loss'; return it with
    whether higher is better and the metric component."""
    names = host.names("metric")
    m = _METRIC_RE.match(metric)
    if not m or m.group(3) not in names:
        raise DofbenchError(
            f"{where}: unknown metric {metric!r}; allowed: [best_](train|test)_NAME with NAME one of "
            f"{', '.join(names)} (e.g. train_acc, best_test_loss)")
    comp = host.get("metric", m.group(3))
    return metric, bool(comp.higher_is_better), comp


def resolve(names: list[str], config: str | Path | None, host) -> list[ResolvedSuite]:
    """Validate every named suite of the suites file ``config`` (all of them before anything runs)."""
    suite_file = load_suite_file(config)
    where = str(config) if config else "benchmarks.toml"
    if not names:
        raise DofbenchError(f"no suite named; available in {where}: {', '.join(sorted(suite_file.suites))}")
    return [resolve_suite(host, n, get_suite(suite_file, n, where)) for n in names]
