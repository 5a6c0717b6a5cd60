"""Atomic, durable file writes and output-directory checks (callbacks and demo)."""

import contextlib
import errno
import fnmatch
import os
import secrets

# A file being written to `name` is `.name.partial-<16 hex digits><suffix>` in the
# same directory: hidden, and recognisable as ours by `remove_partial_files`.
_PARTIAL = ".partial-"


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yields a temporary path next to `path`; moves it onto `path` on success.

    The caller writes and closes the whole file at the temporary path. When the
    block ends normally the file is flushed to disk (`fsync`), replaces `path` with
    `os.replace`, and the directory entry is flushed too, so that a reader, even
    after a power loss, sees either the previous file or the new one, never a
    partial one; when the block raises, the temporary file is removed and `path` is
    left untouched. A process killed in the middle leaves the temporary file
    behind: `remove_partial_files` removes it. The file gets the permissions the
    user's umask gives a new file (as `open(path, "w")` does).

    Args:
        path: the destination.
        suffix: the temporary file's extension, for writers that infer the format
            from it. Defaults to the extension of `path`.
    """
    directory, name = os.path.split(os.path.abspath(path))
    if suffix is None:
        suffix = os.path.splitext(name)[1]
    os.makedirs(directory, exist_ok=True)
    temporary = _create_exclusive(directory, name, suffix)
    try:
        yield temporary
        _fsync(temporary, os.O_RDONLY if os.name == "posix" else os.O_RDWR)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    # Windows cannot open a directory to flush it; some file systems (network or
    # FUSE mounts) refuse to flush one: the file is in place either way.
    if hasattr(os, "O_DIRECTORY"):
        try:
            _fsync(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as error:
            if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise


def remove_partial_files(directory, pattern):
    """Removes the temporary files `atomic_path` left for names matching `pattern`.

    Call it where no other writer to the same names runs, e.g. when a callback
    starts; `pattern` is a shell pattern on the destination's name
    (`"snapshot-*.keras"`).

    Returns:
        The paths removed.
    """
    removed = []
    for entry in os.listdir(directory):
        target = _partial_target(entry)
        if target is not None and fnmatch.fnmatchcase(target, pattern):
            path = os.path.join(directory, entry)
            os.remove(path)
            removed.append(path)
    return removed


def prepare_directory(name, directory, partial_pattern):
    """Checks that the directory argument `name` can be written, before training.

    Creates `directory` if it is missing, writes and removes a probe file in it,
    and removes the temporary files an interrupted write to names matching
    `partial_pattern` left behind (see `remove_partial_files`).

    Raises:
        ValueError: naming the argument, the path and what is wrong with it (from
            the `OSError` the file system gave).
    """

    def unusable(reason, error=None):
        message = (
            f"Argument `{name}` must be a directory this process can write to: "
            f"{reason}. Received: {name}={directory!r}"
        )
        if error is not None:
            raise ValueError(f"{message} ({error.strerror or error})") from error
        raise ValueError(message)

    if os.path.exists(directory) and not os.path.isdir(directory):
        unusable("it is an existing file")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        unusable("it cannot be created", error)
    try:
        os.remove(_create_exclusive(directory, "probe", ""))
    except OSError as error:
        unusable("a file cannot be created in it", error)
    remove_partial_files(directory, partial_pattern)


def _create_exclusive(directory, name, suffix):
    """Creates an empty, new temporary file for `name` and returns its path."""
    while True:
        temporary = os.path.join(
            directory, f".{name}{_PARTIAL}{secrets.token_hex(8)}{suffix}"
        )
        try:
            # Mode 0o666 less the umask, as for any new file (not mkstemp's 0o600).
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(handle)
        return temporary


def _partial_target(entry):
    """The destination name of a temporary file `_create_exclusive` made, or None."""
    if not entry.startswith("."):
        return None
    name, mark, token = entry[1:].rpartition(_PARTIAL)
    if not mark or len(token) < 16:
        return None
    digits, suffix = token[:16], token[16:]
    if not name or not all(c in "0123456789abcdef" for c in digits):
        return None
    return name if not suffix or suffix.startswith(".") else None


def _fsync(path, flags):
    handle = os.open(path, flags)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
