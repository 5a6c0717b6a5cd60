"""The keys of `LearningRateMultipliers(multipliers=...)`: validation, matching, config.

A key selects variables: a layer (its weights), a variable, a string, or a list of
variable paths. A string with a glob wildcard (`*`, `?`, `[`) is matched against
each variable's `path` with `fnmatch` (`*` also crosses `/`); a string without
wildcards is a path or a layer name: it matches the variable with that path and the
variables whose path has it as one of its layer components (`"head"` matches
`head/kernel` and `model/head/bias`).

Layers and variables cannot go into a config: they are written as the list of
their weights' paths. Paths can lose their leading components when a model is
reloaded (a nested `Sequential`'s `outer/inner/dense/kernel` comes back as
`dense/kernel`), so a path in such a list matches a variable when one of the two is
the other or ends with it after a `/`.
"""

import fnmatch
import warnings

import keras

from keras_trainplus._validation import check_number

_WILDCARDS = frozenset("*?[")


def _is_path_list(key):
    return (
        isinstance(key, (list, tuple))
        and bool(key)
        and all(isinstance(p, str) and p for p in key)
    )


def describe(key):
    """A short description of `key` for messages."""
    if isinstance(key, keras.layers.Layer):
        return f"layer {key.name!r}"
    if isinstance(key, keras.Variable):
        return f"variable {key.path!r}"
    return repr(key)


def normalize(multipliers):
    """`multipliers` (a dict or a list of pairs) as a list of `(key, float)` pairs.

    Raises:
        ValueError: for a container, key or multiplier Keras could not use.
    """
    if isinstance(multipliers, dict):
        items = list(multipliers.items())
    elif isinstance(multipliers, (list, tuple)):
        items = list(multipliers)
    else:
        items = None
    if items is None or not all(
        isinstance(item, (list, tuple)) and len(item) == 2 for item in items
    ):
        raise ValueError(
            "Argument `multipliers` must be a dict or a list of (key, multiplier) "
            f"pairs. Received: multipliers={multipliers!r}"
        )
    entries = []
    for key, value in items:
        valid = isinstance(key, (keras.layers.Layer, keras.Variable)) or (
            isinstance(key, str) and key
        )
        if not (valid or _is_path_list(key)):
            raise ValueError(
                "Argument `multipliers`: each key must be a layer, a variable, a "
                "layer name, a glob pattern on variable paths or a list of "
                f"variable paths. Received key: {key!r}"
            )
        if isinstance(key, tuple):
            key = list(key)
        value = check_number(f"multipliers[{describe(key)}]", value, 0)
        entries.append((key, value))
    return entries


def _same_path(path, stored):
    return path == stored or path.endswith("/" + stored) or stored.endswith("/" + path)


def _matcher(key):
    if isinstance(key, keras.layers.Layer):
        ids = {id(v) for v in key.weights}
        return lambda variable: id(variable) in ids
    if isinstance(key, keras.Variable):
        return lambda variable: variable is key
    if isinstance(key, list):
        return lambda variable: any(_same_path(variable.path, p) for p in key)
    if _WILDCARDS.intersection(key):
        return lambda variable: fnmatch.fnmatchcase(variable.path, key)
    return lambda variable: variable.path == key or key in variable.path.split("/")[:-1]


def resolve(entries, default, variables):
    """The multiplier of each variable: the first key that matches it, else `default`.

    Warns about a string key that matches none of `variables` (a misspelt layer
    name or pattern); a layer or a path list may legitimately match none (a layer
    frozen when the optimizer was built).
    """
    matchers = [(key, _matcher(key), value) for key, value in entries]
    values = []
    for variable in variables:
        for _, matches, value in matchers:
            if matches(variable):
                values.append(value)
                break
        else:
            values.append(default)
    for key, matches, _ in matchers:
        if isinstance(key, str) and not any(matches(v) for v in variables):
            examples = [v.path for v in variables[:3]]
            warnings.warn(
                f"LearningRateMultipliers: the key {key!r} matches none of the "
                f"{len(variables)} variables the optimizer is built on (paths "
                f"such as {examples}); its multiplier is not used.",
                stacklevel=3,
            )
    return values


def to_config(key):
    """`key` in a JSON-serializable form that `normalize` accepts back."""
    if isinstance(key, keras.layers.Layer):
        paths = [v.path for v in key.weights]
        if not paths:
            raise ValueError(
                f"LearningRateMultipliers: the layer {key.name!r} used as a key in "
                "`multipliers` has no weights, so it cannot be written to the "
                "config; build it first or use its name."
            )
        return paths
    if isinstance(key, keras.Variable):
        return [key.path]
    return key
