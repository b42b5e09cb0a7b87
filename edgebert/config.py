"""Typed configuration: the base class of every stage config, and YAML loading.

Configs are pydantic models with ``extra="forbid"`` (unknown keys are errors that name the key) and
``frozen=True``. Every field has a ``description``: the CLI help and the JSON schema come from it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from edgebert.errors import ConfigError

C = TypeVar("C", bound="StageConfig")


class StageConfig(BaseModel):
    """Base of all configs: unknown keys rejected, immutable, JSON round-trippable.

    ``KEYED_FROM_DEFAULT``: fields added after artifacts were keyed, each with its default; at that value
    a field is left out of the stage key (:func:`edgebert.cache.stage_key`), so existing artifacts keep
    their keys and resume, while a recipe that sets it gets a new key."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    KEYED_FROM_DEFAULT: ClassVar[dict[str, Any]] = {}


def format_validation_error(exc: ValidationError, source: str | None = None) -> str:
    """All problems of a pydantic error, one per line, naming each key (and the file)."""
    where = f" in {source}" if source else ""
    lines = [f"Invalid configuration{where}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def build_config(cls: type[C], values: dict[str, Any], source: str | None = None) -> C:
    """Validate ``values`` into ``cls``; raise ConfigError listing every problem."""
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file; ConfigError naming the file (and line) when it is missing or malformed."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file '{path}' does not exist.")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason}).") from None
