"""Every rule of a site YAML, broken, is reported in words: file, line, field and what is allowed, never
pydantic's regexes or jargon ("String should match pattern '^[a-z_]…'")."""

from __future__ import annotations

import copy
import enum
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from gateway.config.sites import SiteConfig, load_site
from gateway.config.yamlconf import in_words
from gateway.core.errors import ConfigError

# A site with every setting given, every sub-model present: each test breaks one field of it.
FULL_SITE: dict[str, Any] = {
    "name": "gamma",
    "title": "a site with every setting",
    "kind": "slurm",
    "submit_via": "ssh",
    "login": {
        "host": "login.gamma.example.org",
        "port": 22,
        "user": "gateway",
        "identity_file": "keys/id_ed25519",
        "known_hosts": "keys/known_hosts",
        "trust_on_first_use": False,
        "jump_host": {"host": "bastion.example.org", "port": 22, "user": "hop", "identity_file": "keys/hop"},
        "connect_timeout_s": 10.0,
        "command_timeout_s": 30.0,
        "keepalive_s": 15.0,
        "max_channels": 8,
        "tail_channels": 4,
    },
    "preference": 10,
    "workdir": "runs",
    "python": "python3",
    "setup": ["module load cuda"],
    "container": "apptainer exec --nv /images/torch.sif",
    "isolation": {
        "kind": "apptainer",
        "command": "/usr/bin/apptainer",
        "image": "/images/torch.sif",
        "python": "python3",
        "bind": ["/opt/cuda"],
    },
    "account": "gpu-donors",
    "qos": "normal",
    "slurm": {"bin_dir": "/opt/slurm/bin"},
    "requeue": {"on": ["NODE_FAIL"], "max_attempts": 2},
    "keep_bundles": "none",
    "partitions": [
        {
            "name": "h100",
            "gpu_type": "H100",
            "gres": "gpu:h100:1",
            "time_limit": "00:10:00",
            "cpus_per_gpu": 4,
            "mem_per_gpu": "32G",
            "max_jobs": 8,
            "directives": ["--exclusive"],
            "warm_pool": {"max_jobs": 2, "idle_s": 60.0, "max_lifetime": "01:00:00"},
        }
    ],
}
JARGON = re.compile(
    r"pattern|\^|\$'|should match|Input should|String should|Value error|Field required|Extra inputs"
)


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _choices(annotation: Any) -> bool:
    """Whether the annotation is a closed set (a Literal or an enum), in a list or Optional or not."""
    if typing.get_origin(annotation) is typing.Literal:
        return True
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return True
    return any(_choices(arg) for arg in typing.get_args(annotation))


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list or any(
        typing.get_origin(arg) is list for arg in typing.get_args(annotation)
    )


def _bad_values(
    model: type[BaseModel], path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """(field path, a value breaking its rule) for every constrained field of ``model`` and its parts."""
    for name, field in model.model_fields.items():
        here = (*path, name)
        for inner in _models(field.annotation):
            sub = (*here, 0) if _is_list(field.annotation) else here
            yield from _bad_values(inner, sub)
        for rule in field.metadata:
            if getattr(rule, "pattern", None):
                yield here, "not valid! $(x)"
            for bound, bad in (("ge", -1), ("gt", 0), ("le", 1)):
                limit = getattr(rule, bound, None)
                if limit is not None:
                    yield here, limit + bad
            if getattr(rule, "min_length", None):
                yield here, [] if _is_list(field.annotation) else ""
        if _choices(field.annotation):
            yield here, ["no-such-choice"] if _is_list(field.annotation) else "no-such-choice"


def _field_path(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def _with(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    holder: Any = changed
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return changed


BROKEN = list(_bad_values(SiteConfig, ()))


def test_the_full_site_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "gamma.yaml"
    path.write_text(yaml.safe_dump(FULL_SITE, sort_keys=False))
    assert load_site(path).name == "gamma"


def test_every_constrained_field_is_covered() -> None:
    covered = {_field_path(path) for path, _ in BROKEN}
    # the constrained fields a change could forget to word: each is broken below
    for field in ("name", "login.user", "login.port", "login.jump_host.user", "partitions[0].gres", "qos"):
        assert field in covered
    assert len(covered) >= 30


@pytest.mark.parametrize(("path", "value"), BROKEN, ids=[f"{_field_path(p)}={v!r}" for p, v in BROKEN])
def test_a_broken_rule_says_what_is_allowed(tmp_path: Path, path: tuple[str | int, ...], value: Any) -> None:
    file = tmp_path / "gamma.yaml"
    text = yaml.safe_dump(_with(FULL_SITE, path, value), sort_keys=False)
    file.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_site(file)
    message = str(raised.value)
    field = _field_path(path)
    found = re.search(
        rf"^{re.escape(str(file))}:(\d+): {re.escape(field)}(?:\[\d+\])?: (.+)$", message, re.MULTILINE
    )
    assert found, message
    line, words = int(found.group(1)), found.group(2)
    key = next(p for p in reversed(path) if isinstance(p, str))
    at = text.splitlines()[line - 1]  # the key's line, or the list entry's
    assert f"{key}:" in at or (isinstance(value, list) and f"- {value[0]}" in at), (line, text)
    assert not JARGON.search(words), words
    assert "of another form" not in words, (
        f"{field}: its pattern has no words (gateway.config.yamlconf.worded)"
    )
    assert len(words) > 10


def test_words_for_pydantic_s_other_errors() -> None:
    assert in_words({"type": "int_parsing", "loc": ("port",), "msg": "", "input": "x"}) == (
        "'x': expected a whole number"
    )
    assert in_words({"type": "missing", "loc": ("workdir",), "msg": "", "input": {}}) == (
        "missing: this setting is required"
    )
    unknown = in_words(
        {"type": "extra_forbidden", "loc": ("titel",), "msg": "", "input": 1}, SiteConfig, ("titel",)
    )
    assert unknown.startswith("not a setting here (did you mean title?)")
