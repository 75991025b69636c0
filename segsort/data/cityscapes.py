"""Cityscapes (fine annotations only): fetched with an account or placed by hand, verified, converted.

Downloading needs an account: the username and password come from the environment variables
CITYSCAPES_USERNAME and CITYSCAPES_PASSWORD and live only in memory (the session cookie too); they are
never printed or written. The site publishes each package's md5 to logged-in users only, so a download
is checked against the md5 the site gives, while an archive or folder placed by hand without
credentials is verified by structure: the expected cities of each split, the official file counts
(2,975 train, 500 val, 1,525 test) and an image for every annotation.

The dataset root gets JPEGImages/<id>.png (the images stay PNG; hard links where possible), for train
and val SegmentationClass/<id>.png with the 19 train ids (255 = ignore), and ImageSets/Segmentation/
train.txt, val.txt, test.txt; ids are like aachen_000000_000019. Cityscapes has no augmented training
set: train_aug.txt lists the train images again, so the runs of params.yaml (train_aug, then train)
apply as they are, and the Cityscapes preset's fine-tuning schedules have 0 steps: one training, as
in the paper.
"""
from __future__ import annotations

import os
import re
import sys
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import numpy as np

from segsort.data.pascal import link_or_copy
from segsort.download import DownloadError, archive_stem, download, extract
from segsort.io import DataError, atomic_path, read_label_map, write_label_png

CITYSCAPES_CLASSES = ("road", "swalk", "build.", "wall", "fence", "pole", "tlight", "tsign", "veg.", "terrain",
                      "sky", "person", "rider", "car", "truck", "bus", "train", "mbike", "bike")
# Label id of each train id (the official cityscapesScripts table); every other label id is ignored.
TRAIN_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
IGNORE = 255

BASE_URL = "https://www.cityscapes-dataset.com"
PACKAGES = {"gtFine_trainvaltest.zip": 1, "leftImg8bit_trainvaltest.zip": 3}
CREDENTIAL_VARIABLES = ("CITYSCAPES_USERNAME", "CITYSCAPES_PASSWORD")
SPLITS = {
    "train": (("aachen", "bochum", "bremen", "cologne", "darmstadt", "dusseldorf", "erfurt", "hamburg", "hanover",
               "jena", "krefeld", "monchengladbach", "strasbourg", "stuttgart", "tubingen", "ulm", "weimar",
               "zurich"), 2975),
    "val": (("frankfurt", "lindau", "munster"), 500),
    "test": (("berlin", "bielefeld", "bonn", "leverkusen", "mainz", "munich"), 1525),
}

_TO_TRAIN = np.full(256, IGNORE, np.uint8)
_TO_TRAIN[list(TRAIN_LABEL_IDS)] = np.arange(len(TRAIN_LABEL_IDS), dtype=np.uint8)
_TO_LABEL = np.zeros(256, np.uint8)  # ignore (255) goes to label id 0, "unlabeled"
_TO_LABEL[:len(TRAIN_LABEL_IDS)] = TRAIN_LABEL_IDS


def label_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Cityscapes label ids (uint8) as the 19 train ids, everything else 255."""
    return _TO_TRAIN[label_ids]


def train_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Train ids back to label ids, the evaluation server's format (ignore and unknown ids become 0)."""
    return _TO_LABEL[train_ids]


class _KeepRedirects(urllib.request.HTTPErrorProcessor):
    """Hands 3xx answers back instead of following them: the site answers a good login with a
    redirect, and a request without a valid session with a redirect to the login page."""

    def http_response(self, request, response):
        if 300 <= response.status < 400:
            return response
        return super().http_response(request, response)

    https_response = http_response


def login(username: str, password: str, base_url: str = BASE_URL) -> urllib.request.OpenerDirector:
    """An opener holding a logged-in session (its cookie jar is in memory only)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()), _KeepRedirects())
    form = urllib.parse.urlencode({"username": username, "password": password, "submit": "Login"}).encode()
    try:
        with opener.open(f"{base_url}/login/", data=form, timeout=60) as response:
            status = response.status
    except OSError as err:
        raise DownloadError(f"{base_url}/login/: cannot log in ({type(err).__name__}: {err})") from err
    if status not in (301, 302, 303):
        raise DownloadError(f"{base_url}/login/: login refused (answer {status}): check the "
                            f"{' and '.join(CREDENTIAL_VARIABLES)} environment variables")
    return opener


def package_md5(opener: urllib.request.OpenerDirector, package_id: int, base_url: str = BASE_URL) -> str:
    """The md5 the site publishes for a package (logged-in users only)."""
    url = f"{base_url}/md5-sum/?packageID={package_id}"
    try:
        with opener.open(url, timeout=60) as response:
            text = response.read(4096).decode(errors="replace") if response.status == 200 else ""
    except OSError as err:
        raise DownloadError(f"{base_url}/md5-sum/: cannot get the md5 of package {package_id} ({err})") from err
    match = re.match(r"\s*([0-9a-fA-F]{32})\b", text)
    if match is None:
        raise DownloadError(f"{base_url}/md5-sum/: no md5 for package {package_id} (session not logged in?)")
    return match.group(1).lower()


def fetch_archives(downloads: str | Path, base_url: str = BASE_URL) -> dict[str, Path]:
    """The two packages in `downloads`: downloaded with the account from the environment where missing
    (and then verified by the site's md5), or used as placed by hand."""
    downloads = Path(downloads)
    missing = [name for name in PACKAGES if not (downloads / name).is_file()]
    username, password = (os.environ.get(name, "") for name in CREDENTIAL_VARIABLES)
    if not (username and password):
        if missing:
            raise DataError(f"{downloads}: Cityscapes needs an account (https://www.cityscapes-dataset.com/"
                            f"register/): set {' and '.join(CREDENTIAL_VARIABLES)} to download it, or place "
                            f"{' and '.join(missing)} in {downloads}, or the extracted gtFine/ and "
                            f"leftImg8bit/ folders in {downloads / 'cityscapes'}")
        print(f"cityscapes: using the archives placed in {downloads} (no credentials: verified by structure)",
              file=sys.stderr)
    else:
        opener = login(username, password, base_url)
        for name, package_id in PACKAGES.items():
            download(f"{base_url}/file-handling/?packageID={package_id}", downloads / name,
                     f"md5:{package_md5(opener, package_id, base_url)}", opener=opener)
    return {name: downloads / name for name in PACKAGES}


def source_folders(downloads: str | Path, base_url: str = BASE_URL) -> tuple[Path, Path]:
    """The gtFine and leftImg8bit folders: placed by hand in <downloads>/cityscapes/, or extracted
    from the archives (each beside its archive)."""
    downloads = Path(downloads)
    placed = downloads / "cityscapes"
    if (placed / "gtFine").is_dir() and (placed / "leftImg8bit").is_dir():
        print(f"cityscapes: using the folders placed in {placed}", file=sys.stderr)
        return placed / "gtFine", placed / "leftImg8bit"
    folders = []
    for archive, inner in zip(fetch_archives(downloads, base_url).values(), ("gtFine", "leftImg8bit")):
        folder = archive.with_name(archive_stem(archive.name))
        if not folder.is_dir():
            extract(archive, folder)
        folders.append(folder / inner)
    return folders[0], folders[1]


def check_structure(gtfine: Path, images: Path) -> dict[str, list[str]]:
    """The image ids of each split, after checking the cities, the official counts and that every
    annotation has its image; DataError naming the folder otherwise."""
    ids = {}
    for split, (cities, count) in SPLITS.items():
        found = sorted(p.name for p in (gtfine / split).glob("*") if p.is_dir())
        if found != sorted(cities):
            raise DataError(f"{gtfine / split}: cities {found} are not the official {sorted(cities)}")
        ids[split] = sorted(p.name.removesuffix("_gtFine_labelIds.png")
                            for p in (gtfine / split).glob("*/*_gtFine_labelIds.png"))
        if len(ids[split]) != count:
            raise DataError(f"{gtfine / split}: {len(ids[split])} *_gtFine_labelIds.png files, "
                            f"the official {split} set has {count}")
        for image_id in ids[split]:
            image = images / split / image_id.split("_")[0] / f"{image_id}_leftImg8bit.png"
            if not image.is_file():
                raise DataError(f"{image}: image of the annotated {split} image {image_id} is missing")
    return ids


def assemble_cityscapes(out: str | Path, gtfine: Path, images: Path) -> None:
    """Write the dataset root `out` (atomically) from the gtFine and leftImg8bit folders."""
    ids = check_structure(gtfine, images)
    with atomic_path(out) as tmp:
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (tmp / sub).mkdir(parents=True)
        for split, split_ids in ids.items():
            for done, image_id in enumerate(split_ids, 1):
                city = image_id.split("_")[0]
                link_or_copy(images / split / city / f"{image_id}_leftImg8bit.png",
                             tmp / "JPEGImages" / f"{image_id}.png")
                if split != "test":  # the test annotations are placeholders
                    labels = read_label_map(gtfine / split / city / f"{image_id}_gtFine_labelIds.png")
                    write_label_png(tmp / "SegmentationClass" / f"{image_id}.png", label_to_train_ids(labels))
                if done % 500 == 0 or done == len(split_ids):
                    print(f"cityscapes {split}: {done} of {len(split_ids)}", file=sys.stderr, flush=True)
            (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in split_ids))
        (tmp / "ImageSets" / "Segmentation" / "train_aug.txt").write_text("".join(f"{i}\n" for i in ids["train"]))


def build_cityscapes(out: str | Path, downloads: str | Path, base_url: str = BASE_URL) -> None:
    """Fetch (or find), verify and convert Cityscapes into the dataset root `out`."""
    assemble_cityscapes(out, *source_folders(downloads, base_url))
