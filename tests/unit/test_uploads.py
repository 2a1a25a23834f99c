"""Uploads: a submission file checked before and after download, and a task archive unpacked as hostile
input (paths outside its folder, links, bombs) into a task definition confined to what it holds."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from gateway.config.task_archive import MAX_MEMBERS, MAX_UNPACKED_BYTES, load_task_archive
from gateway.core.errors import SubmissionError, TaskError
from gateway.service.intake import check_upload_name, take_upload
from tests.conftest import PROBLEMS


def test_a_submission_file_is_checked_before_and_after_download() -> None:
    check_upload_name("kernel.py", 10, "py", 100)
    for name, size, message in [
        ("kernel.cu", 10, "is not a Python file: this task takes a .py file"),
        ("kernel.py", 101, "is 101 bytes; the limit is 100 bytes"),
        ("kernel.py", 0, "is empty"),
    ]:
        with pytest.raises(SubmissionError, match=message):
            check_upload_name(name, size, "py", 100)
    assert take_upload("\ufeffx = 'é'\n".encode(), "k.py", max_bytes=100).code == "x = 'é'\n"
    with pytest.raises(SubmissionError, match=r"not UTF-8 text \(byte 0xff at offset 4\)"):
        take_upload(b"x = \xff\n", "k.py", max_bytes=100)
    with pytest.raises(SubmissionError, match="the limit is 4 bytes"):
        take_upload(b"x = 1\n", "k.py", max_bytes=4)


def tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def task_files(prefix: str = "vectoradd/") -> dict[str, bytes]:
    files = {prefix + p.name: p.read_bytes() for p in (PROBLEMS / "vectoradd").iterdir() if p.is_file()}
    files["utils.py"] = (PROBLEMS / "utils.py").read_bytes()
    return files


def test_a_task_archive_reads_like_its_directory() -> None:
    task = load_task_archive(tar(task_files()), "vectoradd.tar.gz")
    assert task.name == "vectoradd" and len(task.tests) == 3 and task.starter is not None
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        for name, data in task_files().items():
            archive.writestr(name, data)
    assert load_task_archive(zipped.getvalue(), "t.zip", "renamed").name == "renamed"


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (lambda: tar({"../evil.py": b"x"}), "would unpack outside the archive's folder"),
        (lambda: tar({"/etc/evil.py": b"x"}), "would unpack outside the archive's folder"),
        (lambda: tar(task_files(), links={"vectoradd/leak.py": "/etc/passwd"}), "is a link or device"),
        (lambda: tar({"big.bin": b"\0" * (MAX_UNPACKED_BYTES + 1)}), "unpacks to more than"),
        (lambda: tar({f"f{n}": b"" for n in range(MAX_MEMBERS + 1)}), f"at most {MAX_MEMBERS}"),
        (lambda: tar({"readme.md": b"hi"}), "holds no task.yml"),
        (lambda: b"not an archive", "not a readable tar archive"),
    ],
)
def test_a_hostile_archive_is_refused_with_the_reason(archive: object, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        load_task_archive(archive(), "task.tar.gz")  # type: ignore[operator]


def test_archived_sources_cannot_reach_outside_the_archive() -> None:
    files = task_files()
    files["vectoradd/task.yml"] = files["vectoradd/task.yml"].replace(
        b"../utils.py", b"../../../etc/hostname"
    )
    with pytest.raises(TaskError, match="points outside the task's files"):
        load_task_archive(tar(files), "t.tar.gz")
