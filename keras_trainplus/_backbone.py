"""Finding a backbone inside a model and splitting it into layer groups.

The one home of layer groups, shared by `callbacks.FreezeUnfreeze` (gradual
unfreezing) and `optimizers.layer_decay` (a learning-rate multiplier per group):
resolve a `backbone` argument (a layer, a layer name, a list of names, or a glob
pattern) to layers of a model, and split the backbone into groups, either inferred
from the stage/block names of KerasCV, KerasHub and `keras.applications` backbones
or given by the user.
"""

import difflib
import fnmatch
import re

import keras

from keras_trainplus import _compat

_WILDCARDS = frozenset("*?[")

# Stage/block names, tried in order; group 1 is the stage (or block) index. Names
# that match none (inputs, stems, auto-named activations, DenseNet transitions
# `pool2_*`/`transition1_*`, ResNet's `pool1_*`) continue the current group.
# - `stack0_block0_*` (KerasHub ResNet, DenseNet), `v2_stack_0_block1_*` (KerasCV
#   ResNet);
# - `conv2_block1_*` (KerasCV DenseNet, keras.applications ResNet/DenseNet);
# - `dark3_*` (KerasCV CSPDarkNet);
# - `block2a_*` (EfficientNet, EfficientNetV2: digit = stage, letter = block);
# - `block_5_*` (keras.applications MobileNetV2: one group per block) and
#   `block3_*` (keras.applications VGG: one group per stage);
# - `expanded_conv_3_*` (MobileNetV3 in KerasCV and keras.applications: one group
#   per inverted-residual block, the first one has no number).
_STAGE_PATTERNS = (
    re.compile(r"^(?:v\d+_)?stack_?(\d+)_block"),
    re.compile(r"^conv(\d+)_block"),
    re.compile(r"^dark(\d+)_"),
    re.compile(r"^block(\d+)[a-z]+_"),
    re.compile(r"^block_?(\d+)_"),
    re.compile(r"^expanded_conv(?:_(\d+))?_"),
)


def _is_pattern(name):
    return any(c in _WILDCARDS for c in name)


def _unknown_name_error(argument, name, known):
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f" Close matches: {close}." if close else ""
    return ValueError(
        f"Argument `{argument}`: no layer named {name!r} in the model.{hint} "
        f"The model has {len(known)} layers."
    )


def model_layers(model):
    """All sublayers of `model` (recursively, without the model itself)."""
    return _compat.flatten_layers(model)[1:]


def match_names(argument, spec, layers):
    """Layers among `layers` matching a name, a glob pattern or a list of those.

    Exact names must match exactly one layer; patterns must match at least one.
    The result keeps the order of `layers` and has no duplicates.
    """
    names = [spec] if isinstance(spec, str) else list(spec)
    if not names:
        raise ValueError(f"Argument `{argument}` must not be empty.")
    known = [layer.name for layer in layers]
    chosen = set()
    for name in names:
        if not isinstance(name, str):
            raise ValueError(
                f"Argument `{argument}` must hold layer names or patterns (str). "
                f"Received: {name!r}"
            )
        if _is_pattern(name):
            hits = [i for i, n in enumerate(known) if fnmatch.fnmatchcase(n, name)]
            if not hits:
                raise ValueError(
                    f"Argument `{argument}`: the pattern {name!r} matches no layer "
                    "of the model."
                )
        else:
            hits = [i for i, n in enumerate(known) if n == name]
            if not hits:
                raise _unknown_name_error(argument, name, known)
            if len(hits) > 1:
                raise ValueError(
                    f"Argument `{argument}`: {len(hits)} nested layers are named "
                    f"{name!r}; pass the layer object instead."
                )
        chosen.update(hits)
    return [layers[i] for i in sorted(chosen)]


def resolve_backbone(model, backbone):
    """The backbone's root layers inside `model`, outermost first.

    A root nested in another root is dropped (freezing the outer one covers it).
    """
    layers = model_layers(model)
    if isinstance(backbone, keras.layers.Layer):
        if not any(layer is backbone for layer in layers):
            raise ValueError(
                f"Argument `backbone`: the layer {backbone.name!r} is not part of "
                "the model being trained."
            )
        roots = [backbone]
    else:
        roots = match_names("backbone", backbone, layers)
    nested = set()
    for root in roots:
        nested.update(id(sub) for sub in _compat.flatten_layers(root)[1:])
    roots = [root for root in roots if id(root) not in nested]
    if not any(root.weights for root in roots):
        raise ValueError("Argument `backbone` selects layers without any weights.")
    return roots


def backbone_units(roots):
    """The layers groups are made of: a single model root's direct layers, or roots."""
    if len(roots) == 1 and isinstance(roots[0], keras.Model):
        return [layer for layer in roots[0].layers]
    return list(roots)


def stage_key(name):
    """The stage (or block) index a layer name belongs to, or `None`."""
    for pattern in _STAGE_PATTERNS:
        match = pattern.match(name)
        if match:
            return int(match.group(1) or 0)
    return None


def infer_groups(units):
    """Splits `units` (in forward order) into consecutive stage/block groups.

    A layer whose name carries no stage (an input, a stem convolution, an
    auto-named activation, the final convolution) joins the group of the layer
    before it; layers before the first stage join the first group.

    Raises:
        ValueError: when no layer name carries a known stage/block structure.
    """
    groups = []
    current_key = None
    leading = []
    for layer in units:
        key = stage_key(layer.name)
        if key is not None and key != current_key:
            groups.append(leading + [layer])
            leading = []
            current_key = key
        elif groups:
            groups[-1].append(layer)
        else:
            leading.append(layer)
    if len(groups) < 2:
        names = [layer.name for layer in units][:8]
        raise ValueError(
            "Could not infer layer groups from the backbone's layer names (no "
            "KerasCV/KerasHub/keras.applications stage or block names found, e.g. "
            f"{names}). Pass `groups` explicitly."
        )
    return groups


def check_groups(groups):
    """Validates a `groups` argument: `"auto"` or a list of at least 2 group specs.

    Returns:
        `"auto"`, or the groups as a list of names/patterns or lists of names.
    """
    if groups == "auto":
        return groups
    if not isinstance(groups, (list, tuple)) or len(groups) < 2:
        raise ValueError(
            "Argument `groups` must be 'auto' or a list of at least 2 groups "
            f"(layer names or patterns). Received: groups={groups!r}"
        )
    return [g if isinstance(g, str) else list(g) for g in groups]


def split_groups(roots, groups):
    """The backbone `roots` split into layer groups in forward order.

    Args:
        roots: the backbone's root layers (see `resolve_backbone`).
        groups: `"auto"` (see `infer_groups`) or user specs (see `explicit_groups`).
    """
    units = backbone_units(roots)
    if groups == "auto":
        return infer_groups(units)
    return explicit_groups(units, groups)


def explicit_groups(units, groups):
    """Groups from user specs (names/patterns), in forward order.

    Units matching no group join the first (bottom) group, so that the whole
    backbone is trainable once every group is unfrozen.
    """
    resolved = []
    taken = set()
    for index, spec in enumerate(groups):
        members = match_names(f"groups[{index}]", spec, units)
        overlap = [layer.name for layer in members if id(layer) in taken]
        if overlap:
            raise ValueError(
                f"Argument `groups`: layers {overlap} belong to more than one group."
            )
        taken.update(id(layer) for layer in members)
        resolved.append(members)
    first = {id(layer) for layer in resolved[0]}
    resolved[0] = [u for u in units if id(u) in first or id(u) not in taken]
    return resolved
