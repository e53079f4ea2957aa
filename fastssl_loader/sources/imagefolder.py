"""ImageFolder converter: ``root/<class>/**/<image>`` with torchvision's class order and labels.

Classes are the sub-folders of ``root`` sorted by name (Python string order) and numbered from 0; files
are every file under a class folder (following symlinks) whose lower-cased name ends with one of
:data:`IMG_EXTENSIONS`, walked in sorted order: the same samples and labels as
``torchvision.datasets.ImageFolder(root)``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..writer import WriteReport, write_dataset

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def find_classes(root: str | os.PathLike) -> list[str]:
    """Sorted names of the class folders of ``root``; FileNotFoundError if there are none."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"ImageFolder root {root} is not a folder")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not classes:
        raise FileNotFoundError(f"no class folders found in {root}")
    return classes


def list_samples(root: str | os.PathLike) -> tuple[list[tuple[str, int]], list[str]]:
    """((path, label) for every image, class names) in torchvision ImageFolder order."""
    classes = find_classes(root)
    samples: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        before = len(samples)
        for folder, _, files in sorted(os.walk(os.path.join(root, name), followlinks=True)):
            samples.extend((os.path.join(folder, f), label) for f in sorted(files)
                           if f.lower().endswith(IMG_EXTENSIONS))
        if len(samples) == before:
            raise FileNotFoundError(f"class folder {os.path.join(root, name)} has no image with an extension "
                                    f"in {IMG_EXTENSIONS}")
    return samples, classes


def list_flat_samples(root: str | os.PathLike) -> tuple[list[tuple[str, int]], list[str]]:
    """((path, label), class names) for images directly in ``root``, class = file-name prefix before '_'.

    This is the layout of imagenet-sample (``n01440764_tench.JPEG``); classes are the sorted prefixes.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder {root} is not a folder")
    files = sorted(f for f in os.listdir(root) if f.lower().endswith(IMG_EXTENSIONS)
                   and os.path.isfile(os.path.join(root, f)))
    if not files:
        raise FileNotFoundError(f"no image with an extension in {IMG_EXTENSIONS} in {root}")
    classes = sorted({f.split("_", 1)[0] for f in files})
    label = {name: i for i, name in enumerate(classes)}
    return [(os.path.join(root, f), label[f.split("_", 1)[0]]) for f in files], classes


def convert_imagefolder(src: str | os.PathLike, dst: str | os.PathLike, *, flat: bool = False,
                        **write_options: Any) -> WriteReport:
    """Convert an ImageFolder tree (or a flat folder, ``flat=True``) into one dataset file.

    Options are those of ``write_dataset``. The class names are stored in the schema's description
    (``{"source": "imagefolder", "classes": [...]}``).
    """
    samples, classes = list_flat_samples(src) if flat else list_samples(src)
    description = {"source": "imagefolder", "root": Path(src).name, "flat": flat, "classes": classes}
    return write_dataset(dst, samples, description=description, **write_options)
