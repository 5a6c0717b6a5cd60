"""Atomic writes: permissions, durability, leftovers; output-directory checks."""

import errno
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from keras_trainplus import _files
from keras_trainplus.callbacks import _state_file
from tests.helpers.callbacks import refuse_writes


@pytest.fixture
def umask():
    """Sets the process umask for one test and puts the previous one back."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.smoke
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002], ids=oct)
def test_atomic_file_has_the_mode_of_a_plain_file(tmp_path, umask, mask):
    umask(mask)
    with open(tmp_path / "plain.txt", "w") as f:
        f.write("x")
    path = tmp_path / "atomic.txt"
    with _files.atomic_path(path) as temporary, open(temporary, "w") as f:
        f.write("x")
    _state_file.save(tmp_path / "state.npz", {"a": 1}, [np.zeros(2)])
    assert mode(tmp_path / "plain.txt") == 0o666 & ~mask
    assert mode(path) == mode(tmp_path / "plain.txt")
    assert mode(tmp_path / "state.npz") == 0o666 & ~mask


def test_file_is_flushed_before_the_rename_and_the_directory_after(
    tmp_path, monkeypatch
):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(handle):
        info = os.fstat(handle)
        kind = "directory" if stat.S_ISDIR(info.st_mode) else "file"
        events.append(("fsync", kind, info.st_ino, info.st_size))
        real_fsync(handle)

    def replace(source, destination):
        events.append(("replace", os.stat(source).st_ino))
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "out.bin"
    with _files.atomic_path(path) as temporary, open(temporary, "wb") as f:
        f.write(b"12345")
    inode = os.stat(path).st_ino
    assert events == [
        ("fsync", "file", inode, 5),  # the whole content, before the rename
        ("replace", inode),
        ("fsync", "directory", os.stat(tmp_path).st_ino, events[2][3]),
    ]


def test_failed_write_leaves_no_temporary_and_the_previous_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("previous")
    with pytest.raises(RuntimeError, match="writer failed"):
        with _files.atomic_path(path) as temporary:
            with open(temporary, "w") as f:
                f.write("half")
            raise RuntimeError("writer failed")
    assert os.listdir(tmp_path) == ["out.txt"]
    assert path.read_text() == "previous"


def test_temporary_name_is_hidden_recognisable_and_keeps_the_extension(tmp_path):
    with _files.atomic_path(tmp_path / "snapshot-003.keras") as temporary:
        name = os.path.basename(temporary)
        assert os.path.dirname(temporary) == str(tmp_path)
        assert name.startswith(".snapshot-003.keras.partial-")
        assert name.endswith(".keras")
        open(temporary, "w").close()
    with _files.atomic_path(tmp_path / "figure.png", suffix=".tmp.png") as temporary:
        assert temporary.endswith(".tmp.png")
        open(temporary, "w").close()


def test_remove_partial_files_removes_only_ours(tmp_path):
    ours = [
        ".snapshot-002.keras.partial-0123456789abcdef.keras",
        ".snapshot-010.keras.partial-fedcba9876543210.keras",
    ]
    kept = [
        "snapshot-001.keras",
        ".snapshot-001.keras",  # a user's hidden file
        ".snapshot-002.keras.partial-xyz.keras",  # not our token
        ".swa-state-00003.npz.partial-0123456789abcdef.npz",  # another pattern
        "notes.partial-0123456789abcdef",  # not hidden
    ]
    for name in ours + kept:
        (tmp_path / name).write_text("x")
    removed = _files.remove_partial_files(tmp_path, "snapshot-*.keras")
    assert sorted(os.path.basename(p) for p in removed) == sorted(ours)
    assert sorted(os.listdir(tmp_path)) == sorted(kept)


def test_a_killed_write_is_cleaned_up_by_the_next_prepare(tmp_path):
    # A process killed in the middle of a write (`os._exit`: no cleanup runs).
    script = (
        "import importlib.util, os, sys\n"
        "spec = importlib.util.spec_from_file_location('files', sys.argv[1])\n"
        "files = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(files)\n"
        "with files.atomic_path(sys.argv[2]) as temporary:\n"
        "    open(temporary, 'w').write('half')\n"
        "    os._exit(9)\n"
    )
    target = tmp_path / "snapshot-001.keras"
    done = subprocess.run(
        [sys.executable, "-c", script, _files.__file__, str(target)], check=False
    )
    assert done.returncode == 9
    (leftover,) = os.listdir(tmp_path)
    assert leftover.startswith(".snapshot-001.keras.partial-")
    (tmp_path / "snapshot-000.keras").write_text("a finished snapshot")

    _files.prepare_directory("directory", tmp_path, "snapshot-*.keras")
    assert os.listdir(tmp_path) == ["snapshot-000.keras"]


def test_prepare_directory_creates_a_missing_directory(tmp_path):
    target = tmp_path / "a" / "b"
    _files.prepare_directory("directory", target, "*")
    assert os.path.isdir(target) and os.listdir(target) == []


def test_prepare_directory_rejects_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(
        ValueError,
        match=r"Argument `backup_dir` must be a directory this process can write to: "
        r"it is an existing file\. Received: backup_dir=",
    ):
        _files.prepare_directory("backup_dir", target, "*")
    with pytest.raises(
        ValueError, match=r"`backup_dir` .*: it cannot be created\. .*Not a directory"
    ):
        _files.prepare_directory("backup_dir", target / "sub", "*")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="needs POSIX permissions that bind (root writes anywhere)",
)
def test_prepare_directory_rejects_a_read_only_directory(tmp_path):
    target = tmp_path / "read_only"
    target.mkdir()
    target.chmod(0o555)
    try:
        with pytest.raises(
            ValueError, match=r"`directory` .*: a file cannot be created in it"
        ):
            _files.prepare_directory("directory", target, "*")
    finally:
        target.chmod(0o755)


def test_prepare_directory_reports_a_refused_write(tmp_path, monkeypatch):
    # What a read-only directory or file system gives, whoever runs the test.
    target = tmp_path / "refusing"
    target.mkdir()
    refuse_writes(monkeypatch, target)
    with pytest.raises(
        ValueError,
        match=r"Argument `directory` must be a directory this process can write to: "
        r"a file cannot be created in it\. Received: directory=.*refusing"
        r".* \(Permission denied\)",
    ):
        _files.prepare_directory("directory", target, "*")


def test_a_directory_that_cannot_be_flushed_is_tolerated(tmp_path, monkeypatch):
    # Some network and FUSE file systems refuse fsync on a directory (EINVAL): the
    # file is in place, so the write succeeds; other errors are raised.
    real_fsync = os.fsync

    def fsync(handle, errno_code):
        if stat.S_ISDIR(os.fstat(handle).st_mode):
            raise OSError(errno_code, os.strerror(errno_code))
        real_fsync(handle)

    path = tmp_path / "out.txt"
    monkeypatch.setattr(os, "fsync", lambda handle: fsync(handle, errno.EINVAL))
    with _files.atomic_path(path) as temporary, open(temporary, "w") as f:
        f.write("x")
    assert path.read_text() == "x"
    monkeypatch.setattr(os, "fsync", lambda handle: fsync(handle, errno.EIO))
    with pytest.raises(OSError, match="Input/output error"):
        with _files.atomic_path(path) as temporary, open(temporary, "w") as f:
            f.write("y")
