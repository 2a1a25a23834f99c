"""Competitions in reference-kernels' layout: ``problems/<competition>.yaml`` files, each naming its
problems' task folders (relative to ``problems/``), leaderboard names, deadlines and GPU types; read from a
checkout into the leaderboards they describe (``read_checkout``).

A checkout is untrusted: every file read lies inside it (links that lead out are refused), and every error
names the file, its line and the field to fix."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.config.task_archive import unpack_archive
from gateway.config.tasks import TaskDefinition, load_task
from gateway.config.yamlconf import load_yaml_model, worded
from gateway.core.errors import ConfigError, TaskError
from gateway.core.suggest import did_you_mean

PROBLEMS_DIR = "problems"
# "2026-04-07", "2026-04-07 07:59", "2025-11-29 6:59" (UTC): what reference-kernels writes
_DEADLINE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{1,2}):(\d{2}))?")
DEADLINE_WORDS = 'a date (2026-06-30) or a date and UTC time (2026-06-30 07:59), or "" for none'


def parse_competition_deadline(value: Any) -> datetime | None:
    """A deadline as competition files write it: empty for none, a date (its start, UTC) or a date and
    time (UTC). ValueError saying what is allowed otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):  # an unquoted timestamp, as YAML reads it
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):  # an unquoted date
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    matched = _DEADLINE.fullmatch(value.strip()) if isinstance(value, str) else None
    try:
        if matched is None:
            raise ValueError
        year, month, day, hour, minute = (int(part) if part else 0 for part in matched.groups())
        return datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{str(value)[:60]!r} is not a deadline: expected {DEADLINE_WORDS}") from None


class Problem(BaseModel):
    """One entry of a competition file's ``problems``: a task folder and the leaderboard made of it."""

    model_config = ConfigDict(extra="forbid")
    directory: str = Field(
        pattern=worded(
            r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$",
            "a folder under problems/ such as amd/fp8-mm (letters, digits, '_', '.', '-', and '/' between)",
        )
    )
    name: str = Field(  # the leaderboard's name, and its task's
        pattern=worded(
            r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
            "a name that starts with a letter or digit, then up to 63 letters, digits, '_', '.' or '-'",
        )
    )
    deadline: datetime | None = None
    gpus: list[str] = Field(default_factory=list)

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline(cls, value: Any) -> datetime | None:
        return parse_competition_deadline(value)


class Competition(BaseModel):
    """A competition file (``problems/<file>.yaml``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    deadline: datetime | None = None  # each problem's, unless it has its own
    description: str = ""
    problems: list[Problem] = Field(min_length=1)

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline(cls, value: Any) -> datetime | None:
        return parse_competition_deadline(value)


@dataclass(frozen=True)
class PlannedBoard:
    """A leaderboard as a checkout describes it."""

    name: str
    task: TaskDefinition
    deadline: datetime | None
    gpu_types: tuple[str, ...]  # as the competition file lists them (empty: the task's own list)
    description: str
    competition: str  # the competition's name
    source: str  # where it is written: "problems/amd.yaml: problems[2]"


@dataclass(frozen=True)
class CheckoutPlan:
    competitions: tuple[tuple[str, str], ...]  # (competition name, its file relative to the checkout)
    boards: tuple[PlannedBoard, ...]


def competition_files(checkout: Path, competition: str | None = None) -> list[Path]:
    """``checkout/problems/*.yaml``, or the one ``competition`` names (its file's name, with or without
    .yaml); TaskError listing those there when there is none."""
    problems = checkout / PROBLEMS_DIR
    if not problems.is_dir():
        raise TaskError(
            f"{checkout}: no {PROBLEMS_DIR}/ folder here; give a reference-kernels checkout (its top folder)"
        )
    found = sorted(p for p in problems.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if competition is None:
        if not found:
            raise TaskError(f"{problems}: no competition files (<name>.yaml) here")
        return found
    chosen = [p for p in found if competition in (p.name, p.stem)]
    if not chosen:
        stems = [p.stem for p in found]
        raise TaskError(
            f"no competition file {competition!r} in {problems}{did_you_mean(competition, stems)}; "
            f"there are: {', '.join(stems) or 'none'}"
        )
    return chosen


def read_checkout(checkout: Path, competition: str | None = None) -> CheckoutPlan:
    """Every leaderboard the checkout's competition files describe (``competition``: one file's), each
    task folder loaded; blocking (call it in a thread). TaskError naming file, line and
    field for the first problem found; a leaderboard named twice is refused."""
    root = checkout.resolve()
    names: list[tuple[str, str]] = []
    boards: list[PlannedBoard] = []
    seen: dict[str, str] = {}
    for path in competition_files(root, competition):
        shown_file = f"{PROBLEMS_DIR}/{path.name}"
        _inside(root, path, shown_file)
        try:
            spec = load_yaml_model(path, Competition)
        except ConfigError as exc:
            raise TaskError(str(exc)) from exc
        names.append((spec.name, shown_file))
        for index, problem in enumerate(spec.problems):
            source = f"{shown_file}: problems[{index}]"
            if problem.name in seen:
                raise TaskError(f"{source}: name {problem.name!r} is also the name in {seen[problem.name]}")
            seen[problem.name] = source
            boards.append(_planned(root, spec, problem, source))
    return CheckoutPlan(tuple(names), tuple(boards))


def _inside(root: Path, path: Path, shown: str) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise TaskError(f"{shown} leads outside the checkout (a link); nothing outside it is read")
    return resolved


def _planned(root: Path, spec: Competition, problem: Problem, source: str) -> PlannedBoard:
    task_dir = _inside(root, root / PROBLEMS_DIR / problem.directory, f"{source}: directory")
    if not (task_dir / "task.yml").is_file():
        raise TaskError(f"{source}: directory: {PROBLEMS_DIR}/{problem.directory} holds no task.yml")
    _inside(root, task_dir / "task.yml", f"{source}: directory: {problem.directory}/task.yml")
    try:
        task = load_task(task_dir, problem.name, root=root)
    except (TaskError, ValueError) as exc:  # ValueError: a field the task definition refuses
        raise TaskError(f"{source} ({problem.directory}): {exc}") from exc
    return PlannedBoard(
        name=problem.name,
        task=task,
        deadline=problem.deadline or spec.deadline,
        gpu_types=tuple(problem.gpus),
        description=task.description or spec.description.strip(),
        competition=spec.name,
        source=source,
    )


def read_checkout_archive(data: bytes, file_name: str, competition: str | None = None) -> CheckoutPlan:
    """``read_checkout`` of an uploaded archive of a checkout (``git archive``'s, with or without one top
    folder), unpacked with the task archive's limits; errors name the archive's paths, never the server's
    temporary folder. Blocking: call it in a thread."""
    with tempfile.TemporaryDirectory(prefix="gateway-checkout-") as tmp:
        root = Path(tmp).resolve()
        tops: list[Path] = []
        try:
            unpack_archive(data, file_name, root)
            found = [p for p in root.rglob(PROBLEMS_DIR) if p.is_dir() and len(p.relative_to(root).parts) < 3]
            tops = sorted((p.parent for p in found), key=lambda p: len(p.parts))  # at the top, or one down
            if not tops:
                raise TaskError(f"holds no {PROBLEMS_DIR}/ folder: archive a reference-kernels checkout")
            return read_checkout(tops[0], competition)
        except TaskError as exc:
            message = str(exc).replace(f"{tops[0] if tops else root}/", "").replace(f"{root}/", "")
            raise TaskError(f"{file_name}: {message}") from exc
