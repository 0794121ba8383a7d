"""The grid: every d × seed of every (model, dataset, method) of a suite, once.

Seeds of the same trial shape are submitted together (:func:`group_trials`), so a worker can
train them in one stack where the model and the method say it pays.
"""

from __future__ import annotations

from typing import Any

from dofbench.config.identity import canonical_json
from dofbench.config.schemas import ResolvedComponent, TrialSpec
from dofbench.engine.loop import MAX_GROUP, stack_seeds_forced
from dofbench.results.store import Store
from dofbench.run.host import Host
from dofbench.run.resolve import ResolvedSuite


def group_trials(trials: list[TrialSpec], host: Host, sizes: dict[str, int] | None = None,
                 device: str = "cpu") -> list[list[TrialSpec]]:
    """Groups of trials an executor runs together: trials that differ only in seed are trained
    together (:func:`dofbench.engine.loop.train_trials`) where it pays — both the model and the
    method say ``batchable`` (the model's say overridden by ``DOFBENCH_STACK_SEEDS=1``) — in groups of at most the method's ``group_limit`` for that D, d and
    ``device`` ('cpu' or 'cuda'; at most :data:`~dofbench.engine.loop.MAX_GROUP`), split into
    groups of even sizes. ``sizes`` maps :func:`task_key` of a (model, dataset) to its D; without
    it, the limit is MAX_GROUP. Every other trial is a group of its own. Groups come in order of
    their first trial."""
    members: dict[str, list[TrialSpec]] = {}
    limits: dict[str, int] = {}
    for i, t in enumerate(trials):
        key, limit = f"single:{i}", 1
        try:
            model, method = host.get("model", t.model.name), host.get("method", t.method.name)
            params = method.parse_params(t.method.params)
            if (stack_seeds_forced() or model.batchable(model.parse_params(t.model.params))) and method.batchable(params):
                D = (sizes or {}).get(task_key(t.model, t.dataset))
                limit = MAX_GROUP if D is None else method.group_limit(params, D, t.d, device)
                key = canonical_json({**t.model_dump(mode="json", exclude={"identity"}), "seed": None})
        except Exception:  # an unknown component or bad params: the trial fails on its own, alone
            pass
        limits.setdefault(key, max(1, min(MAX_GROUP, int(limit))))
        members.setdefault(key, []).append(t)
    out = []
    for key, group in members.items():  # as few groups as the limit allows, of even sizes
        n = -(-len(group) // limits[key])
        out.extend(group[j::n] for j in range(n))
    return out


def task_key(model: ResolvedComponent, dataset: ResolvedComponent) -> str:
    """The key of a (model, dataset) pair in :func:`group_trials`'s ``sizes``."""
    return canonical_json([model.model_dump(mode="json"), dataset.model_dump(mode="json")])


class GridStrategy:
    """Run every trial of the suite (the :class:`~dofbench.run.scheduler.Strategy` of
    ``search.strategy = "grid"``)."""

    def __init__(self, suite: ResolvedSuite, host: Host, device: str = "cpu"):
        self.suite, self.host, self.device = suite, host, device
        self._asked = False
        self._canonical: list[list[TrialSpec]] | None = None

    def next_trials(self) -> list[TrialSpec]:
        if self._asked:
            return []
        self._asked = True
        return list(self.suite.trials)

    def groups(self, trials: list[TrialSpec]) -> list[list[TrialSpec]]:
        """The suite's own groups (computed from all its trials, whatever is stored) that hold any of
        ``trials``, whole: a trial is always trained with the same siblings, so its result does not
        depend on which of them were stored before (an interrupted run resumes to exactly the
        numbers of an uninterrupted one)."""
        if self._canonical is None:
            sizes = {task_key(task.model, task.dataset): task.total_params for task in self.suite.tasks}
            unique = list({t.trial_id: t for t in self.suite.trials}.values())
            self._canonical = group_trials(unique, self.host, sizes, self.device)
        wanted = {t.trial_id for t in trials}
        return [g for g in self._canonical if any(t.trial_id in wanted for t in g)]

    def observe(self, spec: TrialSpec, outcome: Any) -> None:
        pass

    def members(self) -> list[str]:
        return [t.trial_id for t in self.suite.trials]

    def member_specs(self) -> dict[str, TrialSpec]:
        return {}

    def finish(self, store: Store) -> None:
        pass
