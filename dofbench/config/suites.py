"""Suite files: parse the TOML and validate it against :class:`dofbench.config.schemas.SuiteFile`.
Resolving a suite's component names and params through the plugin registry and expanding it into
trial specs is :mod:`dofbench.run.resolve`."""

from __future__ import annotations

import importlib.resources
import sys
from pathlib import Path

from pydantic import ValidationError

from dofbench.config.schemas import SuiteFile, SuiteSpec, format_validation_errors
from dofbench.errors import DofbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def default_config_path() -> Path:
    return Path(str(importlib.resources.files("dofbench").joinpath("benchmarks.toml")))


MAX_SUITE_FILE_BYTES = 4 * 1024**2
MAX_NESTING = 32


def load_suite_file(path: str | Path | None = None) -> SuiteFile:
    """Parse and validate a suites file (default: the packaged ``benchmarks.toml``)."""
    path = Path(path) if path is not None else default_config_path()
    if not path.exists():
        raise DofbenchError(f"--config {path}: no such file")
    if not path.is_file():
        raise DofbenchError(f"--config {path}: not a regular file (a suites file is TOML text)")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SUITE_FILE_BYTES + 1)
    except OSError as exc:
        raise DofbenchError(f"cannot read suite file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SUITE_FILE_BYTES:
        raise DofbenchError(f"--config {path}: larger than {MAX_SUITE_FILE_BYTES // 1024**2} MiB; not a suites file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DofbenchError(f"{path}: not UTF-8 text (byte {exc.start}); a suites file is TOML") from None
    return parse_suite_text(text, str(path))


def parse_suite_text(text: str, where: str = "<string>") -> SuiteFile:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DofbenchError(f"{where}: malformed TOML: {exc}") from None
    except RecursionError:
        raise DofbenchError(f"{where}: malformed TOML: nested too deeply") from None
    depth = _depth(raw)
    if depth > MAX_NESTING:
        raise DofbenchError(f"{where}: tables and arrays nested {depth} levels deep; at most {MAX_NESTING}")
    try:
        return SuiteFile.model_validate(raw)
    except ValidationError as exc:
        raise SuiteFileErrors([f"{where}: {line}" for line in format_validation_errors(exc, model=SuiteFile)]) from None


class SuiteFileErrors(DofbenchError):
    """Every schema error of a suites file, one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _depth(value, limit: int = MAX_NESTING + 1) -> int:
    """How deeply tables and arrays nest (iteratively: a hostile file cannot exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= limit:
                stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def get_suite(suite_file: SuiteFile, name: str, where: str = "suite") -> SuiteSpec:
    try:
        return suite_file.suites[name]
    except KeyError:
        raise DofbenchError(
            f"{where}: unknown suite {name!r}; available: {', '.join(sorted(suite_file.suites)) or 'none'}") from None
