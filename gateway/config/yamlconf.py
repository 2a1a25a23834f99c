"""Load a YAML file into a pydantic model, naming file, line and field path in every error, and saying in
words what the field takes: pydantic's own texts (its regexes above all) never reach a user."""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gateway.core.errors import ConfigError
from gateway.core.suggest import did_you_mean

ModelT = TypeVar("ModelT", bound=BaseModel)
# What each field pattern allows, in words (``worded``): the message for a value that does not match.
_PATTERN_WORDS: dict[str, str] = {}
# pydantic's type errors, in words (the value given is shown before them)
_TYPE_WORDS = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text (quote it in the YAML if it looks like a number or a date)",
    "list_type": "expected a list (entries on lines starting with '- ')",
    "dict_type": "expected a mapping of settings (key: value lines)",
    "model_type": "expected a mapping of settings (key: value lines)",
    "model_attributes_type": "expected a mapping of settings (key: value lines)",
    "path_type": "expected a path",
    "none_required": "expected nothing here",
}


def worded(pattern: str, words: str) -> str:
    """``pattern`` (a field's regex), remembered with what it allows in words for error messages."""
    _PATTERN_WORDS[pattern] = words
    return pattern


def _shown_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model holding the field at ``loc`` (for a misspelt key: that model's fields)."""
    current: Any = model
    for key in loc:
        if isinstance(key, int):
            continue
        if (
            not (isinstance(current, type) and issubclass(current, BaseModel))
            or key not in current.model_fields
        ):
            return None
        current = _inner_model(current.model_fields[key].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """The model inside ``X | None`` or ``list[X]`` (else the annotation itself)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            inner = _inner_model(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def in_words(error: ErrorDetails, model: type[BaseModel] | None = None, loc: Sequence[int | str] = ()) -> str:
    """One validation error as a sentence saying what is allowed; never a regex or pydantic's jargon."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    given = _shown_value(value)
    if kind == "string_pattern_mismatch":
        allowed = _PATTERN_WORDS.get(str(ctx.get("pattern")), "a value of another form (see docs/sites.md)")
        return f"{given} is not allowed here: expected {allowed}"
    if kind == "missing":
        return "missing: this setting is required"
    if kind == "extra_forbidden":
        holder = _model_at(model, loc[:-1]) if model is not None and loc else None
        known = list(holder.model_fields) if holder is not None else []
        key = str(loc[-1]) if loc else ""
        hint = did_you_mean(key, known)
        return f"not a setting here{hint}" + (f"; the settings here are: {', '.join(known)}" if known else "")
    if kind in ("literal_error", "enum"):
        return f"{given} is not allowed here: expected one of {ctx.get('expected')}"
    bounds = {
        "greater_than_equal": f"at least {ctx.get('ge')}",
        "greater_than": f"more than {ctx.get('gt')}",
        "less_than_equal": f"at most {ctx.get('le')}",
        "less_than": f"less than {ctx.get('lt')}",
    }
    if kind in bounds:
        return f"{given} is out of range: expected a number {bounds[kind]}"
    if kind == "string_too_short":
        least = int(ctx.get("min_length", 1))
        return "must not be empty" if least == 1 else f"{given} is too short: at least {least} characters"
    if kind == "string_too_long":
        return f"{given} is too long: at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        least = int(ctx.get("min_length", 1))
        return f"needs at least {least} {'entry' if least == 1 else 'entries'}"
    if kind == "too_long":
        return f"has too many entries: at most {ctx.get('max_length')}"
    if kind in _TYPE_WORDS:
        return f"{given}: {_TYPE_WORDS[kind]}"
    if kind in ("value_error", "assertion_error"):  # the model's own checks: their messages are in words
        return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return str(error["msg"])


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
            lines.append(f"{path}:{line}: {_field_path(loc)}: {in_words(error, model, loc)}")
        raise ConfigError("\n".join(lines)) from exc
