"""The only place keras_trainplus touches private Keras (`keras.src`).

Each hook here exists because Keras 3 offers no public equivalent; each is covered by
a test, and the supported Keras range is pinned in `pyproject.toml`.
"""


def flatten_layers(layer):
    """Returns `layer` and all its sublayers, recursively, parents before children.

    Keras 3 lists only a model's direct layers publicly (`Model.layers`); layers
    nested in custom layers (e.g. the MBConv blocks of EfficientNetV2, whose
    BatchNormalization layers must be found to keep them frozen) are reachable only
    through the private `Layer._flatten_layers`.
    """
    return list(layer._flatten_layers(include_self=True, recursive=True))


def optimizer_built_variables(optimizer):
    """Returns the variables an optimizer was built on (the ones it can update).

    A built Keras optimizer raises "Unknown variable" for any other variable, but
    keeps the list only in the private `_trainable_variables`. Reading it lets a
    callback fail with a clear message before training instead of in the middle of
    `fit`. Returns `None` for an optimizer that is not built yet.
    """
    if not optimizer.built:
        return None
    return list(optimizer._trainable_variables)
