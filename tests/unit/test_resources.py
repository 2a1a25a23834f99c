"""Where the gateway finds its own files in a checkout, and the `--task NAME` lookup."""

from pathlib import Path

import pytest

from gateway.config.settings import REPO_ROOT, Settings
from gateway.config.tasks import find_task_dir
from gateway.core import resources
from gateway.core.errors import ConfigError, TaskError
from gateway.running.jobscript import TemplateRenderer


def test_a_checkout_uses_its_own_top_level_folders() -> None:
    assert resources.checkout_root() == REPO_ROOT
    assert resources.templates_dir() == REPO_ROOT / "templates"
    assert resources.migrations_dir() == REPO_ROOT / "migrations"
    assert resources.problems_dir() == REPO_ROOT / "problems"
    assert resources.default_sites_dir() == REPO_ROOT / "site_configs"
    assert resources.harness_dir() == REPO_ROOT / "harness"
    assert (resources.probe_task_dir() / "task.yml").is_file()


def test_settings_defaults_come_from_the_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_SITES_DIR", "GATEWAY_TASKS_DIR", "GATEWAY_TEMPLATES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATEWAY_DEV_DIR", "/nonexistent")
    settings = Settings()
    assert settings.templates_dir == resources.templates_dir()
    assert settings.tasks_dir == resources.problems_dir()
    assert settings.sites_dir == resources.default_sites_dir()


def test_the_user_sites_folder_follows_xdg_config_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert resources.user_sites_dir() == tmp_path / "kernel-gateway" / "sites"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resources.user_sites_dir() == tmp_path / ".config" / "kernel-gateway" / "sites"


def test_a_missing_template_names_the_folder_and_the_setting(tmp_path: Path) -> None:
    renderer = TemplateRenderer(tmp_path)
    with pytest.raises(ConfigError, match="GATEWAY_TEMPLATES_DIR") as caught:
        renderer.render("local.sh.j2", None)  # type: ignore[arg-type]  # fails at loading, before ctx is read
    assert str(tmp_path) in str(caught.value)


def test_task_by_path_or_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = REPO_ROOT / "problems"
    assert find_task_dir(str(tasks / "vectoradd"), tasks) == tasks / "vectoradd"
    assert find_task_dir("vectoradd", tasks) == tasks / "vectoradd"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vectoradd").mkdir()  # a folder of that name without task.yml: the task of that name
    assert find_task_dir("vectoradd", tasks) == tasks / "vectoradd"
    (tmp_path / "vectoradd" / "task.yml").write_text("")  # a task folder here wins: a path is a path
    assert find_task_dir("vectoradd", tasks) == Path("vectoradd")
    with pytest.raises(
        TaskError,
        match=r"no task 'vectorad'.*did you mean vectoradd.*allreduce_sum, softmax, vectoradd, vectoradd_cu",
    ):
        find_task_dir("vectorad", tasks)
    assert find_task_dir("a/b", tasks) == Path("a/b")  # a path is left to load_task's message
