"""Suite files: parse the TOML and validate it against :class:`dofbench.config.schemas.SuiteFile`.
Resolving a suite's component names and params through the plugin registry and expanding it into
trial specs is :mod:`dofbench.run.resolve`."""

from __future__ import annotations

import importlib.resources
import sys
from pathlib import Path

from pydantic import ValidationError

from dofbench.config.schemas import SuiteFile, SuiteSpec, format_validation_error
from dofbench.errors import DofbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def default_config_path() -> Path:
    return Path(str(importlib.resources.files("dofbench").joinpath("benchmarks.toml")))


def load_suite_file(path: str | Path | None = None) -> SuiteFile:
    """Parse and validate a suites file (default: the packaged ``benchmarks.toml``)."""
    path = Path(path) if path is not None else default_config_path()
    try:
        text = path.read_text()
    except OSError as exc:
        raise DofbenchError(f"cannot read suite file {path}: {exc.strerror or exc}") from None
    return parse_suite_text(text, str(path))


def parse_suite_text(text: str, where: str = "<string>") -> SuiteFile:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DofbenchError(f"{where}: malformed TOML: {exc}") from None
    try:
        return SuiteFile.model_validate(raw)
    except ValidationError as exc:
        raise DofbenchError(f"{where}: {format_validation_error(exc, model=SuiteFile)}") from None


def get_suite(suite_file: SuiteFile, name: str, where: str = "suite") -> SuiteSpec:
    try:
        return suite_file.suites[name]
    except KeyError:
        raise DofbenchError(
            f"{where}: unknown suite {name!r}; available: {', '.join(sorted(suite_file.suites)) or 'none'}") from None
