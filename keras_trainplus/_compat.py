"""The only place keras_trainplus touches private Keras (`keras.src`).

Each hook here exists because Keras 3 offers no public equivalent; each is covered by
`tests/test_compat.py`, and the supported Keras range is pinned in `pyproject.toml`.
"""


def data_layer_class():
    """The base class that lets a Keras layer run inside `tf.data` on any backend.

    Keras's own preprocessing layers derive from it: when called on TensorFlow graph
    tensors (a `tf.data` map) under the JAX or PyTorch backend, it switches the layer's
    `backend` attribute to TensorFlow for that call, so the same layer code runs in
    the input pipeline and inside a compiled model. Keras 3 does not export it; it is
    `keras.src.layers.preprocessing.data_layer.DataLayer` since Keras 3.12.

    Subclasses compute with `self.backend.numpy`, `.image`, `.random`, `.core`,
    `.math` and `.nn` (the per-backend op modules behind `keras.ops`), and draw random
    numbers with the generator returned by `self._get_seed_generator(self.backend.name)`.
    """
    from keras.src.layers.preprocessing.data_layer import DataLayer

    return DataLayer
