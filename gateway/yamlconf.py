"""Load a YAML file into a pydantic model, naming file, line and field path in every error."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gateway.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def _without_tags(root: yaml.Node, loc: Sequence[int | str]) -> list[int | str]:
    """``loc`` without the tags pydantic puts in for a discriminated union (``backends.github.github.x``
    for the github member of a union): a key absent from a mapping whose next key is present, or (the
    next key being a missing field) one that is the value of the mapping's discriminator (``kind``)."""
    node, kept = root, []
    for i, key in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            keys = {getattr(k, "value", None): v for k, v in node.value}
            tags = {getattr(v, "value", None) for k, v in node.value if getattr(k, "value", None) == "kind"}
            if key not in keys and i + 1 < len(loc) and (loc[i + 1] in keys or key in tags):
                continue
            node = keys.get(key, node)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        kept.append(key)
    return kept


def _node_at(node: yaml.Node, loc: Sequence[int | str]) -> yaml.Node:
    """The deepest YAML node on the path ``loc`` (a pydantic error location)."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if match is None:
                return node
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return node
    return node


def _field_path(loc: Sequence[int | str]) -> str:
    path = ""
    for key in loc:
        path += f"[{key}]" if isinstance(key, int) else (f".{key}" if path else str(key))
    return path or "(top level)"


def load_yaml_model(path: Path, model: type[ModelT], context: dict[str, Any] | None = None) -> ModelT:
    """Parse ``path`` and validate it as ``model``; raise ConfigError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if root is None or not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping of settings at the top level")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = _without_tags(root, [part for part in error["loc"] if isinstance(part, int | str)])
            line = _node_at(root, loc).start_mark.line + 1
            lines.append(f"{path}:{line}: {_field_path(loc)}: {error['msg']}")
        raise ConfigError("\n".join(lines)) from exc
