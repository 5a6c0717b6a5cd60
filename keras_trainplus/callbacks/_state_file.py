"""Atomic save/load of a callback's state (JSON scalars + NumPy arrays) in one file."""

import json
import os
import tempfile

import numpy as np


def save(path, state, arrays=()):
    """Writes `state` (JSON-able dict) and `arrays` to `path` atomically.

    The file is written next to its destination and moved into place with
    `os.replace`, so a reader sees either the previous file or the new one.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    payload = {f"array_{i}": np.asarray(a) for i, a in enumerate(arrays)}
    payload["state"] = np.asarray(json.dumps(state))
    handle, temp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **payload)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


def load(path):
    """Returns `(state, arrays)` saved by `save`, or `None` if `path` does not exist."""
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as data:
        state = json.loads(str(data["state"]))
        count = sum(1 for key in data.files if key.startswith("array_"))
        arrays = [data[f"array_{i}"] for i in range(count)]
    return state, arrays
