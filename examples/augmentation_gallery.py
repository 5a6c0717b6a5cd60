"""Draws each keras_trainplus augmentation layer on scikit-image's sample photos.

Writes docs/images/augmentation_gallery.png: one row per photo, one column per layer
(the first column is the input). Every layer is seeded, so the picture is reproducible.

    PYTHONPATH=$PWD /work/main/.venv/bin/python examples/augmentation_gallery.py
"""

import io
import os

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as skdata  # noqa: E402

from keras_trainplus import layers  # noqa: E402
from keras_trainplus._files import atomic_path  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "docs", "images", "augmentation_gallery.png")
NAMES = ["astronaut", "coffee", "cat"]


def _photos():
    """The three photos at their own sizes (uint8), and as a 256 x 256 batch."""
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea()]
    batch = []
    for photo in photos:
        h, w = photo.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = photo[top : top + side, left : left + side]
        resized = keras.ops.image.resize(square[None].astype("float32"), (256, 256))
        batch.append(keras.ops.convert_to_numpy(resized)[0])
    return photos, np.clip(np.stack(batch), 0, 255).astype("uint8")


def _to_uint8(images):
    return np.clip(keras.ops.convert_to_numpy(images), 0, 255).astype("uint8")


def _label_text(row):
    order = np.argsort(row)[::-1]
    return " + ".join(f"{row[i]:.2f} {NAMES[i]}" for i in order if row[i] > 0.005)


def columns():
    """Returns [(title, [image per photo], [caption per photo] or None)]."""
    photos, batch = _photos()
    labels = np.arange(len(photos))
    out = [("input", list(batch), None)]

    crops = [
        ("RandomResizedCrop(224, 224)", layers.RandomResizedCrop(224, 224, seed=1)),
        ("RandomScaleCrop(224, 224)", layers.RandomScaleCrop(224, 224, seed=2)),
    ]
    for title, layer in crops:  # variable-size inputs, one photo at a time
        out.append((title, [_to_uint8(layer(p)) for p in photos], None))

    batched = [
        (
            "RandomAffine(rotation, translation,\nzoom, stretch, shear)",
            layers.RandomAffine(
                rotation=0.1,
                translation=0.1,
                zoom=0.2,
                stretch=0.2,
                shear=0.2,
                seed=3,
            ),
        ),
        (
            "RandomLensDistortion\n(k1=(-0.4, 0.4))",
            layers.RandomLensDistortion(k1=(-0.4, 0.4), seed=4),
        ),
        (
            "PCALighting(std=1.0)\n(10x AlexNet's, to show it)",
            layers.PCALighting(std=1.0, seed=5),
        ),
    ]
    for title, layer in batched:
        out.append((title, list(_to_uint8(layer(batch))), None))

    mixers = [
        ("Mixup(alpha=1.0)", layers.Mixup(alpha=1.0, num_classes=3, seed=6)),
        (
            "CutMix: Mixup(cutmix_alpha=1.0,\nswitch_prob=1.0)",
            layers.Mixup(cutmix_alpha=1.0, switch_prob=1.0, num_classes=3, seed=11),
        ),
    ]
    for title, layer in mixers:
        images, mixed = layer(batch, labels)
        mixed = keras.ops.convert_to_numpy(mixed)
        out.append((title, list(_to_uint8(images)), [_label_text(r) for r in mixed]))
    return out


def main():
    table = columns()
    rows, cols = len(NAMES), len(table)
    figure, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.85 * rows))
    for c, (title, images, captions) in enumerate(table):
        for r in range(rows):
            axis = axes[r, c]
            axis.imshow(images[r])
            axis.set_xticks([])
            axis.set_yticks([])
            if captions:
                axis.set_xlabel(captions[r], fontsize=5.5)
        axes[0, c].set_title(title, fontsize=6)
    figure.subplots_adjust(left=0.005, right=0.995, bottom=0.04, top=0.9, wspace=0.04)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    buffer.seek(0)
    # A 256-colour palette keeps the committed picture small.
    picture = Image.open(buffer).convert("RGB").quantize(colors=256)
    with atomic_path(OUTPUT) as temporary:  # umask permissions, durable, atomic
        picture.save(temporary, format="PNG", optimize=True)
    print(f"wrote {OUTPUT} ({os.path.getsize(OUTPUT) // 1024} KiB)")


if __name__ == "__main__":
    main()
