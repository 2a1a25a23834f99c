"""Task directories in GPU MODE's reference-kernels format, resolved into one serialisable definition."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.config.yamlconf import load_yaml_model, worded
from gateway.core.errors import TaskError
from gateway.core.suggest import did_you_mean
from harness.protocol import ProtocolError, format_test_spec

SUBMISSION_PLACEHOLDER = "@SUBMISSION@"
RankingBy = Literal["last", "mean", "geom"]
Language = Literal["py", "cu"]
Scalar = int | float | str
# a test case's argument: a scalar, or a list of them (grouped GEMM's per-group sizes: "m": [96, 128])
TestArg = int | float | str | list[Any]
TestCase = dict[str, TestArg]


class _TaskFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        pattern=worded(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", "a file name of letters, digits, '_', '.' or '-'")
    )
    source: str


class _TaskConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    main: str | None = None


class _TaskYaml(BaseModel):
    """task.yml as reference-kernels writes it (``templates`` and unknown keys are kept aside)."""

    model_config = ConfigDict(extra="allow")
    files: list[_TaskFile] = Field(min_length=1)
    lang: Language = "py"
    description: str = ""
    config: _TaskConfig = Field(default_factory=_TaskConfig)
    tests: list[TestCase] = Field(min_length=1)
    benchmarks: list[TestCase] = Field(default_factory=list)
    # reference-kernels: ``gpus`` lists the GPU types a task is meant for (``[B200]``); a number here
    # means GPUs per run. ``multi_gpu: true`` takes the count from the cases' ``world_size``.
    gpus: list[str] | int | None = None
    multi_gpu: bool = False
    ranking_by: RankingBy = "geom"
    test_timeout: int = Field(default=180, gt=0)
    benchmark_timeout: int = Field(default=180, gt=0)
    ranked_timeout: int = Field(default=180, gt=0)
    timeouts: dict[Literal["test", "benchmark", "leaderboard", "compile"], int] | None = None


class TaskDefinition(BaseModel):
    """Everything needed to run a task, with file contents inlined (stored as a leaderboard's task)."""

    model_config = ConfigDict(frozen=True)
    name: str = Field(
        pattern=worded(
            r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
            "a name that starts with a letter or digit, then up to 63 letters, digits, '_', '.' or '-'",
        )
    )
    description: str = ""
    lang: Language = "py"
    main: str | None = None
    files: dict[str, str]  # file name in task/ -> content; the submission's entry is the placeholder
    submission_name: str
    tests: list[TestCase]
    benchmarks: list[TestCase]
    ranking_by: RankingBy
    timeouts: dict[str, int]
    # starter files by language label as task.yml's ``templates`` names them ("Python": its content);
    # tasks stored before templates were kept have none
    templates: dict[str, str] = Field(default_factory=dict)
    gpus_per_run: int = Field(default=1, ge=1, le=64)  # GPUs (and ranks) one run of the task takes
    gpu_types: list[str] = Field(default_factory=list)  # the GPU types task.yml names, if any
    # task.yml's keys this gateway does not know, kept as written (load_task's caller reports them)
    unknown_keys: dict[str, Any] = Field(default_factory=dict)

    @property
    def multi_gpu(self) -> bool:
        return self.gpus_per_run > 1

    def unknown_key_notes(self) -> list[str]:
        """One line per unknown task.yml key, with the known key it may be a misspelling of."""
        return [
            f"task.yml: unknown key {key!r} kept but not used{did_you_mean(key, sorted(KNOWN_KEYS))}"
            for key in self.unknown_keys
        ]

    @property
    def starter(self) -> tuple[str, str] | None:
        """The first template as (language, content), the file a competitor starts from."""
        return next(iter(self.templates.items()), None)

    @field_validator("files")
    @classmethod
    def _one_submission(cls, files: dict[str, str]) -> dict[str, str]:
        if sum(1 for v in files.values() if v == SUBMISSION_PLACEHOLDER) != 1:
            raise ValueError(f"exactly one file must have source {SUBMISSION_PLACEHOLDER}")
        return files

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskDefinition:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise TaskError(f"stored task definition is invalid: {exc}") from exc


def find_task_dir(text: str, tasks_dir: Path) -> Path:
    """The task folder ``--task`` names: a folder holding task.yml (a path), else the name of a task in
    ``tasks_dir`` (settings.tasks_dir: the shipped example problems by default). TaskError naming the
    tasks there (and a close one) when it is neither."""
    given = Path(text).expanduser()
    if (given / "task.yml").is_file() or os.sep in text or text.startswith("."):
        return given  # a path: load_task says what it lacks
    named = tasks_dir / text
    if (named / "task.yml").is_file():
        return named
    if given.is_dir():
        return given
    try:
        known = sorted(d.name for d in tasks_dir.iterdir() if (d / "task.yml").is_file())
    except OSError:
        known = []
    where = os.fsencode(tasks_dir).decode("utf-8", "backslashreplace")
    raise TaskError(
        f"no task {text[:80]!r}: not a task folder here, nor a task in {where}{did_you_mean(text, known)}; "
        f"tasks there: {', '.join(known) or 'none'} (give a task folder's path, or set GATEWAY_TASKS_DIR)"
    )


def load_task(task_dir: Path, name: str | None = None, *, root: Path | None = None) -> TaskDefinition:
    """Read ``task_dir/task.yml`` and inline every file and template it names (sources may use ``../``;
    with ``root``, never outside it: an uploaded archive cannot reach the server's files)."""
    task_yml = task_dir / "task.yml"
    if not task_yml.is_file():
        raise TaskError(f"{task_dir}: no task.yml here; a task directory holds task.yml, reference.py, ...")
    try:
        raw = load_yaml_model(task_yml, _TaskYaml)
    except Exception as exc:
        raise TaskError(str(exc)) from exc
    files: dict[str, str] = {}
    submission_name = None
    for entry in raw.files:
        if entry.name in files:
            raise TaskError(f"{task_yml}: files: {entry.name!r} is listed twice")
        if entry.source == SUBMISSION_PLACEHOLDER:
            submission_name = entry.name
            files[entry.name] = SUBMISSION_PLACEHOLDER
            continue
        files[entry.name] = _read_source(task_yml, f"files: {entry.name}", entry.source, root)
    if submission_name is None:
        raise TaskError(f"{task_yml}: files: one entry needs source {SUBMISSION_PLACEHOLDER}")
    for phase, cases in (("tests", raw.tests), ("benchmarks", raw.benchmarks)):
        for index, case in enumerate(cases):
            try:
                format_test_spec(case)  # the runner writes each case as one 'key: value; ...' line
            except ProtocolError as exc:
                raise TaskError(f"{task_yml}: {phase}[{index}]: {exc}") from exc
    if raw.config.main is not None and raw.config.main not in files:
        raise TaskError(f"{task_yml}: config.main: {raw.config.main!r} is not among the files")
    timeouts: dict[str, int] = (
        {str(k): v for k, v in raw.timeouts.items()}
        if raw.timeouts
        else {
            "test": raw.test_timeout,
            "benchmark": raw.benchmark_timeout,
            "leaderboard": raw.ranked_timeout,
        }
    )
    extra = dict(raw.model_extra or {})
    templates = _templates(task_yml, extra, root)
    extra.pop("templates", None)
    return TaskDefinition(
        name=name or task_dir.resolve().name,
        description=raw.description.strip(),
        lang=raw.lang,
        main=raw.config.main,
        files=files,
        submission_name=submission_name,
        tests=raw.tests,
        benchmarks=raw.benchmarks,
        ranking_by=raw.ranking_by,
        timeouts=timeouts,
        templates=templates,
        gpus_per_run=_gpus_per_run(task_yml, raw),
        gpu_types=list(raw.gpus) if isinstance(raw.gpus, list) else [],
        unknown_keys=extra,
    )


KNOWN_KEYS = frozenset(_TaskYaml.model_fields) | {"templates"}


def _gpus_per_run(task_yml: Path, raw: _TaskYaml) -> int:
    """How many GPUs one run takes: ``gpus: N``, else for ``multi_gpu`` the largest ``world_size`` of
    its cases (reference-kernels' distributed tasks put it there), else one."""
    if isinstance(raw.gpus, int):
        if not 1 <= raw.gpus <= 64:
            raise TaskError(f"{task_yml}: gpus: {raw.gpus} GPUs per run; give 1 to 64")
        return raw.gpus
    if not raw.multi_gpu:
        return 1
    sizes = [case.get("world_size") for case in [*raw.tests, *raw.benchmarks]]
    if not sizes or not all(isinstance(n, int) and 1 <= n <= 64 for n in sizes):
        raise TaskError(
            f"{task_yml}: multi_gpu: every test and benchmark needs a world_size of 1 to 64 "
            "(the ranks it runs on), or give gpus: N"
        )
    return max(n for n in sizes if isinstance(n, int))


def _read_source(task_yml: Path, field: str, source: str, root: Path | None) -> str:
    path = (task_yml.parent / source).resolve()
    if root is not None and not path.is_relative_to(root.resolve()):
        raise TaskError(f"{task_yml.name}: {field}: {source!r} points outside the task's files")
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskError(f"{task_yml}: {field}: cannot read {source}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TaskError(f"{task_yml}: {field}: {source} is not UTF-8 text ({exc.reason})") from exc


def _templates(task_yml: Path, extra: dict[str, Any], root: Path | None) -> dict[str, str]:
    """task.yml's ``templates: {Language: file}``, inlined."""
    declared = extra.get("templates") or {}
    if not isinstance(declared, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in declared.items()
    ):
        raise TaskError(f"{task_yml}: templates: expected a mapping of language to file, e.g. Python: x.py")
    return {
        language: _read_source(task_yml, f"templates: {language}", source, root)
        for language, source in declared.items()
    }
