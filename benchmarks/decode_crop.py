"""Crops from JPEG files: images per second from the files to batches.

From the same JPEG files (generated from scikit-image's sample photographs, sides of
300-520 px, OpenCV quality 90, 4:2:0), each contender reads, decodes, crops
(Inception crop: area in [0.08, 1], ratio in [3/4, 4/3]) to 224 x 224, flips with
probability 1/2 and batches by 64, on two CPU cores:

1. ours from bytes: `RandomResizedCrop(224, 224, horizontal_flip=True)` mapped over
   `tf.io.read_file(path)` in `tf.data` (only the crop window is decoded);
2. (a) a PyTorch `DataLoader(num_workers=2, batch_size=64)` (spawned, persistent
   workers; each round one full pass of a dataset of exactly the round's images)
   whose workers decode with OpenCV (`cv2.imread`, BGR to RGB) and apply
   Albumentations' `RandomResizedCrop + HorizontalFlip`;
3. (b) ours after a full `tf.io.decode_jpeg`;
4. (c) the TensorFlow reference pipeline as tf-models-official writes it for
   ImageNet (`official/vision/dataloaders/classification_input.py` with
   `decode_jpeg_only`): `extract_jpeg_shape`, `sample_distorted_bounding_box` +
   `decode_and_crop_jpeg` (`random_crop_image_v2`), the centre crop when the box is
   the whole image, `random_flip_left_right`, bilinear `tf.image.resize`;
5. ours from bytes with `dtype="uint8"` output (rounded), for the output dtype;
6. the floor of the `tf.data` pipeline: the same file reads, map and batching with
   a constant 224 x 224 output and no decoding;
7. the README's recipe: ours from bytes with labels, batched, then `Mixup` on the
   batches, with float32 and with uint8 crops (what the output dtype changes
   downstream).

Rounds are interleaved (each contender once per round, in turn), so a busy machine
slows all alike; the load average is recorded at the start, after each round and
at the end. A second part profiles what one image costs, one thread, step by step:
on the array path (decoded uint8 images in `tf.data`) and from JPEG bytes, adding
one kernel at a time on given boxes, then the layer's compiled box function, then
the layer itself.

Results go into the jpeg-crops section of BENCHMARKS.md.

    pip install torch==2.13.0 -e ".[bench,test]"   # CPU torch first
    python benchmarks/decode_crop.py [--rounds 7] [--quick] [--no-write]
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _markdown import BENCHMARKS  # noqa: E402
from _markdown import load_average  # noqa: E402
from _markdown import machine  # noqa: E402
from _markdown import ratio_range  # noqa: E402
from _markdown import replace_section  # noqa: E402
from _markdown import versions  # noqa: E402
from augment import albumentations_loader  # noqa: E402
from augment import consume  # noqa: E402
from augment import interleave  # noqa: E402
from augment import json_from_process  # noqa: E402
from augment import photos  # noqa: E402
from augment import summary  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BATCH, SIZE, FILES = 64, 224, 320
OURS = "ours from bytes"
TORCH = "(a) DataLoader(num_workers=2) + OpenCV + Albumentations"
DECODED = "(b) ours after full decode_jpeg"
REFERENCE = "(c) TF reference (sample_distorted_bounding_box + decode_and_crop_jpeg)"
UINT8 = "ours from bytes, dtype='uint8'"
MIXUP = "ours from bytes + Mixup on the batches"
MIXUP_UINT8 = "ours from bytes, dtype='uint8', + Mixup on the batches"
FLOOR = "tf.data floor: read the file, constant output, batch"
TARGETS = {TORCH: 1.0, DECODED: 1.3, REFERENCE: 1.0}


def write_jpegs(directory, count, rng):
    """`count` JPEGs of sides in [300, 520] px from the sample photos."""
    import cv2

    sources = photos()
    paths = []
    for i, (h, w) in enumerate(rng.integers(300, 521, (count, 2)).tolist()):
        image = cv2.resize(sources[i % len(sources)], (w, h), cv2.INTER_AREA)
        path = os.path.join(directory, f"{i:04d}.jpg")
        cv2.imwrite(path, image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def tf_reference(image_bytes):
    """tf-models-official's ImageNet training crop with `decode_jpeg_only`."""
    import tensorflow as tf

    shape = tf.image.extract_jpeg_shape(image_bytes)
    whole = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4])
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        shape,
        whole,
        min_object_covered=0.08,
        aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0),
        area_range=(0.08, 1.0),
        max_attempts=10,
    )
    offset_y, offset_x, _ = tf.unstack(begin)
    height, width, _ = tf.unstack(size)
    window = tf.stack([offset_y, offset_x, height, width])
    cropped = tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)

    def centre_crop():
        side = tf.cast(
            0.875 * tf.cast(tf.minimum(shape[0], shape[1]), "float32"), "int32"
        )
        top, left = (shape[0] - side + 1) // 2, (shape[1] - side + 1) // 2
        window = tf.stack([top, left, side, side])
        return tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)

    whole_image = tf.reduce_all(tf.equal(tf.shape(cropped), shape))
    image = tf.cond(whole_image, centre_crop, lambda: cropped)
    image = tf.image.random_flip_left_right(image)
    return tf.image.resize(image, (SIZE, SIZE), method="bilinear")


def contenders(paths, quick):
    import tensorflow as tf

    from keras_trainplus.layers import Mixup
    from keras_trainplus.layers import RandomResizedCrop

    auto = tf.data.AUTOTUNE
    files = tf.data.Dataset.from_tensor_slices(paths).repeat()

    def pipeline(function):
        ds = files.map(function, num_parallel_calls=auto).batch(BATCH)
        return consume(ds.prefetch(auto))

    def crop(**kwargs):
        return RandomResizedCrop(SIZE, SIZE, horizontal_flip=True, seed=0, **kwargs)

    ours, decoded, uint8 = crop(), crop(), crop(dtype="uint8")
    blank = tf.zeros((SIZE, SIZE, 3))
    labels = tf.data.Dataset.range(10).repeat()

    def recipe(layer):
        # The README's recipe: crops with labels, batched, then Mixup (float32).
        mixup = Mixup(alpha=0.2, num_classes=10, seed=0)
        ds = tf.data.Dataset.zip(files, labels)
        ds = ds.map(lambda path, y: (layer(tf.io.read_file(path)), y), auto)
        ds = ds.batch(BATCH).map(mixup, num_parallel_calls=auto)
        return consume(ds.prefetch(auto))

    batches = 6 if quick else 16
    theirs, loader = albumentations_loader(paths, batches)
    runs = {
        OURS: pipeline(lambda path: ours(tf.io.read_file(path))),
        TORCH: theirs,
        DECODED: pipeline(
            lambda path: decoded(tf.io.decode_jpeg(tf.io.read_file(path), channels=3))
        ),
        REFERENCE: pipeline(lambda path: tf_reference(tf.io.read_file(path))),
        UINT8: pipeline(lambda path: uint8(tf.io.read_file(path))),
        MIXUP: recipe(crop()),
        MIXUP_UINT8: recipe(crop(dtype="uint8")),
        FLOOR: pipeline(
            lambda path: (
                blank + tf.cast(tf.strings.length(tf.io.read_file(path)), "float32")
            )
        ),
    }
    return {name: (run, batches) for name, run in runs.items()}, loader


def given_crops(paths, count, seed=1):
    """`count` elements `(file index, box, reverse mask)`, the boxes drawn by a
    `RandomResizedCrop` (the layer's distribution) for the files' sizes."""
    import tensorflow as tf

    from keras_trainplus.layers import RandomResizedCrop

    layer = RandomResizedCrop(SIZE, SIZE, horizontal_flip=True, seed=seed)
    sizes = [tf.io.extract_jpeg_shape(tf.io.read_file(p)).numpy() for p in paths]
    visits = -(-count // len(paths))
    boxes, reverse = np.zeros((len(paths), visits, 4), "int32"), []
    for i, (h, w, _) in enumerate(sizes):
        drawn = layer.random_parameters(visits, int(h), int(w))
        boxes[i] = np.asarray(drawn["crop_boxes"]).astype("int32")
        reverse.append(np.asarray(drawn["flips"]))
    index = np.arange(count) % len(paths)
    visit = np.arange(count) // len(paths)
    flips = np.stack(reverse)[index, visit]
    masks = np.stack([np.zeros(count, bool), flips, np.zeros(count, bool)], -1)
    return index.astype("int32"), boxes[index, visit], masks


def mean_window_area(paths, count=4000):
    """Mean area fraction of the decoded window: ours, sample_distorted_bounding_box."""
    import tensorflow as tf

    index, boxes, _ = given_crops(paths, count)
    sizes = np.array(
        [tf.io.extract_jpeg_shape(tf.io.read_file(p)).numpy()[:2] for p in paths]
    )[index]
    ours = np.mean(boxes[:, 2] * boxes[:, 3] / (sizes[:, 0] * sizes[:, 1]))
    whole = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4])
    theirs = []
    for h, w in sizes[:1000]:
        _, size, _ = tf.image.sample_distorted_bounding_box(
            [h, w, 3],
            whole,
            min_object_covered=0.08,
            aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0),
            area_range=(0.08, 1.0),
            max_attempts=10,
        )
        theirs.append(float(size[0] * size[1]) / (h * w))
    return float(ours), float(np.mean(theirs))


def profile_costs(rounds=6):
    """Core microseconds per image on one thread, by step (see the docstring)."""
    import tensorflow as tf

    from keras_trainplus import _compat
    from keras_trainplus.layers import RandomResizedCrop
    from keras_trainplus.layers._crop import widened_window

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    directory = tempfile.mkdtemp()
    paths = write_jpegs(directory, 48, np.random.default_rng(2))
    contents = [tf.io.read_file(p) for p in paths]
    decoded = [tf.io.decode_jpeg(c, channels=3) for c in contents]
    count = 768
    index, boxes, masks = given_crops(paths, count)
    elements = tf.data.Dataset.from_tensor_slices((index, boxes, masks))
    flat = tf.concat([tf.reshape(image, [-1]) for image in decoded], 0)
    ragged = tf.RaggedTensor.from_row_lengths(flat, [tf.size(i) for i in decoded])
    shapes = tf.constant([tuple(i.shape) for i in decoded], "int32")
    files = tf.constant([c.numpy() for c in contents])
    blank = tf.zeros((SIZE, SIZE, 3))

    def image(i):
        return tf.reshape(ragged[i], shapes[i])

    def resize(pixels, reverse=None, cast=True):
        out = tf.image.resize(
            tf.cast(pixels, "float32") if cast else pixels, (SIZE, SIZE)
        )
        return out if reverse is None else tf.raw_ops.Reverse(tensor=out, dims=reverse)

    crop = RandomResizedCrop(SIZE, SIZE, horizontal_flip=True, seed=0)
    plan = crop._compiled()["crop"]

    def cut(i, box):
        return tf.slice(image(i), [box[0], box[1], 0], [box[2], box[3], -1])

    def cut_array(i, box, reverse, size=None):
        return resize(cut(i, box), reverse)

    def jpeg_window(i, box, size=None):
        size = tf.io.extract_jpeg_shape(files[i]) if size is None else size
        decode, begin, window = widened_window(crop.backend, box, size[1])
        pixels = tf.io.decode_and_crop_jpeg(files[i], decode, channels=3)
        return tf.slice(pixels, begin, window)

    def cut_jpeg(i, box, reverse, size=None):
        return resize(jpeg_window(i, box, size), reverse)

    # The overhead is measured on the given boxes (the same work as the row
    # above), its results kept alive by a zero added to the output; the image size
    # it needs is passed on (a JPEG's header is read once, as in the layer).
    def with_box(step, size_of):
        def run(i, box, reverse):
            size = size_of(i)
            planned, _, cut = plan(size[0], size[1])
            keep = tf.cast(
                planned[0] * 0 + tf.cast(cut["reverse"][1], "int32"), "float32"
            )
            return step(i, box, reverse, size) + keep * 0.0

        return run

    def array_size(i):
        return shapes[i]

    def jpeg_size(i):
        return tf.io.extract_jpeg_shape(files[i])

    def pixel(x):
        # One value of `x` added to the constant output: `x` is computed, nothing
        # else is.
        return blank + tf.cast(tf.reshape(x, [-1])[0], "float32")

    steps = {
        "array: tf.data floor (element in, constant image out)": lambda i, b, r: pixel(
            image(i)
        ),
        "array: + slice the box, resize the uint8 slice": lambda i, b, r: resize(
            cut(i, b), cast=False
        ),
        "array: + slice, cast the slice to float32, resize": lambda i, b, r: resize(
            cut(i, b)
        ),
        "array: + flip (the layer's kernels, boxes given)": cut_array,
        "array: + the XLA-compiled draws and box": with_box(cut_array, array_size),
        "array: RandomResizedCrop (its own boxes)": lambda i, b, r: crop(image(i)),
        "array: RandomResizedCrop after a whole-image cast to float32": (
            lambda i, b, r: crop(tf.cast(image(i), "float32"))
        ),
        "JPEG: read the header, decode the window (boxes given)": lambda i, b, r: pixel(
            jpeg_window(i, b)
        ),
        "JPEG: + slice, cast, resize, flip (the layer's kernels, boxes given)": (
            cut_jpeg
        ),
        "JPEG: + the XLA-compiled draws and box": with_box(cut_jpeg, jpeg_size),
        "JPEG: RandomResizedCrop from bytes (its own boxes)": lambda i, b, r: crop(
            files[i]
        ),
        "JPEG: (c) TF reference": lambda i, b, r: tf_reference(files[i]),
        "JPEG: full decode_jpeg, then RandomResizedCrop": (
            lambda i, b, r: crop(tf.io.decode_jpeg(files[i], channels=3))
        ),
    }
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False

    def traced(step):
        # The layer's internals compute with TensorFlow here, as in its own calls.
        def run(*args):
            with _compat.computing_with([crop], "tensorflow"):
                return step(*args)

        return run

    pipelines = {
        name: elements.repeat().map(traced(step)).batch(32).with_options(options)
        for name, step in steps.items()
    }
    costs = {name: [] for name in steps}
    for _ in range(rounds):
        for name, ds in pipelines.items():
            iterator = iter(ds)
            next(iterator)
            start = time.process_time()
            for _ in range(count // 32 - 1):
                next(iterator)
            costs[name].append((time.process_time() - start) / (count - 32) * 1e6)
    ours_area, theirs_area = mean_window_area(paths)
    return {
        "costs": {name: float(np.median(v)) for name, v in costs.items()},
        "window area": {"ours": ours_area, "TF reference": theirs_area},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer batches per round")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile:
        import json

        print(json.dumps(profile_costs()))
        return
    profile = json_from_process(os.path.abspath(__file__), "--profile")
    print(profile, flush=True)
    load = load_average()
    with tempfile.TemporaryDirectory() as directory:
        paths = write_jpegs(directory, FILES, np.random.default_rng(0))
        runs, loader = contenders(paths, args.quick)
        results, loads = {name: [] for name in runs}, []
        for _ in range(args.rounds):
            for name, values in interleave(runs, 1).items():
                results[name] += values
            loads.append(os.getloadavg()[0])
            print(f"round {len(loads)}, load {loads[-1]:.1f}", flush=True)
        del loader
    end_load = load_average()
    print({k: summary(v) for k, v in results.items()}, flush=True)
    text = report(results, profile, load, end_load, loads)
    print(text)
    if not args.no_write:
        replace_section(BENCHMARKS, "jpeg-crops", text)


def report(results, profile, load, end_load, loads):
    ours = np.asarray(results[OURS])

    def versus(name):
        return np.median(ours / np.asarray(results[name]))

    lines = [
        "### Crops from JPEG files",
        "",
        f"`benchmarks/decode_crop.py`: {FILES} JPEG files of 300-520 px, crops of "
        f"{SIZE}x{SIZE} in batches of {BATCH}, {len(loads)} interleaved rounds after "
        "a warm-up; images per second, median (min-max over rounds); ours from "
        "bytes / it per round. Keras backend "
        f"{os.environ.get('KERAS_BACKEND')} (the pipelines are TensorFlow's under "
        f"any backend). Machine: {machine()}; "
        f"{versions('keras', 'tensorflow', 'torch', 'albumentations')}; shared with "
        f"other jobs; load average "
        f"{load} at the start, {end_load} at the end (1, 5, 15 min), 1-min load "
        f"after each round {', '.join(f'{x:.1f}' for x in loads)}.",
        "",
        "| pipeline | images/s | ours from bytes / it | target |",
        "|---|---|---|---|",
    ]
    for name, values in results.items():
        ratio_text = "" if name == OURS else ratio_range(ours, values)
        target = f">= {TARGETS[name]:.1f}x" if name in TARGETS else ""
        lines.append(f"| {name} | {summary(values)} | {ratio_text} | {target} |")
    missed = [
        f"{name.split(' ')[0]} at {versus(name):.2f}x"
        for name, target in TARGETS.items()
        if versus(name) < target
    ]
    costs = profile["costs"]

    def cost(start):
        return next(value for name, value in costs.items() if name.startswith(start))

    floor = cost("array: tf.data floor")
    header = cost("JPEG: read the header")
    jpeg_kernels = cost("JPEG: + slice")
    jpeg_box = cost("JPEG: + the XLA")
    jpeg_layer = cost("JPEG: RandomResizedCrop")
    full = cost("JPEG: full decode_jpeg")
    reference = cost("JPEG: (c)")
    array_layer = cost("array: RandomResizedCrop (")
    area = profile["window area"]
    batch_mb = BATCH * SIZE * SIZE * 3 / 1e6
    lines += [
        "",
        "Targets missed in this run: "
        + (", ".join(missed) if missed else "none")
        + ".",
        "",
        "Core time per image on one thread (one TensorFlow thread, `tf.data` private "
        "thread pool of 1; process CPU time over 736 images, median of 6 rounds), "
        "each row adding one step to the one above it within its group; the array "
        "rows read decoded uint8 images held in memory:",
        "",
        "| step | core us / image |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.0f} |" for name, value in costs.items()]
    lines += [
        "",
        f"Where ours from bytes spends its {jpeg_layer:.0f} us per image: "
        f"{floor:.0f} the `tf.data` element itself (map, batch; the first row), "
        f"{header - floor:.0f} reading the header and decoding the window, "
        f"{jpeg_kernels - header:.0f} the slice, cast, resize and flip, "
        f"{jpeg_box - jpeg_kernels:.0f} the XLA-compiled draws and box, and "
        f"{jpeg_layer - jpeg_box:.0f} the rest of the layer (format test and "
        "branch, checks). The window decode is the largest part: a full decode "
        f"then the same crop (b) costs {full:.0f} us. The TF reference (c) costs "
        f"{reference:.0f} us: it decodes smaller windows on average (mean area "
        f"{area['TF reference']:.2f} of the image against ours {area['ours']:.2f}: "
        "`sample_distorted_bounding_box` draws the height uniformly for a uniform "
        "aspect ratio, so small areas are more likely than in torchvision's "
        "distribution, which ours follows) and draws its box in one kernel. The "
        "array path (decoded uint8 images in `tf.data`) costs "
        f"{array_layer:.0f} us per image, {array_layer - floor:.0f} above the "
        "floor; the array rows show where.",
        "",
        f"Output dtype: a batch of {BATCH} crops is {batch_mb:.1f} MB in uint8 and "
        f"{4 * batch_mb:.1f} MB in float32. `dtype='uint8'` crops reach "
        f"{ratio_range(results[UINT8], ours)} of the float32 crops' images/s to "
        "batches here, and "
        f"{ratio_range(results[MIXUP_UINT8], results[MIXUP])} with `Mixup` "
        "(float32 out) on the batches; what they save is the size of the batches "
        "held in prefetch buffers and copied to an accelerator, which this CPU-only "
        "run does not measure.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
