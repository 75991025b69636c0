"""PASCAL VOC 2012 with the SBD augmentation: downloaded, verified and assembled in the VOC layout.

Sources: VOC 2012 trainval and SBD's benchmark.tgz (Hariharan et al. 2011), each from the URLs of
params.yaml `downloads` (official host first, then mirrors) and md5-checked. An archive placed by hand
in the downloads folder is used once its md5 matches; a folder extracted by hand (<downloads>/VOCdevkit/
VOC2012, <downloads>/benchmark_RELEASE/dataset) once its structure and list sizes are the official ones. The VOC 2012 test images need an account on the VOC evaluation
server, so VOC2012test.tar is only used when placed by hand in the downloads folder. Its checksum is
not published anywhere we could establish, so it is verified by structure instead: the segmentation
test list with the official 1,456 ids and a JPEG for each.

The dataset root gets JPEGImages/<id>.jpg, SegmentationClass/<id>.png (VOC's own masks, with their
void borders, where VOC has one; SBD's converted otherwise) and ImageSets/Segmentation/ train.txt,
val.txt, train_aug.txt (VOC train ∪ SBD train ∪ SBD val, minus VOC val) and test.txt when the test
images are there. Images and VOC masks are hard links to the extracted archives where the file system
allows, copies otherwise.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.io

from segsort.download import Archive, DownloadError, archive_stem, download, extract
from segsort.io import DataError, atomic_path, link_or_copy, read_id_list, write_label_png

VOC_CLASSES = ("background", "aero", "bike", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "table", "dog", "horse", "mbike", "person", "plant", "sheep", "sofa", "train", "tv")

VOC_TEST_FILENAME = "VOC2012test.tar"

# Sizes of the official lists; the assembled dataset must match them exactly.
OFFICIAL_COUNTS = {"train": 1464, "val": 1449, "train_aug": 10582, "test": 1456}


def train_aug_ids(voc_train, voc_val, sbd_train, sbd_val) -> list[str]:
    """The standard train_aug list: VOC train ∪ SBD train ∪ SBD val, minus VOC val, sorted."""
    return sorted((set(voc_train) | set(sbd_train) | set(sbd_val)) - set(voc_val))


def check_count(name: str, ids: list[str], source: str) -> None:
    """Raise DataError if the list `name` does not have its official size."""
    if len(ids) != OFFICIAL_COUNTS[name]:
        raise DataError(f"{source}: the {name} list has {len(ids)} images, the official one "
                        f"{OFFICIAL_COUNTS[name]}: the archive is not the expected release")


def sbd_mask(path: str | Path) -> np.ndarray:
    """The class map (uint8, ids 0..20) of one of SBD's cls/<id>.mat files (struct GTcls, field Segmentation)."""
    path = Path(path)
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except (OSError, ValueError, TypeError) as err:
        raise DataError(f"{path}: cannot read the MATLAB file ({err})") from err
    try:
        labels = np.asarray(mat["GTcls"].Segmentation)
    except (KeyError, AttributeError) as err:
        raise DataError(f"{path}: no GTcls.Segmentation in the file") from err
    if labels.ndim != 2 or labels.dtype.kind not in "ui" or labels.size == 0:
        raise DataError(f"{path}: GTcls.Segmentation is not a 2-D integer map ({labels.dtype}, {labels.shape})")
    if labels.min() < 0 or labels.max() >= len(VOC_CLASSES):
        raise DataError(f"{path}: class ids {labels.min()}..{labels.max()} outside 0..{len(VOC_CLASSES) - 1}")
    return labels.astype(np.uint8)


def archives(sources: dict) -> dict[str, Archive]:
    """params.yaml `downloads` ({key: {filename, md5, urls}}) as Archives, by key."""
    return {key: Archive(source["filename"], tuple(source["urls"]), f"md5:{source['md5']}")
            for key, source in sources.items()}


def check_voc_folder(voc: Path) -> None:
    """An extracted VOC2012 folder: its segmentation lists of the official sizes, an image and a mask for each."""
    lists = voc / "ImageSets" / "Segmentation"
    for name in ("train", "val"):
        ids = read_id_list(lists / f"{name}.txt")
        check_count(name, ids, str(lists / f"{name}.txt"))
        missing = [path for i in ids for path in (voc / "JPEGImages" / f"{i}.jpg", voc / "SegmentationClass" / f"{i}.png")
                   if not path.is_file()]
        if missing:
            raise DataError(f"{voc}: {len(missing)} files of the {name} list are missing ({', '.join(map(str, missing[:3]))})")


def check_sbd_folder(sbd: Path) -> None:
    """An extracted SBD dataset folder: its lists, cls/ and img/ (list sizes are checked with VOC's)."""
    for name in ("train.txt", "val.txt"):
        read_id_list(sbd / name)
    for name in ("cls", "img"):
        if not (sbd / name).is_dir():
            raise DataError(f"{sbd}: no {name}/ folder: not SBD's benchmark_RELEASE/dataset")


# params.yaml `downloads` key -> the folder inside the archive that holds the data, and its check when
# it was extracted by hand
ARCHIVE_FOLDERS = {"voc2012_trainval": ("VOCdevkit/VOC2012", check_voc_folder),
                   "sbd": ("benchmark_RELEASE/dataset", check_sbd_folder)}


def source_folder(downloads: Path, key: str, archive: Archive) -> Path:
    """The extracted folder of one archive: extracted earlier (by a run or by hand), else downloaded (or
    placed by hand) and extracted now. A failed download says where the archive or its folder may be placed."""
    inner, check_folder = ARCHIVE_FOLDERS[key]
    ours = downloads / archive_stem(archive.filename) / inner
    by_hand = downloads / inner
    if ours.is_dir():
        return ours
    if by_hand.is_dir():
        check_folder(by_hand)
        print(f"{key}: using the folder extracted by hand at {by_hand}", file=sys.stderr)
        return by_hand
    try:
        path = download(archive.urls, downloads / archive.filename, archive.checksum)
    except DownloadError as err:
        raise DownloadError(f"{err}; or extract it yourself so that {by_hand} exists (params.yaml downloads.{key} "
                            f"lists the URLs tried: add a mirror there)") from None
    return _extracted(path) / inner


def fetch_voc2012(downloads: str | Path, sources: dict) -> tuple[Path, Path, Path | None]:
    """The VOC2012, SBD dataset and test VOC2012 folders, downloaded (or reused) and extracted; `sources`
    is params.yaml `downloads`.

    The test folder is None, with a note on stderr, when VOC2012test.tar was not placed by hand.
    """
    downloads = Path(downloads)
    found = archives(sources)
    voc = source_folder(downloads, "voc2012_trainval", found["voc2012_trainval"])
    sbd = source_folder(downloads, "sbd", found["sbd"])
    test_archive = downloads / VOC_TEST_FILENAME
    if not test_archive.is_file():
        print(f"note: no VOC 2012 test images: to add them (test.txt), download {VOC_TEST_FILENAME} from the "
              f"VOC evaluation server (account needed) and place it at {test_archive}", file=sys.stderr)
        return voc, sbd, None
    return voc, sbd, _extracted(test_archive) / "VOCdevkit" / "VOC2012"


def _extracted(archive: Path) -> Path:
    """The folder `archive` is extracted into (beside it), extracting it unless an earlier run did."""
    folder = archive.with_name(archive_stem(archive.name))
    if not folder.is_dir():
        extract(archive, folder)
    return folder


def assemble_voc2012(out: str | Path, voc: Path, sbd: Path, test: Path | None = None) -> None:
    """Write the dataset root `out` (atomically) from the extracted VOC2012, SBD and test folders."""
    lists = voc / "ImageSets" / "Segmentation"
    train, val = read_id_list(lists / "train.txt"), read_id_list(lists / "val.txt")
    sbd_train, sbd_val = read_id_list(sbd / "train.txt"), read_id_list(sbd / "val.txt")
    train_aug = train_aug_ids(train, val, sbd_train, sbd_val)
    check_count("train", train, str(lists / "train.txt"))
    check_count("val", val, str(lists / "val.txt"))
    check_count("train_aug", train_aug, f"{lists} and {sbd}")
    splits = {"train": train, "val": val, "train_aug": train_aug}
    test_ids = []
    if test is not None:
        test_ids = read_id_list(test / "ImageSets" / "Segmentation" / "test.txt")
        check_count("test", test_ids, str(test / "ImageSets" / "Segmentation" / "test.txt"))
        clash = set(test_ids) & set(train_aug + val)
        if clash:
            raise DataError(f"{test}: test ids {sorted(clash)[:5]} are also train/val ids")
        splits["test"] = test_ids

    with atomic_path(out) as tmp:
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (tmp / sub).mkdir(parents=True)
        labelled = sorted(set(train_aug) | set(val))
        for done, image_id in enumerate(labelled, 1):
            image = voc / "JPEGImages" / f"{image_id}.jpg"
            link_or_copy(image if image.is_file() else sbd / "img" / f"{image_id}.jpg",
                         tmp / "JPEGImages" / f"{image_id}.jpg")
            mask = voc / "SegmentationClass" / f"{image_id}.png"
            if mask.is_file():
                link_or_copy(mask, tmp / "SegmentationClass" / f"{image_id}.png")
            else:
                write_label_png(tmp / "SegmentationClass" / f"{image_id}.png",
                                sbd_mask(sbd / "cls" / f"{image_id}.mat"))
            if done % 1000 == 0 or done == len(labelled):
                print(f"voc2012: {done} of {len(labelled)} labelled images", file=sys.stderr, flush=True)
        for image_id in test_ids:
            link_or_copy(test / "JPEGImages" / f"{image_id}.jpg", tmp / "JPEGImages" / f"{image_id}.jpg")
        for name, ids in splits.items():
            (tmp / "ImageSets" / "Segmentation" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))


def build_voc2012(out: str | Path, downloads: str | Path, sources: dict) -> None:
    """Download, verify and assemble VOC 2012 + SBD into the dataset root `out` (`sources`: params.yaml
    `downloads`)."""
    assemble_voc2012(out, *fetch_voc2012(downloads, sources))
