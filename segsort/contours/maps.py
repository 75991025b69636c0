"""Contour maps (H, W) in [0, 1]: their 16-bit PNG files, the orientation of their contours and their
thinning. Both HED (which writes them) and owt-ucm (which reads them and needs their orientation) build
on this module, and neither imports the other."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy.ndimage import convolve1d, map_coordinates

from segsort.io import DataError


def triangle_smooth(image: np.ndarray, radius: int = 4) -> np.ndarray:
    """Separable triangle filter [1 2 .. r+1 .. 2 1] / (r+1)^2, symmetric padding (convTri)."""
    kernel = np.r_[np.arange(1, radius + 2), np.arange(radius, 0, -1)] / float(radius + 1) ** 2
    out = convolve1d(image, kernel, axis=0, mode="reflect")
    return convolve1d(out, kernel, axis=1, mode="reflect")


def gradient(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.gradient along rows and columns; 0 along an axis of length 1."""
    return tuple(np.gradient(a, axis=axis) if a.shape[axis] > 1 else np.zeros_like(a) for axis in (0, 1))


def contour_orientation(contours: np.ndarray, radius: int = 4) -> np.ndarray:
    """Orientation of the contour normal in [0, pi), x = columns, y = rows (down).

    O = atan(E_yy * sign(-E_xy) / E_xx) of the triangle-smoothed E, as in the structured-edge toolbox (and
    `hg.gradient_orientation`), except that sign(0) counts as +1: with the plain sign an exactly
    axis-aligned horizontal contour (E_xy == 0) would get orientation 0 instead of pi/2.
    """
    smooth = triangle_smooth(np.asarray(contours, dtype=np.float64), radius)
    dy, dx = gradient(smooth)
    dyy, dxy = gradient(dy)
    _, dxx = gradient(dx)
    sign = np.where(dxy > 0, -1.0, 1.0)
    return np.mod(np.arctan2(dyy * sign, dxx), np.pi)


def thin_contours(contours: np.ndarray, radius: int = 1, border: int = 5, multiplier: float = 1.01) -> np.ndarray:
    """Non-maximum suppression of a contour map along its gradient orientation (structured-edge style).

    A pixel is kept only if its value times `multiplier` is at least the values interpolated at distances
    1..radius on both sides along the orientation (estimated from second derivatives of the
    triangle-smoothed map); values within `border` pixels of the image border fade linearly to 0.
    Not used by default: HED-owt-ucm works on the raw HED map (the watershed finds the crest lines).
    """
    e = np.asarray(contours, dtype=np.float64)
    h, w = e.shape
    theta = contour_orientation(e)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    keep = np.ones((h, w), dtype=bool)
    for d in range(-radius, radius + 1):
        if d == 0:
            continue
        r = np.clip(rows + d * np.sin(theta), 0, h - 1)
        c = np.clip(cols + d * np.cos(theta), 0, w - 1)
        neighbour = map_coordinates(e, [r, c], order=1, mode="nearest")
        keep &= e * multiplier >= neighbour
    out = np.where(keep, e, 0.0)
    if border > 0:
        fade_r = np.minimum(np.minimum(np.arange(h), np.arange(h)[::-1]) / border, 1.0)
        fade_c = np.minimum(np.minimum(np.arange(w), np.arange(w)[::-1]) / border, 1.0)
        out *= np.minimum(fade_r[:, None], fade_c[None, :])
    return out.astype(np.float32)


def save_contours(path: str | Path, contours: np.ndarray) -> None:
    """Write a contour map in [0, 1] as a 16-bit grey PNG, round(p * 65535) (not atomic)."""
    values = np.round(np.clip(np.asarray(contours, dtype=np.float64), 0.0, 1.0) * 65535).astype(np.uint16)
    Image.fromarray(values).save(path)


def load_contours(path: str | Path) -> np.ndarray:
    """Read a contour map PNG (16-bit grey as written by save_contours, or 8-bit grey) as float32 in [0, 1].

    Raises DataError naming the file if it is missing, corrupt or not a grey PNG.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: contour map is missing")
    try:
        with Image.open(path) as img:
            mode = img.mode
            values = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot decode contour map ({err})") from err
    if mode == "L":
        scale = 255.0
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        scale = 65535.0
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise DataError(f"{path}: contour map values are outside 0..65535")
    else:
        raise DataError(f"{path}: contour map must be a grey PNG (8 or 16 bit), got mode {mode}")
    if values.ndim != 2:
        raise DataError(f"{path}: contour map must be 2-D, got shape {values.shape}")
    return (values.astype(np.float64) / scale).astype(np.float32)
