from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT
from gateway.config.tasks import SUBMISSION_PLACEHOLDER, TaskDefinition, load_task
from gateway.core.errors import TaskError

PROBLEMS = REPO_ROOT / "problems"
TASK_YML = """\
files:
  - {"name": "submission.py", "source": "@SUBMISSION@"}
  - {"name": "reference.py", "source": "reference.py"}
  - {"name": "utils.py", "source": "../utils.py"}
lang: "py"
config:
  main: "reference.py"
tests:
  - {"size": 1, "seed": 2}
benchmarks:
  - {"size": 8, "seed": 3}
ranking_by: "last"
test_timeout: 7
"""


def make_task(tmp_path: Path, text: str = TASK_YML) -> Path:
    task = tmp_path / "mytask"
    task.mkdir()
    (task / "task.yml").write_text(text)
    (task / "reference.py").write_text("REF = 1\n")
    (tmp_path / "utils.py").write_text("UTIL = 1\n")
    return task


@pytest.mark.parametrize("problem", ["vectoradd", "softmax"])
def test_example_problems_load(problem: str) -> None:
    task = load_task(PROBLEMS / problem)
    assert task.name == problem
    assert task.files[task.submission_name] == SUBMISSION_PLACEHOLDER
    assert {"reference.py", "task.py", "utils.py"} <= set(task.files)
    assert task.tests and task.benchmarks and task.ranking_by == "geom"
    for solution in ("correct.py", "slow.py", "wrong.py"):
        assert (PROBLEMS / problem / "solutions" / solution).is_file()


def test_reference_kernels_layout_is_resolved(tmp_path: Path) -> None:
    task = load_task(make_task(tmp_path))
    assert task.files["utils.py"] == "UTIL = 1\n"  # ../utils.py, as reference-kernels shares it
    assert task.main == "reference.py"
    assert task.timeouts == {"test": 7, "benchmark": 180, "leaderboard": 180}
    assert task.tests == [{"size": 1, "seed": 2}]
    assert TaskDefinition.from_json(task.model_dump()) == task  # survives the database round trip


def test_missing_task_yml(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match=r"no task\.yml"):
        load_task(tmp_path)


def test_a_task_without_a_submission_slot(tmp_path: Path) -> None:
    text = TASK_YML.replace('"@SUBMISSION@"', '"reference.py"')
    with pytest.raises(TaskError, match="@SUBMISSION@"):
        load_task(make_task(tmp_path, text))


def test_a_missing_source_file_is_named(tmp_path: Path) -> None:
    text = TASK_YML.replace('"../utils.py"', '"../nowhere.py"')
    with pytest.raises(TaskError, match=r"utils.py: cannot read .*nowhere.py"):
        load_task(make_task(tmp_path, text))


def test_a_bad_field_names_line_and_path(tmp_path: Path) -> None:
    text = TASK_YML.replace('ranking_by: "last"', 'ranking_by: "median"')
    with pytest.raises(TaskError, match=r"task.yml:12: ranking_by"):
        load_task(make_task(tmp_path, text))


def test_main_must_be_one_of_the_files(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match=r"config\.main"):
        load_task(make_task(tmp_path, TASK_YML.replace('main: "reference.py"', 'main: "eval.py"')))


def test_list_arguments_survive_loading_and_storing(tmp_path: Path) -> None:
    text = TASK_YML.replace('{"size": 1, "seed": 2}', '{"m": [96, 128], "n": [128, 256], "g": 2, "seed": 2}')
    task = load_task(make_task(tmp_path, text))
    assert task.tests == [{"m": [96, 128], "n": [128, 256], "g": 2, "seed": 2}]
    assert TaskDefinition.from_json(task.model_dump()) == task


def test_multi_gpu_takes_its_gpus_from_the_largest_world_size(tmp_path: Path) -> None:
    text = (
        TASK_YML.replace('"seed": 2}', '"seed": 2, "world_size": 2}')
        .replace('"seed": 3}', '"seed": 3, "world_size": 4}')
        .replace('lang: "py"', 'lang: "py"\nmulti_gpu: true')
    )
    task = load_task(make_task(tmp_path, text))
    assert task.gpus_per_run == 4 and task.multi_gpu


def test_multi_gpu_without_world_sizes_says_what_to_add(tmp_path: Path) -> None:
    text = TASK_YML.replace('lang: "py"', 'lang: "py"\nmulti_gpu: true')
    with pytest.raises(TaskError, match=r"multi_gpu: every test and benchmark needs a world_size"):
        load_task(make_task(tmp_path, text))


@pytest.mark.parametrize(("gpus", "per_run", "types"), [("2", 2, []), ("[B200, H100]", 1, ["B200", "H100"])])
def test_gpus_is_a_count_or_the_gpu_types_reference_kernels_lists(
    tmp_path: Path, gpus: str, per_run: int, types: list[str]
) -> None:
    task = load_task(make_task(tmp_path, TASK_YML + f"gpus: {gpus}\n"))
    assert (task.gpus_per_run, task.gpu_types) == (per_run, types)


def test_unknown_keys_are_kept_and_reported_with_a_suggestion(tmp_path: Path) -> None:
    task = load_task(make_task(tmp_path, TASK_YML + "ranking-by: mean\nowner: me\n"))
    assert task.unknown_keys == {"ranking-by": "mean", "owner": "me"}
    notes = task.unknown_key_notes()
    assert len(notes) == 2 and "ranking-by" in notes[0] and "ranking_by" in notes[0]
    assert TaskDefinition.from_json(task.model_dump()) == task


def test_a_cuda_task_loads_as_lang_cu(tmp_path: Path) -> None:
    task = load_task(make_task(tmp_path, TASK_YML.replace('lang: "py"', 'lang: "cu"')))
    assert task.lang == "cu"
    (tmp_path / "other").mkdir()
    with pytest.raises(TaskError, match="lang"):
        load_task(make_task(tmp_path / "other", TASK_YML.replace('lang: "py"', 'lang: "rust"')))
