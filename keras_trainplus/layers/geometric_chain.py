"""GeometricChain: consecutive geometric layers fused into a single resample."""

import keras

from keras_trainplus import _compat
from keras_trainplus import _validation
from keras_trainplus.layers import _sampling
from keras_trainplus.layers._base import ImageAugmentation
from keras_trainplus.layers._geometric import GeometricAugmentation
from keras_trainplus.layers._geometric import resized_shape


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class GeometricChain(ImageAugmentation):
    """Applies consecutive geometric layers with ONE resample of the input.

    Applying `RandomResizedCrop`, then `RandomAffine`, then `RandomLensDistortion`
    one after the other interpolates the image three times. Each of these layers
    maps output pixels to the input pixels they read (`source_coordinates`), so the
    maps compose: with layer `k` reading its input at `g_k(p)`, the chain's output
    pixel `p` reads the original image at `g_1(g_2(... g_n(p)))`, once. Between two
    layers, coordinates that leave layer `k`'s input are folded back by layer `k`'s
    fill mode (reflect, wrap, nearest) or marked to receive its `fill_value`
    (constant, and pixels a lens distortion cannot reach), as the unfused chain
    would; the final read uses the first layer's interpolation and fill mode. The
    result differs from the unfused chain only by the blur of the interpolations
    skipped (and, within a pixel of a fold, by where the border falls).

    Each wrapped layer draws its own random parameters with its own seed, exactly
    as when it is called on its own. At inference (`training=False`) the layers'
    inference transforms run one after the other (crops resize / centre-crop, the
    others are the identity).

    Args:
        layers: a non-empty list of keras_trainplus geometric layers
            (`RandomAffine`, `RandomLensDistortion`, `RandomResizedCrop`,
            `RandomScaleCrop`), applied in order.
        **kwargs: `data_format`, `name`, `dtype`. The wrapped layers'
            `data_format` is not used: the chain converts once.

    Example:

    >>> chain = GeometricChain([RandomResizedCrop(24, 24, seed=0),
    ...                         RandomAffine(rotation=0.1, seed=1)])
    >>> chain(np.zeros((2, 40, 50, 3))).shape
    (2, 24, 24, 3)
    """

    NEEDS_PIXELS = True

    def __init__(self, layers, **kwargs):
        super().__init__(**kwargs)
        layers = list(layers) if isinstance(layers, (list, tuple)) else layers
        if not (
            isinstance(layers, list)
            and layers
            and all(isinstance(layer, GeometricAugmentation) for layer in layers)
        ):
            raise ValueError(
                "Argument `layers` must be a non-empty list of keras_trainplus "
                "geometric layers (RandomAffine, RandomLensDistortion, "
                f"RandomResizedCrop, RandomScaleCrop). Received: layers={layers!r}"
            )
        self.layers = layers

    def build(self, input_shape):
        for layer in self.layers:
            layer.build(input_shape)  # weightless: marks them built
        self.built = True

    def call(self, inputs, training=True):
        # Inside tf.data this layer computes with TensorFlow: so must its layers.
        with _compat.computing_with(self.layers, self.backend.name):
            return super().call(inputs, training=training)

    def _sizes(self, height, width):
        sizes = [(height, width)]
        for layer in self.layers:
            sizes.append(layer.output_size(*sizes[-1]))
        return sizes

    def get_random_transformation(self, images):
        shape = self.backend.core.shape(images)
        sizes = self._sizes(shape[1], shape[2])
        return {
            "layers": [
                layer.random_parameters(shape[0], *size)
                for layer, size in zip(self.layers, sizes)
            ]
        }

    def transform_images(self, images, transformation):
        backend = self.backend
        shape = backend.core.shape(images)
        sizes = self._sizes(shape[1], shape[2])
        ys, xs = _sampling.output_grid(backend, shape[0], *sizes[-1])
        masks = []
        for k in reversed(range(len(self.layers))):
            layer = self.layers[k]
            height, width = sizes[k]
            params = transformation["layers"][k]
            ys, xs, valid = layer.source_coordinates(ys, xs, params, height, width)
            if k > 0:
                ys, row_ok = _sampling.fold(backend, ys, height, layer.fill_mode)
                xs, col_ok = _sampling.fold(backend, xs, width, layer.fill_mode)
                if row_ok is not None:
                    inside = row_ok & col_ok
                    valid = inside if valid is None else valid & inside
            masks.append((valid, layer.fill_value))
        first = self.layers[0]
        out = _sampling.sample(
            backend,
            backend.cast(images, "float32"),
            ys,
            xs,
            first.interpolation,
            first.fill_mode,
            first.fill_value,
            masks[-1][0],
        )
        # Later layers write their fill values over earlier ones, as in the chain.
        for valid, fill_value in reversed(masks[:-1]):
            if valid is not None:
                fill = backend.convert_to_tensor(fill_value, "float32")
                out = backend.numpy.where(valid[..., None], out, fill)
        return backend.cast(out, images.dtype)

    def transform_inference(self, images):
        for layer in self.layers:
            images = layer.transform_inference(images)
        return images

    def compute_output_shape(self, input_shape):
        return resized_shape(
            input_shape, self.data_format, lambda h, w: self._sizes(h, w)[-1]
        )

    def get_config(self):
        config = super().get_config()
        config["layers"] = [keras.saving.serialize_keras_object(x) for x in self.layers]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layers"] = [
            keras.saving.deserialize_keras_object(x) for x in config["layers"]
        ]
        return cls(**config)
