"""Issue 18's bad invocations each get a message that says what to do and a non-zero exit code; modes in
any case, task names, -v after the subcommand and shell completion work. The CLI runs as a user runs it
(the installed `gateway` script), on a sites folder of its own and no database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gateway.config.settings import REPO_ROOT

GATEWAY = str(Path(sys.executable).parent / "gateway")
SOLUTION = REPO_ROOT / "problems" / "vectoradd" / "solutions" / "correct.py"


def site(name: str, gpus: dict[str, str]) -> dict[str, object]:
    """A Slurm site on this machine (no SSH): partitions by name with their GPU types."""
    return {
        "name": name,
        "submit_via": "local",
        "workdir": "/tmp/gateway-test-runs",
        "partitions": [{"name": part, "gpu_type": gpu} for part, gpu in gpus.items()],
    }


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "alpha.yaml").write_text(yaml.safe_dump(site("alpha", {"h100": "H100"})))
    (sites / "beta.yaml").write_text(yaml.safe_dump(site("beta", {"a100": "A100", "l4": "L4"})))
    values = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return {
        **values,
        "GATEWAY_SITES_DIR": str(sites),
        "GATEWAY_TASKS_DIR": str(REPO_ROOT / "problems"),
        "GATEWAY_DEV_DIR": str(tmp_path / "no-dev-stack"),  # no dev stack's env file: no database
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # the CLI's cache (gateway.cli.fast): the test's own
    }


def gateway(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GATEWAY, *args],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "250"},
        cwd=cwd or REPO_ROOT,
        timeout=120,
    )


def said(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join((done.stdout + done.stderr).split())


def submit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return gateway(env, "submit", str(SOLUTION), "--no-db", *args)


def test_an_unknown_mode_lists_the_modes(env: dict[str, str]) -> None:
    done = submit(env, "--task", "vectoradd", "--mode", "badmode")
    assert done.returncode == 2
    assert "'badmode' is not one of 'test', 'benchmark', 'leaderboard', 'profile'" in said(done)


def test_modes_are_case_insensitive_and_profile_is_in_the_help(env: dict[str, str]) -> None:
    # the mode is accepted: what fails is the unknown site, checked after the options
    done = submit(env, "--task", "vectoradd", "--mode", "Benchmark", "--site", "nowhere")
    assert done.returncode == 2 and "unknown site 'nowhere'" in said(done)
    assert "test|benchmark|leaderboard|profile" in said(gateway(env, "submit", "--help"))


def test_an_unknown_task_names_the_tasks_there(env: dict[str, str]) -> None:
    done = submit(env, "--task", "nosuch")
    assert done.returncode == 2
    assert "no task 'nosuch': not a task folder here, nor a task in" in said(done)
    assert "tasks there: allreduce_sum, softmax, vectoradd, vectoradd_cu" in said(done)
    close = submit(env, "--task", "vectorad")
    assert close.returncode == 2 and "(did you mean vectoradd or vectoradd_cu?)" in said(close)


def test_a_task_by_name_or_by_path(env: dict[str, str], tmp_path: Path) -> None:
    # both get past the task to the unknown site: the task was found
    for task, cwd in (("vectoradd", tmp_path), (str(REPO_ROOT / "problems" / "vectoradd"), tmp_path)):
        done = gateway(env, "submit", str(SOLUTION), "--no-db", "--task", task, "--site", "nowhere", cwd=cwd)
        assert done.returncode == 2 and "unknown site 'nowhere'" in said(done), said(done)


def test_an_unknown_gpu_lists_what_each_site_offers(env: dict[str, str]) -> None:
    done = submit(env, "--task", "vectoradd", "--gpu", "NOSUCH")
    assert done.returncode == 2
    assert "no site offers GPU type 'NOSUCH'; offered: A100, H100, L4, local" in said(done)
    assert "(alpha: H100; beta: A100, L4)" in said(done)
    close = submit(env, "--task", "vectoradd", "--gpu", "H10")
    assert close.returncode == 2 and "(did you mean H100?)" in said(close)


def test_a_gpu_the_named_site_lacks(env: dict[str, str]) -> None:
    done = submit(env, "--task", "vectoradd", "--site", "alpha", "--gpu", "A100", "--mode", "test")
    assert done.returncode == 2
    assert "site alpha has no partition with GPU type 'A100'; it offers: H100" in said(done)


def test_a_misspelt_site_gets_a_suggestion(env: dict[str, str]) -> None:
    done = submit(env, "--task", "vectoradd", "--site", "alhpa")
    assert done.returncode == 2
    assert "unknown site 'alhpa' (did you mean alpha?); known sites: alpha, beta, local" in said(done)


def test_sites_validate_a_missing_or_empty_folder(env: dict[str, str], tmp_path: Path) -> None:
    missing = gateway(env, "sites", "validate", "nosuchdir")
    assert missing.returncode == 2
    assert "nosuchdir does not exist: give the folder that holds the site YAML files" in said(missing)
    (tmp_path / "empty").mkdir()
    empty = gateway(env, "sites", "validate", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "holds no site YAML file (*.yaml): nothing to validate" in said(empty)


def test_sites_validate_a_bad_field_in_words(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    bad = site("gamma", {"h100": "H100"}) | {"account": "two words"}
    text = yaml.safe_dump(bad, sort_keys=False)
    (folder / "gamma.yaml").write_text(text)
    line = next(n for n, at in enumerate(text.splitlines(), 1) if at.startswith("account:"))
    done = gateway(env, "sites", "validate", str(folder))
    assert done.returncode == 1
    assert (
        f"{folder / 'gamma.yaml'}:{line}: account: 'two words' is not allowed here: expected a name"
        in said(done)
    )
    assert "pattern" not in said(done) and "^" not in said(done)


def test_verbose_before_or_after_the_subcommand(env: dict[str, str]) -> None:
    for args in (
        ["-v", "sites", "validate"],
        ["sites", "validate", "-v"],
        ["sites", "validate", "--verbose"],
    ):
        done = gateway(env, *args)
        assert done.returncode == 0 and "ok alpha" in done.stdout, said(done)
    runs_help = said(gateway(env, "runs", "list", "--help"))
    assert "--verbose -v" in runs_help and "log debug detail" in runs_help


def complete(env: dict[str, str], words: str) -> list[str]:
    cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    done = subprocess.run(
        [GATEWAY],
        capture_output=True,
        text=True,
        env={**env, "_GATEWAY_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword},
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout.split()


def test_completion_of_sites_gpus_modes_and_tasks(env: dict[str, str]) -> None:
    assert complete(env, "gateway submit x.py --site ") == ["alpha", "beta", "local"]
    assert complete(env, "gateway submit x.py --site a") == ["alpha"]
    assert complete(env, "gateway submit x.py --gpu ") == ["A100", "H100", "L4"]
    assert complete(env, "gateway submit x.py --mode ") == ["test", "benchmark", "leaderboard", "profile"]
    assert complete(env, "gateway submit x.py --task v") == ["vectoradd", "vectoradd_cu"]
    assert "submit" in complete(env, "gateway sub")


def test_completing_a_board_without_a_database_is_silent_and_quick(env: dict[str, str]) -> None:
    assert complete(env, "gateway submit x.py --leaderboard ") == []
    # a database that does not answer: nothing completed, nothing printed, within the timeout
    unreachable = {**env, "GATEWAY_DATABASE_URL": "postgresql://u:p@127.0.0.1:9/none"}
    started = time.monotonic()
    assert complete(unreachable, "gateway submit x.py --leaderboard ") == []
    assert time.monotonic() - started < 10
