"""The crop layers on encoded images: only a JPEG's crop window is decoded, and the
outputs are those of the same layer on the decoded image."""

import gc
import io

import keras
import numpy as np
import pytest
import skimage.data
import skimage.transform
import tensorflow as tf
from PIL import Image

from keras_trainplus import _compat
from keras_trainplus.layers import RandomResizedCrop
from keras_trainplus.layers import RandomScaleCrop
from keras_trainplus.layers import _crop
from keras_trainplus.layers import random_resized_crop
from tests.helpers import augmentation as contract


def photo(height=150, width=190):
    image = skimage.transform.resize(skimage.data.astronaut(), (height, width))
    return (image * 255).round().astype("uint8")


def encode(image, fmt="JPEG", **options):
    """`image` (an array, or a PIL image) encoded as `fmt`."""
    buffer = io.BytesIO()
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


# PIL's `subsampling`: 0 is 4:4:4, 1 is 4:2:2, 2 is 4:2:0 (what cameras write).
JPEGS = {
    "4:2:0": dict(quality=85, subsampling=2),
    "4:2:2 progressive": dict(quality=70, subsampling=1, progressive=True),
    "4:4:4": dict(quality=95, subsampling=0),
}


def files():
    """One image in every format and JPEG flavour the layers take."""
    image = photo()
    out = {f"JPEG {name}": encode(image, **opts) for name, opts in JPEGS.items()}
    out["JPEG grayscale"] = encode(image[..., 0], quality=90)
    out["JPEG CMYK"] = encode(Image.fromarray(image).convert("CMYK"), quality=90)
    out["PNG"] = encode(image, "PNG")
    out["PNG grayscale"] = encode(image[..., 1], "PNG")
    out["GIF"] = encode(image, "GIF")
    out["BMP"] = encode(image, "BMP")
    out["WebP"] = encode(image, "WEBP", quality=90)
    return out


FILES = files()


def test_window_decoding_equals_the_slice_of_a_full_decode():
    # libjpeg decodes a window's edge columns without their outer neighbours, which
    # changes the colour upsampling there in 4:2:0 and 4:2:2 JPEGs; the layers decode
    # one more column on each side and drop it: exactly the full decode's pixels.
    rng = np.random.default_rng(0)
    layer = RandomResizedCrop(8, 8)
    for name, contents in FILES.items():
        if not name.startswith("JPEG"):
            continue
        full = tf.io.decode_jpeg(contents, channels=3).numpy()
        height, width = full.shape[:2]
        for _ in range(40):
            rows, cols = rng.integers(1, height + 1), rng.integers(1, width + 1)
            top = rng.integers(0, height - rows + 1)
            left = rng.integers(0, width - cols + 1)
            window = tf.constant([top, left, rows, cols], "int32")
            with _compat.computing_with([layer], "tensorflow"):
                decode, begin, size = _crop.widened_window(layer.backend, window, width)
            pixels = tf.io.decode_and_crop_jpeg(contents, decode, channels=3)
            pixels = tf.slice(pixels, begin, size).numpy()
            np.testing.assert_array_equal(
                pixels, full[top : top + rows, left : left + cols], err_msg=name
            )


def make_crop(**kwargs):
    return RandomResizedCrop(40, 48, horizontal_flip=True, seed=5, **kwargs)


def make_scale_crop(**kwargs):
    return RandomScaleCrop(40, 48, short_side_range=(48, 120), seed=5, **kwargs)


LAYERS = pytest.mark.parametrize(
    "make", [make_crop, make_scale_crop], ids=["RandomResizedCrop", "RandomScaleCrop"]
)


def crops_in_tf_data(make, elements, training, repeats=2):
    """One layer mapped over `elements` (encoded files or decoded images), in turn."""
    layer = make()
    if isinstance(elements[0], bytes):
        ds = tf.data.Dataset.from_tensor_slices(elements)
    else:
        ds = tf.data.Dataset.from_generator(
            lambda: iter(elements),
            output_signature=tf.TensorSpec((None, None, 3), "uint8"),
        )
    ds = ds.repeat(repeats).map(lambda x: layer(x, training=training))
    return np.stack(list(ds.as_numpy_iterator()))


@pytest.mark.smoke
@LAYERS
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_bytes_give_the_crops_of_the_decoded_image(make, training):
    # Same seed, same draws: the crops from bytes are the crops of the decoded image,
    # exactly (the window decodes to the full decode's pixels, and both read them
    # with the same kernels), for every format, in `tf.data` under every backend.
    names = sorted(FILES)
    decoded = [
        tf.io.decode_image(FILES[name], channels=3, expand_animations=False).numpy()
        for name in names
    ]
    expected = crops_in_tf_data(make, decoded, training)
    out = crops_in_tf_data(make, [FILES[name] for name in names], training)
    assert out.dtype == np.float32 and out.shape == (2 * len(names), 40, 48, 3)
    for k, name in enumerate(names * 2):
        np.testing.assert_array_equal(out[k], expected[k], err_msg=name)
    if training:
        assert not np.array_equal(out[0], out[len(names)])


@pytest.mark.smoke
@LAYERS
def test_eager_calls_and_channels_first(make):
    contents = FILES["JPEG 4:2:0"]
    expected = crops_in_tf_data(make, [contents], True)
    layer = make()
    out = [contract.to_numpy(layer(contents)) for _ in range(2)]
    np.testing.assert_array_equal(np.stack(out), expected)
    first = contract.to_numpy(make(data_format="channels_first")(contents))
    np.testing.assert_array_equal(first, np.transpose(expected[0], (2, 0, 1)))
    # Keras's preprocessing dict: the images decoded and cropped, the labels kept.
    out = make()({"images": tf.constant(contents), "labels": 7})
    np.testing.assert_array_equal(contract.to_numpy(out["images"]), expected[0])
    assert out["labels"] == 7


@pytest.fixture
def decoded_windows(monkeypatch):
    """The windows `tf.io.decode_and_crop_jpeg` decodes; a whole decode fails."""
    decoded = []
    real = tf.io.decode_and_crop_jpeg

    def decode_and_crop_jpeg(contents, crop_window, **kwargs):
        decoded.append(crop_window.numpy().tolist())
        return real(contents, crop_window, **kwargs)

    def decode_whole(*args, **kwargs):
        raise AssertionError("a JPEG was decoded whole")

    monkeypatch.setattr(tf.io, "decode_and_crop_jpeg", decode_and_crop_jpeg)
    monkeypatch.setattr(tf.io, "decode_jpeg", decode_whole)
    monkeypatch.setattr(tf.io, "decode_image", decode_whole)
    return decoded


def widened(top, left, rows, cols, width):
    """The window decoded for `(top, left, rows, cols)`: one more column each side."""
    first, end = max(left - 1, 0), min(left + cols + 1, width)
    return [top, first, rows, end - first]


def test_a_jpeg_is_decoded_only_inside_the_window(decoded_windows):
    # Record what is decoded: the crop's box (one more column on each side), never
    # the whole image.
    contents = FILES["JPEG 4:2:0"]
    layer = make_crop()
    layer(contents)
    reference = make_crop()  # same seed; draws with TensorFlow, as the layer does
    with _compat.computing_with([reference], "tensorflow"):
        draws = reference.draws_for(1)
        box = reference.parameters_from_draws(draws, 150, 190)["crop_boxes"][0]
    top, left, rows, cols = contract.to_numpy(box).astype(int).tolist()
    assert decoded_windows == [widened(top, left, rows, cols, 190)]
    assert rows * cols < 150 * 190 or (rows, cols) == (150, 190)

    # Inference: the centred box with the output's aspect ratio, 150 x 180 at
    # (0, 5), resized: output rows read input rows 1.375 to 147.625 (rows 1-148 with
    # their bilinear neighbours), columns 6.375 to 182.625 (6-183); decoded with one
    # more column on each side.
    make_crop()(contents, training=False)
    assert decoded_windows[-1] == [1, 5, 148, 180]


def scale_crop_window(short_side, top, left, height=150, width=190):
    """float64: the input rows and columns `make_scale_crop()` reads for a short side
    and offsets in the scaled image, as `(top, left, rows, cols)`."""
    out_h, out_w = 40, 48
    scaled_h = round(height * short_side / min(height, width))
    scaled_w = round(width * short_side / min(height, width))

    def span(offset, out, size, scaled):
        # Output pixel i reads input (offset + i + 0.5) * size / scaled - 0.5, and
        # bilinear reads touch its floor and the next pixel, clamped into the image.
        coords = (offset + np.arange(out) + 0.5) * size / scaled - 0.5
        first = int(np.clip(np.floor(coords.min()), 0, size - 1))
        end = int(np.clip(np.floor(coords.max()) + 1, 0, size - 1))
        return first, end - first + 1

    (first_row, rows), (first_col, cols) = (
        span(top, out_h, height, scaled_h),
        span(left, out_w, width, scaled_w),
    )
    return first_row, first_col, rows, cols


def test_a_scale_crop_decodes_only_the_window_it_reads(decoded_windows):
    # RandomScaleCrop reads a crop of the scaled image: the window decoded is that
    # crop mapped back to the file's pixels, with the rows and columns its bilinear
    # reads touch.
    contents = FILES["JPEG 4:2:0"]
    make_scale_crop()(contents)
    reference = make_scale_crop()  # same seed, TensorFlow's draws
    with _compat.computing_with([reference], "tensorflow"):
        drawn = reference.parameters_from_draws(reference.draws_for(1), 150, 190)
    short_side = float(contract.to_numpy(drawn["short_side"])[0])
    top, left = contract.to_numpy(drawn["offsets"])[0].tolist()
    window = scale_crop_window(short_side, top, left)
    assert decoded_windows == [widened(*window, 190)]
    assert window[2] * window[3] < 150 * 190

    # Inference: short side 48, so 150 x 190 is scaled to 48 x 61 and its centre
    # 40 x 48 crop is at (4, 6): output rows read rows 13.56 to 135.44 of the file
    # (13-136 with their bilinear neighbours), columns 19.75 to 166.14 (19-167).
    make_scale_crop()(contents, training=False)
    assert scale_crop_window(48, 4, 6) == (13, 19, 124, 149)
    assert decoded_windows[-1] == [13, 18, 124, 151]


CORRUPT = {
    "truncated JPEG": FILES["JPEG 4:2:0"][:3000],
    "JPEG header only": FILES["JPEG 4:2:0"][:300],
    "a path, not the file": b"/data/cats/0001.jpg",
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_data_gets_an_error_naming_the_layer(name):
    layer = make_crop()
    with pytest.raises(tf.errors.InvalidArgumentError, match="RandomResizedCrop"):
        layer(CORRUPT[name])
    ds = tf.data.Dataset.from_tensors(CORRUPT[name]).map(make_crop())
    with pytest.raises(tf.errors.InvalidArgumentError, match="RandomResizedCrop"):
        next(iter(ds))


def test_not_an_image_says_what_was_expected():
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"RandomScaleCrop expects encoded image data \(JPEG, PNG, GIF, BMP, "
        r"WebP\), e\.g\. the contents of an image file from tf\.io\.read_file\(path\), "
        r"not its path",
    ):
        make_scale_crop()(CORRUPT["a path, not the file"])


@pytest.mark.smoke
def test_batches_of_strings_and_symbolic_strings_are_refused():
    batch = tf.constant([FILES["PNG"], FILES["BMP"]])
    with pytest.raises(
        ValueError,
        match=r"RandomResizedCrop decodes one encoded image at a time \(a scalar "
        r"string\): map it over the dataset before `batch\(\)`\. Received: "
        r"inputs\.shape=\(2,\)",
    ):
        make_crop()(batch)
    with pytest.raises(ValueError, match=r"RandomScaleCrop decodes encoded images in"):
        make_scale_crop()(keras.Input((), dtype="string"))


def test_the_compiled_functions_go_with_their_layer():
    layer = make_crop()
    layer(FILES["PNG"])
    assert layer in random_resized_crop._COMPILED
    gc.collect()  # earlier tests' layers, unreachable but maybe not yet collected
    count = len(random_resized_crop._COMPILED)
    del layer
    gc.collect()
    assert len(random_resized_crop._COMPILED) == count - 1


@pytest.mark.smoke
@LAYERS
def test_uint8_dtype_from_bytes(make):
    contents = [FILES["JPEG 4:2:0"], FILES["PNG"]]
    floats = crops_in_tf_data(make, contents, True)
    out = crops_in_tf_data(lambda: make(dtype="uint8"), contents, True)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.clip(np.round(floats), 0, 255))
