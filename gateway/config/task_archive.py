"""A task uploaded as an archive (.zip, .tar, .tar.gz): unpacked with limits into a temporary folder and
read like a task directory, its sources confined to what the archive holds.

Archives come from admins over Discord or HTTP, so they are treated as hostile: no absolute paths, no
``..``, no links or devices, bounded member count and unpacked size (a zip bomb stops at the limit)."""

from __future__ import annotations

import io
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from gateway.config.tasks import TaskDefinition, load_task
from gateway.core.errors import TaskError

MAX_ARCHIVE_BYTES = 8 * 1024 * 1024
MAX_UNPACKED_BYTES = 32 * 1024 * 1024
MAX_MEMBERS = 500
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


def check_archive(file_name: str, size: int) -> None:
    """An upload's name and size, checked before it is downloaded (and again once it is)."""
    if not file_name.lower().endswith(ARCHIVE_SUFFIXES):
        raise TaskError(f"{file_name}: upload the task directory as {', '.join(ARCHIVE_SUFFIXES)}")
    if size > MAX_ARCHIVE_BYTES:
        raise TaskError(f"{file_name} is {size} bytes; an archive may have at most {MAX_ARCHIVE_BYTES}")


def load_task_archive(data: bytes, file_name: str, name: str | None = None) -> TaskDefinition:
    """The task in an archive: the task.yml nearest its top (blocking: call it in a thread)."""
    with tempfile.TemporaryDirectory(prefix="gateway-task-") as tmp:
        root = Path(tmp)
        unpack_archive(data, file_name, root)
        found = sorted(root.rglob("task.yml"), key=lambda p: (len(p.parts), str(p)))
        if not found:
            raise TaskError(f"{file_name} holds no task.yml: archive a task directory (task.yml, ...)")
        task_dir = found[0].parent
        default_name = task_dir.name if task_dir != root else Path(file_name).name.split(".")[0]
        return load_task(task_dir, name or default_name, root=root)


def unpack_archive(data: bytes, file_name: str, root: Path) -> None:
    """An uploaded archive (a task, or a checkout of task folders) unpacked into ``root`` with the limits
    above; TaskError saying what is wrong (blocking: call it in a thread)."""
    check_archive(file_name, len(data))
    if file_name.lower().endswith(".zip"):
        _unzip(data, file_name, root)
    else:
        _untar(data, file_name, root)


def _member_path(file_name: str, member: str, root: Path) -> Path:
    path = PurePosixPath(member)
    if path.is_absolute() or ".." in path.parts or "\\" in member:
        raise TaskError(f"{file_name}: member {member!r} would unpack outside the archive's folder")
    return root.joinpath(*path.parts)


class _Budget:
    def __init__(self, file_name: str, members: int) -> None:
        if members > MAX_MEMBERS:
            raise TaskError(f"{file_name} has {members} members; at most {MAX_MEMBERS}")
        self.file_name, self.left = file_name, MAX_UNPACKED_BYTES

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise TaskError(f"{self.file_name} unpacks to more than {MAX_UNPACKED_BYTES} bytes")


def _write(target: Path, source: IO[bytes], budget: _Budget) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        while chunk := source.read(64 * 1024):
            budget.take(len(chunk))  # counted as read, not as declared: headers can lie
            out.write(chunk)


def _unzip(data: bytes, file_name: str, root: Path) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise TaskError(f"{file_name} is not a readable zip archive ({exc})") from exc
    with archive:
        members = archive.infolist()
        budget = _Budget(file_name, len(members))
        for info in members:
            target = _member_path(file_name, info.filename, root)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise TaskError(f"{file_name}: member {info.filename!r} is a link; archive plain files only")
            try:
                with archive.open(info) as source:
                    _write(target, source, budget)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
                raise TaskError(f"{file_name}: cannot unpack {info.filename!r} ({exc})") from exc


def _untar(data: bytes, file_name: str, root: Path) -> None:
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise TaskError(f"{file_name} is not a readable tar archive ({exc})") from exc
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise TaskError(f"{file_name} is not a readable tar archive ({exc})") from exc
        budget = _Budget(file_name, len(members))
        for member in members:
            target = _member_path(file_name, member.name, root)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                raise TaskError(f"{file_name}: member {member.name!r} is a link or device; plain files only")
            source = archive.extractfile(member)
            assert source is not None  # a regular file always has contents
            with source:
                _write(target, source, budget)
