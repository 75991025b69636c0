"""A dataset of your own, declared in params.yaml `datasets.<name>`: checked, then written in the VOC layout.

The folder (`root`) holds JPEGImages/ (any of segsort.io.IMAGE_SUFFIXES, any size and mode: read_image
converts greyscale, RGBA and 16-bit images) and, for a labelled dataset, SegmentationClass/<id>.png: class
ids as a palette or grey PNG (255 = void), or colours of the declared `palette` in an RGB PNG. Split lists
in ImageSets/Segmentation/ (train.txt and val.txt; optional train_aug.txt, and test.txt whose images need
no mask) are used when present; otherwise a seeded split is written, `val_fraction` of the images in val. An images-only dataset (no `classes`)
lists every image in train, train_aug and val: its pipeline trains and groups without labels.

`check_dataset` reads the whole folder and returns every problem at once, one line each naming the file;
`build_own_dataset` writes nothing unless there is none.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segsort.io import IGNORE_LABEL, IMAGE_SUFFIXES, DataError, atomic_path, link_or_copy, read_image, write_label_png

LIST_NAMES = ("train", "val", "train_aug", "test")  # test: images without masks (Table 7's packages)
DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)  # what PIL raises for a broken file


def image_files(root: Path) -> tuple[dict[str, Path], list[str]]:
    """id -> image file of JPEGImages/, and a problem line for every id two files share."""
    by_id: dict[str, list[Path]] = {}
    for path in sorted((root / "JPEGImages").iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            by_id.setdefault(path.stem, []).append(path)
    problems = [f"{', '.join(map(str, paths))}: {len(paths)} images share the id {image_id!r}"
                for image_id, paths in by_id.items() if len(paths) > 1]
    return {image_id: paths[0] for image_id, paths in by_id.items()}, problems


def read_split_lists(root: Path) -> tuple[dict[str, list[str]], list[str]]:
    """The split lists that exist, and their problems (empty, an id listed twice, train without val)."""
    folder = root / "ImageSets" / "Segmentation"
    lists, problems = {}, []
    for name in LIST_NAMES:
        path = folder / f"{name}.txt"
        if not path.is_file():
            continue
        ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        if not ids:
            problems.append(f"{path}: the list is empty")
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            problems.append(f"{path}: ids listed more than once: {', '.join(twice[:5])}")
        lists[name] = list(dict.fromkeys(ids))
    if lists and not {"train", "val"} <= set(lists):
        problems.append(f"{folder}: has {', '.join(f'{n}.txt' for n in lists)} but needs both train.txt and val.txt")
    return lists, problems


def test_only_ids(lists: dict[str, list[str]]) -> set[str]:
    """Ids listed in test.txt and in no other list: images without masks."""
    return set(lists.get("test", [])) - {i for split, ids in lists.items() if split != "test" for i in ids}


def mask_ids(path: Path, palette: list[list[int]] | None) -> np.ndarray:
    """The class ids of a mask: a palette or grey PNG's values, or an RGB PNG's colours looked up in `palette`."""
    with Image.open(path) as img:
        img.load()
        if img.mode in ("P", "L", "I", "I;16"):
            return np.asarray(img).astype(np.int64)
        if img.mode not in ("RGB", "RGBA"):
            raise DataError(f"{path}: mask mode {img.mode} is neither class ids (palette or grey) nor RGB colours")
        if palette is None:
            raise DataError(f"{path}: an RGB mask, but the dataset declares no palette to read its colours with")
        rgb = np.asarray(img.convert("RGB")).astype(np.int64)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    lookup = {(r << 16) | (g << 8) | b: class_id for class_id, (r, g, b) in enumerate(palette)}
    ids = np.full(codes.shape, -1, np.int64)
    for code, class_id in lookup.items():
        ids[codes == code] = class_id
    if 0xFFFFFF not in lookup:  # white is void, unless a class has that colour
        ids[codes == 0xFFFFFF] = IGNORE_LABEL
    unknown = np.unique(codes[ids < 0])
    if unknown.size:
        shown = ", ".join(f"#{code:06x}" for code in unknown[:5])
        raise DataError(f"{path}: colours {shown} are not in the declared palette (white #ffffff is void)")
    return ids


def reads_masks(root: str | Path, classes: list[str] | None, images_only: bool = False) -> bool:
    """Whether check_dataset reads the masks of `root`: a labelled dataset's (`classes` given), and, when no
    classes are given, those of a folder with SegmentationClass/, unless it is declared images-only."""
    return classes is not None or (not images_only and (Path(root) / "SegmentationClass").is_dir())


def mask_problem(mask: Path, image: Path, size: tuple[int, int], classes: list[str] | None,
                 palette: list[list[int]] | None) -> str | None:
    """What is wrong with the mask of `image` (`size`: its width and height), if anything: missing, not
    decodable, of another size, or with labels outside `classes` (None: decoded and sized only)."""
    if not mask.is_file():
        return f"{mask}: mask is missing (image {image.name})"
    try:
        if classes is None:  # no classes to read its ids or colours against
            with Image.open(mask) as img:
                img.load()
                shape = img.size[::-1]
        else:
            ids = mask_ids(mask, palette)
            shape = ids.shape
    except DataError as err:
        return str(err)
    except DECODE_ERRORS as err:
        return f"{mask}: cannot decode mask ({err})"
    if shape != (size[1], size[0]):
        return f"{mask}: mask is {shape[1]}x{shape[0]} but image {image.name} is {size[0]}x{size[1]}"
    if classes is None:
        return None
    bad = np.unique(ids[(ids >= len(classes)) & (ids != IGNORE_LABEL)])
    if bad.size:
        return (f"{mask}: label values {', '.join(map(str, bad[:8].tolist()))} outside the {len(classes)} declared "
                f"classes (0..{len(classes) - 1}; {IGNORE_LABEL} = void)")
    return None


def check_dataset(root: str | Path, classes: list[str] | None = None, palette: list[list[int]] | None = None,
                  images_only: bool = False) -> list[str]:
    """Every problem of the folder `root`, one line each naming the file: unreadable images, masks missing,
    of another size or with labels outside the classes, ids listed without an image, empty or incomplete
    split lists, ids used twice. `classes` None: the masks of SegmentationClass/, if the folder has one, are
    decoded and sized against their images, their labels not checked; `images_only` (a dataset declared
    without classes): masks are not read."""
    root = Path(root)
    if not (root / "JPEGImages").is_dir():
        return [f"{root}: no JPEGImages/ folder (the images of the dataset go there)"]
    images, problems = image_files(root)
    if not images:
        return problems + [f"{root / 'JPEGImages'}: no images ({', '.join(IMAGE_SUFFIXES)})"]
    lists, list_problems = read_split_lists(root)
    problems += list_problems
    for name, ids in lists.items():
        absent = [i for i in ids if i not in images]
        if absent:
            problems.append(f"{root / 'ImageSets/Segmentation' / f'{name}.txt'}: {len(absent)} ids listed without "
                            f"an image in JPEGImages/: {', '.join(absent[:5])}")
    unlabelled = test_only_ids(lists)
    masks = reads_masks(root, classes, images_only)
    for image_id, path in images.items():
        try:
            with Image.open(path) as img:
                img.load()
                size = img.size
        except DECODE_ERRORS as err:
            problems.append(f"{path}: cannot decode image ({err})")
            continue
        if masks and image_id not in unlabelled:
            problem = mask_problem(root / "SegmentationClass" / f"{image_id}.png", path, size, classes, palette)
            if problem:
                problems.append(problem)
    return problems


def problems_count(problems: list[str]) -> str:
    return f"{len(problems)} problem{'' if len(problems) == 1 else 's'}"


def seeded_split(ids: list[str], val_fraction: float, seed: int) -> dict[str, list[str]]:
    """train / val / train_aug lists of `ids`: `val_fraction` of them in val, drawn with `seed`."""
    order = np.random.default_rng(seed).permutation(len(ids))
    count = min(len(ids) - 1, max(1, round(val_fraction * len(ids))))
    val = sorted(ids[i] for i in order[:count])
    train = sorted(ids[i] for i in order[count:])
    return {"train": train, "val": val, "train_aug": train}


def build_own_dataset(out: str | Path, name: str, spec: dict, seed: int) -> None:
    """Check the folder of `datasets.<name>` (`spec`), then write the dataset root `out` (atomically) in the
    VOC layout: images linked (JPEG and PNG) or converted to PNG, masks as palette PNGs of class ids, lists."""
    root, classes, palette = Path(spec["root"]), spec.get("classes"), spec.get("palette")
    problems = check_dataset(root, classes, palette, images_only=classes is None)
    if problems:
        raise DataError(f"datasets.{name} ({root}): {problems_count(problems)}\n" + "\n".join(problems))
    images, _ = image_files(root)
    lists, _ = read_split_lists(root)
    ids = sorted(images)
    if classes is None:
        lists = {split: ids for split in ("train", "val", "train_aug")}
    elif not lists:
        lists = seeded_split(ids, spec["val_fraction"], seed)
        print(f"{name}: no split lists in {root}: a seeded split, {len(lists['val'])} of {len(ids)} images in val",
              file=sys.stderr)
    lists.setdefault("train_aug", lists["train"])
    used = sorted({i for split in lists.values() for i in split})
    unlabelled = test_only_ids(lists)
    with atomic_path(out) as tmp:
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (tmp / sub).mkdir(parents=True)
        for image_id in used:
            source = images[image_id]
            suffix = {".jpeg": ".jpg"}.get(source.suffix.lower(), source.suffix.lower())
            if suffix in (".jpg", ".png"):
                link_or_copy(source, tmp / "JPEGImages" / f"{image_id}{suffix}")
            else:
                Image.fromarray(read_image(source)).save(tmp / "JPEGImages" / f"{image_id}.png")
            if classes is not None and image_id not in unlabelled:
                write_label_png(tmp / "SegmentationClass" / f"{image_id}.png",
                                mask_ids(root / "SegmentationClass" / f"{image_id}.png", palette).astype(np.uint8))
        for split, split_ids in lists.items():
            (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in split_ids))
    print(f"{name}: {len(used)} images ({'labelled, ' + str(len(classes)) + ' classes' if classes else 'images only'}); "
          + ", ".join(f"{split} {len(split_ids)}" for split, split_ids in lists.items()), file=sys.stderr)
