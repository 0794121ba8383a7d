"""Pydantic schemas: the suite file, component references, training config, trial specs.

Errors are turned into one line that names the TOML path, the bad value and what is allowed
(:func:`format_validation_error`).
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Callable, Literal

from pydantic import (
    BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator,
)

from dofbench.config.identity import content_hash


INT32_MAX = 2**31 - 1  # what the store's INTEGER columns (d, seed, steps) hold
MAX_TRIALS_PER_SUITE = 1_000_000


class Strict(BaseModel):
    """Base of every schema read from a file: unknown keys are errors, values are frozen, types are
    strict (TOML has types: "16" is not an int, true is not a count, "0.1" is not a float; an int
    is accepted for a float) and no float may be NaN or infinite."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Params(Strict):
    """Base of every component's parameter model: unknown keys are rejected, values frozen.
    ``Field(description=...)`` is the single source of each parameter's help text;
    ``Field(json_schema_extra={"identity": False})`` marks a parameter that says where or how, not
    what (e.g. a dataset's local ``root``): stored with the trial, not hashed into its id."""


class NoParams(Params):
    """A component without parameters."""


def non_identity_fields(model: type[BaseModel]) -> set[str]:
    """The parameters of ``model`` marked ``json_schema_extra={"identity": False}``."""
    return {name for name, f in model.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("identity") is False}


class ComponentRef(Strict):
    """A component by name, with its (still unvalidated) parameters."""

    name: str = Field(min_length=1, description="Registered component name (see `dofbench list KIND`).")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters of the component.")
    preset: str | None = Field(None, min_length=1, description=(
        "A named group of params the component offers (e.g. 'paper-code': the paper's released code "
        "where it deviates from the defaults; `dofbench show KIND NAME` lists them), expanded into "
        "params before validation; params given beside it win. Not part of the trial id: the expanded "
        "params are."))

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        return value


class TrainConfig(Strict):
    """How long and on what batches every method of a suite is trained."""

    epochs: PositiveInt = Field(3, description="Passes over the training set (paper code default: 3).")
    batch_size: PositiveInt = Field(128, description="Minibatch size (paper: 128).")
    max_steps: PositiveInt | None = Field(
        None, description="Stop after this many optimizer steps (None: epochs decide).")
    eval_every_epochs: PositiveInt = Field(
        1, description="Evaluate loss and metrics on the full train and test sets every k epochs.")
    eval_batch_size: PositiveInt | None = Field(None, description=(
        "Rows per chunk of the full-set evaluations (across the seeds of a stack). None: on the CPU, "
        "as many rows as keep a chunk's largest activation within 8 MiB (at most 4096; measured "
        "with `python -m perf anchor`: Conv-2 evaluates 2× faster in chunks of 128 rows than of "
        "4096), elsewhere 4096. Only float summation order depends on it: 4096 and None hash alike."))


class ThresholdConfig(Strict):
    """Which metric defines success and at which levels ε; δ of d* = min{d : P_s ≥ 1 − δ}."""

    metric: str = Field("train_acc", description=(
        "Metric that defines success: SPLIT_NAME (final value) or best_SPLIT_NAME (best over "
        "evaluations), e.g. train_acc, best_train_acc, test_loss. Accuracies succeed when ≥ ε, "
        "losses when ≤ ε."))
    epsilons: list[float] = Field(default_factory=lambda: [0.5], min_length=1, description=(
        "Success levels ε (no duplicates; within the metric's range, e.g. [0, 1] for an accuracy)."))
    delta: float = Field(0.1, gt=0, lt=1, description="d* is the smallest d with P_s ≥ 1 − δ (paper: 0.1).")
    min_seeds: PositiveInt | None = Field(None, description=(
        "Usable seeds (trained to the end or diverged; failed and missing trials are not) a d needs "
        "to be eligible for d*. None: every seed of the suite. A d with fewer is shown in `success` "
        "but never becomes d*, and the leaderboard flags the grid as incomplete."))

    @field_validator("epsilons")
    @classmethod
    def _unique_epsilons(cls, v: list[float]) -> list[float]:
        _each_once(v, lambda e: f"ε={e:g}", "ε")
        return v


class SearchConfig(Strict):
    """How d* is searched for: the full grid × all seeds, or adaptively (dofbench.run.adaptive)."""

    strategy: Literal["grid", "adaptive"] = Field("grid", description=(
        "'grid' runs every d × seed; 'adaptive' bisects the d grid per ε and adds seeds only where "
        "they decide whether P_s ≥ 1 − δ (exactly the grid's d* for nested subspaces whose per-seed "
        "success is monotone in d; a Beta–Binomial stopping rule for independent ones)."))
    confidence: float = Field(0.95, gt=0.5, lt=1, description=(
        "Two-sided level of the confidence intervals in the store (P_s: Clopper–Pearson; d*: profile "
        "likelihood); the adaptive search over independent subspaces stops adding seeds at a d once "
        "the grid's decision there is this probable."))
    max_seeds: PositiveInt | None = Field(None, description=(
        "Adaptive: the most seeds run at one d (default: the suite's seeds); d* is judged as the grid "
        "would judge it with this many seeds."))
    initial_seeds: PositiveInt = Field(2, description=(
        "Adaptive: seeds run at once at a probed d. Nested subspaces: at most this many per round "
        "(1 runs the fewest trials, more finish sooner on many workers). Independent subspaces: this "
        "many before the first verdict can be estimated, one at a time afterwards."))
    refine: bool = Field(False, description=(
        "Adaptive, nested subspaces: after d* is decided, bisect every seed's first successful "
        "dimension d_s down to one integer d (trials at d between grid points), for the empirical "
        "local angular dimension w² = D + ½ − mean d_s (Crofton; table angular_dimension)."))


class SuiteSpec(Strict):
    """One suite of a benchmarks file: a grid of model × dataset × method × d × seed."""

    description: str = Field("", description="What the suite measures.")
    models: list[ComponentRef] = Field(min_length=1, description="Models, by name or {name, params}.")
    datasets: list[ComponentRef] = Field(min_length=1, description="Datasets, by name or {name, params}.")
    methods: list[ComponentRef] = Field(min_length=1, description="DOF-reduction methods.")
    dims: list[Annotated[int, Field(ge=1, le=INT32_MAX)]] = Field(
        min_length=1, description="Training dimensions d (each ≥ 1 and ≤ D; no duplicates).")
    seeds: Annotated[int, Field(ge=1, le=INT32_MAX)] | Annotated[
        list[Annotated[int, Field(ge=0, le=INT32_MAX)]], Field(min_length=1)] = Field(
        5, description="Number of seeds (0..n-1) or an explicit, non-empty list of seeds (no duplicates).")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training configuration.")
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig, description="Success definition.")
    search: SearchConfig = Field(default_factory=SearchConfig, description="Grid or adaptive search for d*.")
    requires: list[str] = Field(default_factory=list, description=(
        "Free-form notes of what the suite needs (e.g. 'gpu', 'data:cifar10'); informational."))

    @field_validator("dims")
    @classmethod
    def _sorted_unique(cls, v: list[int]) -> list[int]:
        _each_once(v, lambda d: f"d={d}", "d")
        return sorted(v)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, list):
            _each_once(v, lambda s: f"seed {s}", "seed")
        return v

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else sorted(set(self.seeds))

    def required_seeds(self) -> int:
        """Usable seeds a d needs to be eligible for d* (``threshold.min_seeds``, else all)."""
        return self.threshold.min_seeds or len(self.seed_list())


class SuiteFile(Strict):
    suites: dict[str, SuiteSpec] = Field(default_factory=dict, description="Suites by name.")


class ResolvedComponent(Strict):
    name: str
    params: dict[str, Any]


class TrialSpec(Strict):
    """The "what" of one trial, fully resolved (component params include their defaults).

    Its id hashes only the parameters that differ from their defaults (``identity``, which the
    resolver fills: :func:`dofbench.run.resolve.trial_spec` for a single trial), so adding a new
    parameter with a default keeps every stored trial reachable.
    """

    model: ResolvedComponent
    dataset: ResolvedComponent
    method: ResolvedComponent
    d: int
    seed: int
    train: TrainConfig
    identity: dict[str, dict[str, Any]] = Field(repr=False, description=(
        "Per component (model, dataset, method): the parameters that differ from their defaults "
        "and say what the trial is (not where or how): what the trial id hashes."))

    @field_validator("identity")
    @classmethod
    def _identity_keys(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if set(v) != {"model", "dataset", "method"}:
            raise ValueError(f"identity needs exactly the keys model, dataset, method (got {sorted(v)})")
        return v

    @property
    def trial_id(self) -> str:
        return content_hash(self.identity_payload())

    def identity_payload(self) -> dict[str, Any]:
        ident = self.identity
        return {
            "v": 1,
            "model": [self.model.name, ident["model"]],
            "dataset": [self.dataset.name, ident["dataset"]],
            "method": [self.method.name, ident["method"]],
            "d": self.d,
            "seed": self.seed,
            "train": train_identity(self.train),
        }

    # seeds derived from the parts of the spec they must depend on
    def init_key(self) -> list[Any]:
        p = self.identity_payload()
        return [p["model"], p["dataset"], self.seed]

    def data_key(self) -> list[Any]:
        p = self.identity_payload()
        return [p["dataset"], self.seed]

    def method_key(self) -> list[Any]:
        p = self.identity_payload()
        return [p["model"], p["dataset"], p["method"], p["train"], self.seed]



LEGACY_EVAL_BATCH_SIZE = 4096
"""The evaluation chunk every trial had before it became the engine's choice (None): trials that
named it explicitly keep the id they had, which did not hash it (it was the default)."""


def train_identity(train: TrainConfig) -> dict[str, Any]:
    """The training config's part of a trial id: the fields that differ from their defaults, but
    not ``eval_batch_size`` when it is None or 4096 (the former default; a chunk size changes only
    the order of float sums, so every trial that hashed none keeps its id)."""
    out = train.model_dump(mode="json", exclude_defaults=True)
    if out.get("eval_batch_size") == LEGACY_EVAL_BATCH_SIZE:
        del out["eval_batch_size"]
    return out


def _each_once(values: list, named: Callable[[Any], str], what: str) -> None:
    """Refuse a list that holds a value twice: '<named(value)> appears twice; each <what> once'."""
    seen = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{named(v)} appears twice; each {what} once")
        seen.add(v)


def _loc_to_path(loc: tuple[Any, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def format_validation_errors(err: ValidationError, prefix: str = "",
                             model: type[BaseModel] | None = None) -> list[str]:
    """One line per field in error: 'PATH: problem (got VALUE); allowed: ...'. Where a field has
    several alternatives (a count or a list of seeds), the error of the alternative the value
    resembles is shown, not a type mismatch of another."""
    errors = err.errors(include_url=False)
    unions: dict[tuple, list[dict[str, Any]]] = {}
    for e in errors:
        cut = next((i for i, p in enumerate(e["loc"]) if _is_branch(p)), None)
        if cut is not None:
            unions.setdefault(tuple(e["loc"][:cut]), []).append(e)
    drop = {id(e) for group in unions.values() if any(not _mismatch(x) for x in group)
            for e in group if _mismatch(e)}
    by_path: dict[str, list[dict[str, Any]]] = {}
    for e in errors:
        if id(e) in drop:
            continue
        loc = tuple(p for p in e["loc"] if not _is_branch(p))
        by_path.setdefault(_loc_to_path(loc, prefix), []).append({**e, "loc": loc})
    return [_line(path, min(errs, key=_mismatch), model) for path, errs in by_path.items()]


def format_validation_error(err: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """The first line of :func:`format_validation_errors`."""
    return format_validation_errors(err, prefix, model)[0]


def _is_branch(part: Any) -> bool:
    """A pydantic location part that names a union alternative or a validator, not a field."""
    return isinstance(part, str) and ("[" in part or part.startswith("function") or
                                      part in ("int", "float", "str", "bool", "list", "dict", "constrained-int",
                                               "constrained-float", "none"))


def _mismatch(e: dict[str, Any]) -> int:
    """Type mismatches (the value is of another alternative's type) rank after real problems."""
    return 1 if e["type"].endswith("_type") or e["type"].endswith("_parsing") else 0


def _line(path: str, e: dict[str, Any], model: type[BaseModel] | None) -> str:
    kind = e["type"]
    if kind == "extra_forbidden":
        allowed = ""
        target = _model_at(model, e["loc"][:-1]) if model is not None else None
        if target is not None:
            allowed = "; allowed keys: " + (", ".join(target.model_fields) or "none")
        return f"{path}: unknown key{allowed}"
    if kind == "missing":
        return f"{path}: required field is missing"
    got = e.get("input")
    got_s = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
    msg = e["msg"].removeprefix("Value error, ")
    return f"{path}: {msg}{got_s}"


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk a pydantic model class along an error location to the nested model; list indices and
    dict keys (suite names) keep the current element model."""
    cur: Any = model
    for part in loc:
        if _is_model(cur) and isinstance(part, str) and part in cur.model_fields:
            cur = _first_model(cur.model_fields[part].annotation)
    return cur if _is_model(cur) else None


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def _first_model(ann: Any) -> Any:
    if _is_model(ann):
        return ann
    for arg in typing.get_args(ann):
        found = _first_model(arg)
        if found is not None:
            return found
    return None
