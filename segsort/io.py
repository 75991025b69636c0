"""File I/O shared by every stage: atomic writes and image/mask reading with clear errors."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IGNORE_LABEL = 255


class PipelineError(Exception):
    """A failure the user can act on: bad input, a failed download, a training that cannot go on. A stage
    prints it as one line (segsort.stage.stage_main); any other exception is a bug and keeps its traceback."""


class DataError(PipelineError, ValueError):
    """Bad input data. The message always names the offending file (or parameter key)."""


def voc_palette() -> list[int]:
    """The PASCAL VOC colour map (bit-interleaved), 256 RGB triples flattened; 255 is void (224, 224, 192)."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


OUTPUT_MARK = ".segsort-output"  # inside every folder this project writes: the only folders it ever replaces


def refuse_foreign_folder(path: Path) -> None:
    """DataError if `path` is a folder this project did not write (it lacks OUTPUT_MARK): such a folder may hold
    a user's files, and an output is never allowed to replace it."""
    if path.is_dir() and not path.is_symlink() and not (path / OUTPUT_MARK).is_file():
        raise DataError(f"{path}: a folder that segsort did not write is in the way of this output; "
                        f"remove it or choose another path")


def work_folder(path: Path) -> Path:
    """A new hidden folder beside `path` (its parents created) to build `path` in; DataError naming `path` if
    its folder cannot be written (read-only, no permission), rather than an OSError traceback."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as err:
        raise DataError(f"{path}: cannot be written ({path.parent}: {err.strerror})") from None


def move_onto(new: Path, path: Path, trash: Path) -> None:
    """Rename the finished output `new` onto `path`. An earlier output of this project's at `path` is moved
    into `trash` (a work folder the caller removes); anything else in the way is refused, never deleted."""
    if new.is_dir():
        (new / OUTPUT_MARK).touch()
    if path.is_dir() and not path.is_symlink():
        refuse_foreign_folder(path)
        if not new.is_dir():
            raise DataError(f"{path}: is a folder, and this output is a file")
        os.replace(path, trash / "replaced")
    elif new.is_dir() and path.exists():
        raise DataError(f"{path}: is a file, and this output is a folder")
    os.replace(new, path)


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds, so a crashed
    stage never leaves a half-written output. Works for files and folders.

    Nothing the project did not write is lost: a file at `path` is replaced by a file (it is this output's
    earlier version), a folder only by a folder, and only one that carries OUTPUT_MARK. A folder in the way
    or a parent that cannot be written is refused before the block runs.
    """
    path = Path(path)
    refuse_foreign_folder(path)
    work = work_folder(path)
    try:
        yield work / path.name
        move_onto(work / path.name, path, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class ResumableFolder:
    """An output folder built one item at a time that survives an interrupted run.

    Items are written into `.<name>.partial/` beside the final folder, each one atomically; a rerun with
    the same `fingerprint` (what the items depend on: parameters, input files) keeps the finished items
    and redoes only the rest, a different fingerprint starts over. `finish()` renames the work folder onto
    the final path, so the final folder only ever appears complete.
    """

    def __init__(self, path: str | Path, fingerprint: str):
        self.path = Path(path)
        refuse_foreign_folder(self.path)
        self.work = self.path.parent / f".{self.path.name}.partial"
        stamp = self.work / ".fingerprint"
        if self.work.is_dir() and not (stamp.is_file() and stamp.read_text() == fingerprint):
            shutil.rmtree(self.work)
        work_folder(self.path).rmdir()  # a DataError now if the parent cannot be written
        self.work.mkdir(parents=True, exist_ok=True)
        for leftover in self.work.rglob(".*.tmp*"):  # an item interrupted while being written
            leftover.unlink()
        stamp.write_text(fingerprint)

    def done(self, *relative: str) -> bool:
        """Whether all the given files of an item are already written."""
        return all((self.work / name).is_file() for name in relative)

    def finish(self) -> None:
        (self.work / ".fingerprint").unlink()
        trash = work_folder(self.path)
        try:
            move_onto(self.work, self.path, trash)
        finally:
            shutil.rmtree(trash, ignore_errors=True)


def files_fingerprint(paths, extra) -> str:
    """A digest of `extra` (JSON-able, e.g. parameters) and the name, size and mtime of each input file."""
    entries = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in map(Path, paths)]
    return hashlib.sha256(json.dumps([extra, entries], sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def atomic_file(path: str | Path):
    """Yield a hidden temporary path beside `path`, renamed onto `path` if the block succeeds.

    The temporary name keeps the suffix, so writers that pick the format from it (PIL) still work.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """Write a uint8 label map as a VOC-style palette PNG (not atomic: callers write into a temp dir)."""
    if labels.dtype != np.uint8:
        raise ValueError(f"{path}: label map must be uint8, got {labels.dtype}")
    img = Image.fromarray(labels, mode="P")
    img.putpalette(voc_palette())
    img.save(path)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")  # what read_image is given to read


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (no extra disk space) where the file system allows it, a copy otherwise."""
    if not src.is_file():
        raise DataError(f"{src}: file is missing")
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


CONVERSIONS_SAID: set[str] = set()  # image modes whose conversion to 8-bit RGB this process has reported


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3). Greyscale, palette, RGBA (alpha dropped) and 16-bit or float
    images are converted, 16-bit ones scaled to 0..255 rather than clipped; each kind of conversion is said
    once per process on stderr. Raises DataError naming the file if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file is missing")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode == "RGB":
                return np.asarray(img, dtype=np.uint8).copy()
            if mode.startswith("I;16") or mode in ("I", "F"):  # PIL's convert("RGB") would clip these at 255
                values = np.asarray(img).astype(np.float64)
                top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
                grey = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
                rgb = np.repeat(grey[..., None], 3, axis=2)
            else:
                rgb = np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot decode image ({err})") from err
    if mode not in CONVERSIONS_SAID:
        CONVERSIONS_SAID.add(mode)
        print(f"note: {mode} images are converted to 8-bit RGB (the first: {path})", file=sys.stderr)
    return rgb


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file from its header alone; DataError naming the file if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file is missing")
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{path}: cannot decode image ({err})") from err


def read_label_map(path: str | Path, shape: tuple[int, int] | None = None,
                   num_classes: int | None = None) -> np.ndarray:
    """Read a palette/grey PNG of class ids as uint8 (H, W).

    Checks the size against `shape` (the image's H, W) and the ids against `num_classes`
    (255 = ignore is always allowed), raising DataError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label file is missing")
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L", "I", "I;16"):
                raise DataError(f"{path}: label map must be a palette or grey PNG, got mode {img.mode}")
            labels = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{path}: cannot decode label map ({err})") from err
    if shape is not None and labels.shape != tuple(shape):
        raise DataError(f"{path}: label map is {labels.shape[1]}x{labels.shape[0]} (WxH) "
                        f"but the image is {shape[1]}x{shape[0]}")
    if num_classes is not None:
        bad = (labels >= num_classes) & (labels != IGNORE_LABEL)
        if bad.any():
            raise DataError(f"{path}: label ids {sorted(np.unique(labels[bad]).tolist())[:10]} are out of "
                            f"range (expected 0..{num_classes - 1} or {IGNORE_LABEL})")
    if labels.dtype != np.uint8:
        if labels.max(initial=0) > 255:
            raise DataError(f"{path}: label ids above 255 do not fit the uint8 label format")
        labels = labels.astype(np.uint8)
    return labels


def read_id_list(path: str | Path) -> list[str]:
    """Read an ImageSets-style list of image ids; an empty or missing list is an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image list is missing")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{path}: image list is empty")
    return ids
