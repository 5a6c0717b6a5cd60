"""The one state-file format of the callbacks: JSON scalars + NumPy arrays, one file."""

import json
import os

import numpy as np

from keras_trainplus._files import atomic_path


def save(path, state, arrays=()):
    """Writes `state` (JSON-able dict) and `arrays` to `path` atomically.

    Through `atomic_path`: a reader sees either the previous file or the new one,
    also after a crash.
    """
    payload = {f"array_{i}": np.asarray(a) for i, a in enumerate(arrays)}
    payload["state"] = np.asarray(json.dumps(state))
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        np.savez(f, **payload)


def load(path):
    """Returns `(state, arrays)` saved by `save`, or `None` if `path` does not exist."""
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as data:
        state = json.loads(str(data["state"]))
        count = sum(1 for key in data.files if key.startswith("array_"))
        arrays = [data[f"array_{i}"] for i in range(count)]
    return state, arrays
