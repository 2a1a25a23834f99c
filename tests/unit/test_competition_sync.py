"""reference-kernels' layout: every task of the fixture checkout loads, its competition files read into
leaderboards (deadlines, GPU types, descriptions), errors name file, line and field, nothing outside the
checkout is read, and a sync's change list is empty the second time."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.config.competitions import (
    parse_competition_deadline,
    read_checkout,
    read_checkout_archive,
)
from gateway.config.tasks import load_task
from gateway.core.errors import TaskError, UserError
from gateway.service.competition_sync import (
    BoardChange,
    CompetitionSync,
    SyncReport,
    plan_changes,
    planned_gpu_types,
)
from gateway.store import BoardWrite, LeaderboardRecord, LeaderboardSummary, Store

CHECKOUT = Path(__file__).resolve().parents[1] / "fixtures" / "reference_kernels"
TASK_DIRS = sorted(p.parent for p in CHECKOUT.glob("problems/*/*/task.yml"))


def test_the_fixture_covers_every_kind_of_task() -> None:
    assert {p.name for p in TASK_DIRS} == {
        "grouped_add_py",
        "vectoradd_py",
        "vectoradd_cuda",
        "all_reduce_py",
        "sum4_py",
    }


@pytest.mark.parametrize("task_dir", TASK_DIRS, ids=lambda p: p.name)
def test_every_fixture_task_loads_inside_its_checkout(task_dir: Path) -> None:
    task = load_task(task_dir, root=CHECKOUT)
    assert task.tests and task.submission_name in task.files


def test_list_arguments_gpus_lang_own_eval_and_unknown_keys_are_kept() -> None:
    tasks = {p.name: load_task(p, root=CHECKOUT) for p in TASK_DIRS}
    grouped = tasks["grouped_add_py"]
    assert grouped.tests[0] == {"m": [96, 128], "g": 2, "seed": 1}
    assert grouped.main == "eval.py" and "set_seed" in grouped.files["utils.py"]  # ../utils.py, ../eval.py
    assert "[^\\]]*" in grouped.files["eval.py"]  # the shared evaluator parses lists
    assert tasks["all_reduce_py"].main == "eval.py" and tasks["all_reduce_py"].gpus_per_run == 4  # world_size
    assert "mp.spawn" in tasks["all_reduce_py"].files["eval.py"]  # the task's own, not the shared one
    assert tasks["sum4_py"].gpus_per_run == 4 and tasks["sum4_py"].main is None  # gpus: 4
    assert tasks["vectoradd_py"].gpu_types == ["H100", "B200"] and tasks["vectoradd_py"].gpus_per_run == 1
    assert tasks["vectoradd_cuda"].lang == "cu" and tasks["vectoradd_cuda"].submission_name == "submission.cu"
    assert tasks["vectoradd_cuda"].templates.keys() == {"CUDA"}
    va = tasks["vectoradd_py"]
    assert va.unknown_keys == {"display_order": 2}
    assert va.unknown_key_notes() == ["task.yml: unknown key 'display_order' kept but not used"]


def test_a_case_that_cannot_be_written_as_a_line_is_refused_when_the_task_loads(tmp_path: Path) -> None:
    task = shutil.copytree(CHECKOUT / "problems" / "pmpp", tmp_path / "pmpp") / "grouped_add_py"
    yml = task / "task.yml"
    yml.write_text(yml.read_text().replace('"m": [96, 128]', '"m": [[96], [128]]'))
    with pytest.raises(TaskError, match=r"task.yml: tests\[0\]: test case m: .*plain numbers or words"):
        load_task(task)


def test_the_checkout_reads_into_boards_with_deadlines_gpu_types_and_descriptions() -> None:
    plan = read_checkout(CHECKOUT)
    assert plan.competitions == (
        ("Fixture Cup", "problems/fixture_cup.yaml"),
        ("Fixture Distributed", "problems/fixture_dist.yaml"),
    )
    boards = {b.name: b for b in plan.boards}
    assert list(boards) == ["fx-grouped-add", "fx-vectoradd", "fx-vectoradd-cu", "fx-all-reduce", "fx-sum4"]
    assert boards["fx-grouped-add"].deadline == datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
    assert boards["fx-vectoradd"].deadline == datetime(2031, 6, 30, tzinfo=UTC)  # the competition's
    assert boards["fx-vectoradd-cu"].deadline == datetime(2031, 5, 1, 7, 30, tzinfo=UTC)  # "7:30"
    assert boards["fx-sum4"].deadline is None  # neither has one
    assert boards["fx-vectoradd"].gpu_types == ("H100", "B200")
    assert boards["fx-all-reduce"].gpu_types == ("MI300x8",)
    assert boards["fx-vectoradd"].description == "Add two float32 vectors."
    assert boards["fx-grouped-add"].task.name == "fx-grouped-add"
    assert boards["fx-sum4"].source == "problems/fixture_dist.yaml: problems[1]"
    only = read_checkout(CHECKOUT, "fixture_dist.yaml")
    assert [b.name for b in only.boards] == ["fx-all-reduce", "fx-sum4"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        (None, None),
        ("2026-04-07", datetime(2026, 4, 7, tzinfo=UTC)),
        ("2025-11-29 6:59", datetime(2025, 11, 29, 6, 59, tzinfo=UTC)),
        ("2026-04-07 07:59", datetime(2026, 4, 7, 7, 59, tzinfo=UTC)),
        (date(2026, 1, 2), datetime(2026, 1, 2, tzinfo=UTC)),  # unquoted in the YAML
    ],
)
def test_deadlines_as_competition_files_write_them(value: object, expected: datetime | None) -> None:
    assert parse_competition_deadline(value) == expected


def copy_checkout(tmp_path: Path) -> Path:
    return shutil.copytree(CHECKOUT, tmp_path / "checkout")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'deadline: "2031-05-01 12:00"',
            'deadline: "next friday"',
            r"fixture_cup.yaml:8: problems\[0\].deadline: 'next friday' is not a deadline: expected a date",
        ),
        ("    gpus:\n      - H100\n  - directory: pmpp/vectoradd_py", "    gpu:\n      - H100\n"
         "  - directory: pmpp/vectoradd_py", r"fixture_cup.yaml:10: problems\[0\].gpu: not a setting here "
         r"\(did you mean gpus\?\)"),
        (
            "directory: pmpp/grouped_add_py",
            "directory: ../../etc",
            r"fixture_cup.yaml:6: problems\[0\].directory: '../../etc' is not allowed here: expected a",
        ),
        (
            "directory: pmpp/grouped_add_py",
            "directory: pmpp/nothing_here",
            r"fixture_cup.yaml: problems\[0\]: directory: problems/pmpp/nothing_here holds no task.yml",
        ),
        (
            "name: fx-vectoradd\n",
            "name: fx-grouped-add\n",
            r"fixture_cup.yaml: problems\[1\]: name 'fx-grouped-add' is also the name in .*problems\[0\]",
        ),
    ],
    ids=["deadline", "misspelt-key", "outside", "no-task", "twice"],
)  # fmt: skip
def test_errors_name_the_file_line_and_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    checkout = copy_checkout(tmp_path)
    cup = checkout / "problems" / "fixture_cup.yaml"
    assert old in cup.read_text()
    cup.write_text(cup.read_text().replace(old, new, 1))
    with pytest.raises(TaskError, match=message):
        read_checkout(checkout)


def test_nothing_outside_the_checkout_is_read_through_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(CHECKOUT / "problems" / "pmpp", outside)
    checkout = copy_checkout(tmp_path)
    shutil.rmtree(checkout / "problems" / "pmpp" / "grouped_add_py")
    (checkout / "problems" / "pmpp" / "grouped_add_py").symlink_to(outside / "grouped_add_py")
    with pytest.raises(TaskError, match=r"problems\[0\]: directory leads outside the checkout"):
        read_checkout(checkout)
    (checkout / "problems" / "pmpp" / "grouped_add_py").unlink()  # the link only
    shutil.copytree(outside / "grouped_add_py", checkout / "problems" / "pmpp" / "grouped_add_py")
    (checkout / "problems" / "pmpp" / "utils.py").unlink()
    (checkout / "problems" / "pmpp" / "utils.py").symlink_to(outside / "utils.py")
    with pytest.raises(TaskError, match="points outside the task's files"):
        read_checkout(checkout, "fixture_cup")
    with pytest.raises(TaskError, match=r"no competition file 'cup'.*there are: fixture_cup, fixture_dist"):
        read_checkout(checkout, "cup")


def archive_of(folder: Path, prefix: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=prefix)
    return buffer.getvalue()


def test_an_uploaded_archive_reads_as_its_checkout_and_errors_name_its_paths(tmp_path: Path) -> None:
    plan = read_checkout_archive(archive_of(CHECKOUT, "reference-kernels"), "rk.tar.gz")
    assert plan == read_checkout(CHECKOUT)
    checkout = copy_checkout(tmp_path)
    cup = checkout / "problems" / "fixture_cup.yaml"
    cup.write_text(cup.read_text().replace('"2031-06-30"', '"June"'))
    with pytest.raises(TaskError) as refused:
        read_checkout_archive(archive_of(checkout, "."), "rk.tar.gz")
    assert str(refused.value).startswith("rk.tar.gz: problems/fixture_cup.yaml:3: deadline: 'June' is not")
    assert "/tmp" not in str(refused.value)
    with pytest.raises(TaskError, match=r"rk.tar.gz: holds no problems/ folder"):
        read_checkout_archive(archive_of(checkout / "problems" / "pmpp", "pmpp"), "rk.tar.gz")


def stored(write: BoardWrite, board_id: int = 1) -> LeaderboardRecord:
    """The record the store would read back after ``write`` (the task through JSON, as jsonb)."""
    task = json.loads(json.dumps(write.task))
    gpu_types = sorted(write.gpu_types)
    return LeaderboardRecord(
        board_id, write.name, write.description, task, write.ranking_by, gpu_types, write.deadline
    )


KNOWN = ["A100", "H100", "local"]


def test_a_second_sync_changes_nothing_and_a_changed_field_is_named(tmp_path: Path) -> None:
    plan = read_checkout(CHECKOUT)
    first = plan_changes(plan, {}, KNOWN)
    assert [c.kind for c, _ in first] == ["created"] * 5
    notes = {c.board: c.notes for c, _ in first}
    assert notes["fx-vectoradd"] == (
        "task.yml: unknown key 'display_order' kept but not used",
        "no site offers GPU type(s) B200 yet: the board ranks them once a site does",
    )
    assert notes["fx-grouped-add"] == ()
    existing = {w.name: stored(w) for _, w in first}
    second = plan_changes(plan, existing, KNOWN)
    assert [c.kind for c, _ in second] == ["unchanged"] * 5
    report = SyncReport("rk", plan.competitions, tuple(c for c, _ in second), dry_run=False)
    assert not report.changed and report.headline() == "nothing changed: all 5 leaderboards already match rk"

    checkout = copy_checkout(tmp_path)
    cup = checkout / "problems" / "fixture_cup.yaml"
    cup.write_text(cup.read_text().replace('"2031-05-01 12:00"', '"2031-05-02"').replace("- B200", "- A100"))
    task_yml = checkout / "problems" / "pmpp" / "grouped_add_py" / "task.yml"
    task_yml.write_text(task_yml.read_text().replace('"seed": 2}', '"seed": 5}'))
    changed = plan_changes(read_checkout(checkout), existing, KNOWN)
    summaries = [c.summary() for c, _ in changed]
    assert summaries == [
        "fx-grouped-add: updated: task (tests), deadline",
        "fx-vectoradd: updated: GPU types",
        "fx-vectoradd-cu: updated: GPU types",
        "fx-all-reduce: unchanged",
        "fx-sum4: unchanged",
    ]
    assert changed[1][1].gpu_types == ("A100", "H100")
    dry = SyncReport("rk", plan.competitions, tuple(c for c, _ in changed), dry_run=True)
    assert dry.headline() == "dry run, nothing written: 0 to create, 3 to update, 2 unchanged (from rk)"
    assert changed[0][0].summary(dry_run=True) == "fx-grouped-add: to update: task (tests), deadline"


def test_gpu_types_default_to_the_tasks_then_every_offered_and_never_local() -> None:
    plan = read_checkout(CHECKOUT)
    board = replace(plan.boards[1], gpu_types=())  # fx-vectoradd: its task.yml lists H100, B200
    bare = replace(plan.boards[0], gpu_types=())  # fx-grouped-add: its task.yml lists none
    planned = plan_changes(replace(plan, boards=(board, bare)), {}, KNOWN)
    assert [w.gpu_types for _, w in planned] == [("B200", "H100"), ("A100", "H100")]
    local = replace(plan.boards[0], gpu_types=("local",))
    with pytest.raises(UserError, match=r"fixture_cup.yaml: problems\[0\]: gpus: 'local' is the gateway's"):
        plan_changes(replace(plan, boards=(local,)), {}, KNOWN)


def test_a_change_line_says_what_happened() -> None:
    change = BoardChange("b", "created", "Cup", "problems/cup.yaml: problems[0]")
    assert change.summary() == "b: created" and change.summary(dry_run=True) == "b: to create"


class _Counts:
    """The one store read ``_with_runs_noted`` makes: a board's numbers of submissions."""

    def __init__(self, submissions: int) -> None:
        self.submissions = submissions

    async def list_leaderboards(self, include_hidden: bool = False, name: str | None = None) -> list[Any]:
        runs = self.submissions * 2
        return [LeaderboardSummary(name or "", "", [], None, "public", self.submissions, runs)]


async def test_an_update_of_a_task_with_submissions_says_they_ran_the_former_task() -> None:
    fields = ("task (tests)", "deadline")
    change = BoardChange("b", "updated", "Cup", "problems/cup.yaml: problems[0]", fields)
    noted = await CompetitionSync._with_runs_noted(cast(Store, _Counts(3)), change)
    assert noted.notes == ("its 3 submission(s) ran the former task; their scores stay ranked",)
    assert await CompetitionSync._with_runs_noted(cast(Store, _Counts(0)), change) == change
    deadline_only = replace(change, fields=("deadline",))
    assert await CompetitionSync._with_runs_noted(cast(Store, _Counts(3)), deadline_only) == deadline_only


def test_a_runner_name_no_site_offers_ranks_its_gpu_type() -> None:
    board = next(b for b in read_checkout(CHECKOUT).boards if b.name == "fx-all-reduce")
    assert planned_gpu_types(board, ["H100"]) == ("MI300X",)  # KernelBot's MI300x8: a node of 8 MI300X
    assert planned_gpu_types(board, ["MI300x8"]) == ("MI300x8",)  # a site that names its type so keeps it
