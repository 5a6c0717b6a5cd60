"""layer_decay: learning-rate multipliers decaying from a backbone's top group down."""

import keras

from keras_trainplus import _backbone
from keras_trainplus._validation import check_number


def layer_decay(backbone, decay, groups="auto"):
    """Multipliers for layer-wise learning-rate decay over a backbone's layer groups.

    Layer-wise learning-rate decay (Clark et al. 2020, ELECTRA, arXiv:2003.10555;
    Bao et al. 2021, BEiT, arXiv:2106.08254; timm's `layer_decay`) and fastai's
    discriminative rates (`slice(lr/100, lr)`, Howard & Ruder 2018,
    arXiv:1801.06146): lower layers, whose features are more general, move less
    when a pretrained network is fine-tuned. The backbone is split into `G` layer
    groups in forward order, the same groups `FreezeUnfreeze(unfreeze_every=...)`
    unfreezes one at a time; counted from the top (`i = 0`) down, group `i` gets
    the multiplier

    ```
    decay ** i        (1 for the top group, decay, decay**2, ... below it)
    ```

    Layers outside the backbone (the new head) are not in the result, so a
    `LearningRateMultipliers` with the default `default=1.0` trains them at the
    full rate, like the top group. fastai's `slice(lr/100, lr)` over `G` groups is
    `decay = 100 ** (-1 / (G - 1))`. Unlike timm, which gives the head a group of
    its own (top block `decay`), the top group here trains at the head's rate;
    multiply the values for another top factor.

    Args:
        backbone: the pretrained layer (typically a KerasCV, KerasHub or
            `keras.applications` model), or a list of layers in forward order.
            Defaults to none (required).
        decay: Float in `(0, 1]`, the factor between two adjacent groups.
            Defaults to none (required).
        groups: `"auto"` infers the groups from the stage/block layer names of
            KerasCV, KerasHub and `keras.applications` backbones (as
            `FreezeUnfreeze` does); or a list of at least 2 groups in forward
            order, each a layer name, glob pattern or list of names of the
            backbone's layers (unlisted layers join the first group). Defaults to
            `"auto"`.

    Returns:
        A dict mapping each layer of the backbone that has weights to its
        multiplier, for `LearningRateMultipliers(optimizer, multipliers)`.

    Example:

    >>> import keras, keras_trainplus as ktp
    >>> backbone = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(8, name="block1_dense"),
    ...      keras.layers.Dense(8, name="block2_dense")], name="backbone")
    >>> multipliers = ktp.optimizers.layer_decay(backbone, decay=0.5)
    >>> {layer.name: m for layer, m in multipliers.items()}
    {'block1_dense': 0.5, 'block2_dense': 1.0}
    >>> optimizer = ktp.optimizers.LearningRateMultipliers(
    ...     keras.optimizers.Adam(1e-3), multipliers)
    """
    roots = list(backbone) if isinstance(backbone, (list, tuple)) else [backbone]
    if not roots or not all(isinstance(r, keras.layers.Layer) for r in roots):
        raise ValueError(
            "Argument `backbone` must be a layer or a non-empty list of layers. "
            f"Received: backbone={backbone!r}"
        )
    decay = check_number("decay", decay, 0, 1, low_inclusive=False)
    layer_groups = _backbone.split_groups(roots, _backbone.check_groups(groups))
    top = len(layer_groups) - 1
    return {
        layer: decay ** (top - i)
        for i, group in enumerate(layer_groups)
        for layer in group
        if layer.weights
    }
