"""Atomic file writes shared by the callbacks and the demo."""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path, prefix=None, suffix=".tmp"):
    """Yields a temporary path next to `path`; moves it onto `path` on success.

    The caller writes the whole file to the temporary path. When the block ends
    normally the file replaces `path` with `os.replace`, so a reader sees either the
    previous file or the new one, never a partial one; when it raises, the temporary
    file is removed and `path` is left untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    os.close(handle)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
