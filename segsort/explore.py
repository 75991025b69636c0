"""`segsort explore`: one self-contained HTML page to explore a model's predictions in a browser.

Each photo is shown with its predicted labels (a colour overlay, a legend of class names). Clicking a pixel
selects its segment: the segment is outlined, and a panel lists its k nearest bank segments, each a crop of
its training image with the segment outlined, with its label, cosine similarity, image id and bank row, and
the vote count per class. Everything is inside the one file (images as base64 data URIs, inline script and
style, no network), so it opens from file:// and can be sent on as it is.

The page holds, per photo, its labels and segment ids run-length encoded, and, per bank row it shows, one
JPEG thumbnail (at most THUMBNAIL_SIDE pixels a side): a row retrieved by several segments is stored once.
"""
from __future__ import annotations

import base64
import html
import io
import json
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from segsort.bank import Provenance
from segsort.explain import PALETTE, outlined, training_image
from segsort.io import DataError
from segsort.segmenter import Result, Segmenter

THUMBNAIL_SIDE = 96   # a neighbour's crop, longest side in pixels
DISPLAY_SIDE = 800    # a photo larger than this is shown (and its maps stored) at this longest side
MIN_DISPLAY_SIDE = 400  # a smaller photo is shown enlarged to this longest side (at most 3 times)


def data_uri(image: np.ndarray, quality: int = 85) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def run_lengths(values: np.ndarray) -> list[int]:
    """A map's values in row-major order as [value, count, value, count, ...]."""
    flat = values.ravel()
    starts = np.flatnonzero(np.concatenate([[True], flat[1:] != flat[:-1]]))
    counts = np.diff(np.concatenate([starts, [len(flat)]]))
    return np.stack([flat[starts], counts], axis=1).ravel().tolist()


@lru_cache(maxsize=4)
def cached_training_image(root: Path, image_id: str) -> np.ndarray:
    return training_image(root, image_id)


def neighbour_thumbnail(dataset_root: Path, found: Provenance, margin: float = 0.25) -> tuple[np.ndarray, str | None]:
    """(thumbnail, None): the training segment outlined on its image, cropped around its bbox with some
    context as `segsort explain` draws it; (its mask alone, why) if the training image cannot be read."""
    top, left, bottom, right = found.bbox
    root = getattr(found, "source", None) or dataset_root  # a row grown into the bank: its addition's folder
    try:
        image = cached_training_image(Path(root), found.image_id)
    except DataError as err:
        crop = np.where(found.mask[..., None], np.uint8(235), np.uint8(40)).repeat(3, axis=2)
        crop = outlined(crop, found.mask, (255, 255, 0), dim=False)
        return shrunk(crop), str(err)
    pad_y, pad_x = round(margin * (bottom - top)) + 2, round(margin * (right - left)) + 2
    window = (slice(max(top - pad_y, 0), bottom + pad_y), slice(max(left - pad_x, 0), right + pad_x))
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[top:bottom, left:right] = found.mask
    return shrunk(outlined(image[window], mask[window], (255, 255, 0), dim=True)), None


def shrunk(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """The image with its longest side at most `side` (area interpolation); a smaller one as it is."""
    if max(image.shape[:2]) <= side:
        return image
    factor = side / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class ExplorePage:
    """The page's data, added photo by photo (each photo's result is dropped once it is added)."""

    def __init__(self, segmenter: Segmenter, dataset_root: Path, title: str):
        self.segmenter, self.dataset_root, self.title = segmenter, Path(dataset_root), title
        self.images: list[dict] = []
        self.rows: dict[int, dict] = {}  # bank row -> what its cards show

    def add(self, name: str, image: np.ndarray, result: Result) -> None:
        height, width = image.shape[:2]
        labels, segment_map = result.labels, result.segment_map
        if max(height, width) > DISPLAY_SIDE:  # shown smaller: the maps shrink with it (nearest)
            factor = DISPLAY_SIDE / max(height, width)
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
            segment_map = cv2.resize(segment_map, size, interpolation=cv2.INTER_NEAREST)
        zoom = round(max(1.0, min(3.0, MIN_DISPLAY_SIDE / max(image.shape[:2]))), 3)
        segments = {segment.id: {"label": segment.label, "votes": segment.votes.tolist(), "pixels": segment.pixels,
                                 "neighbours": [[n.index, n.similarity] for n in segment.neighbours]}
                    for segment in result.segments}
        new = {n.index: n for segment in result.segments for n in segment.neighbours if n.index not in self.rows}
        for index, n in sorted(new.items()):  # by row: a training image's rows follow each other in the bank
            thumbnail, missing = neighbour_thumbnail(self.dataset_root, n.provenance)
            self.rows[index] = {"image_id": n.image_id, "label": n.label, "thumbnail": data_uri(thumbnail),
                                "missing": missing}
        self.images.append({
            "name": name, "width": image.shape[1], "height": image.shape[0], "zoom": zoom,
            "full_size": [width, height], "photo": data_uri(image, quality=90),
            "labels": run_lengths(labels), "segments": run_lengths(segment_map),
            "classes": sorted(int(c) for c in np.unique(labels)), "evidence": segments})

    def html(self) -> str:
        config = self.segmenter.config
        bank = self.segmenter.bank
        data = {"classes": list(self.segmenter.class_names),
                "palette": [PALETTE[c].tolist() for c in range(len(self.segmenter.class_names))],
                "k": config.knn_k, "images": self.images, "rows": {str(k): v for k, v in self.rows.items()}}
        multi_view = tuple(config.scales) != (1.0,) or config.flip
        settings = (f"bank {bank.path.name} ({len(bank)} segments); k = {config.knn_k} nearest; "
                    f"k-means grid {config.grid[0]}x{config.grid[1]}, {config.kmeans_iterations} iterations"
                    + (f"; labels voted over scales {', '.join(map(str, config.scales))}"
                       f"{' and their mirrors' if config.flip else ''}, segments shown of the scale-1 view"
                       if multi_view else ""))
        payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
        return (PAGE.replace("{{title}}", html.escape(self.title)).replace("{{settings}}", html.escape(settings))
                .replace("{{data}}", payload))

    def write(self, path: str | Path) -> int:
        text = self.html()
        Path(path).write_text(text, encoding="utf-8")
        return len(text.encode("utf-8"))


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{title}}</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #f4f4f2; }
  header { padding: 10px 18px; background: #263238; color: #eceff1; }
  header h1 { font-size: 17px; margin: 0 0 3px 0; }
  header p { font-size: 12px; margin: 0; color: #b0bec5; }
  main { display: flex; align-items: flex-start; gap: 16px; padding: 14px 18px; }
  #photos { flex: 1 1 auto; display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; min-width: 0; }
  .photo { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; }
  .photo h2 { font-size: 13px; margin: 0 0 6px 0; font-weight: 600; }
  .photo canvas { display: block; cursor: crosshair; image-rendering: pixelated; }
  .photo.selected { border-color: #f9a825; box-shadow: 0 0 0 2px #f9a825; }
  .controls { font-size: 12px; margin: 6px 0 4px 0; color: #555; }
  .legend { display: flex; flex-wrap: wrap; gap: 4px 10px; font-size: 12px; max-width: 480px; }
  .chip { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 4px;
          vertical-align: -1px; border: 1px solid rgba(0,0,0,.25); }
  #panel { flex: 0 0 460px; position: sticky; top: 10px; max-height: calc(100vh - 20px); overflow-y: auto;
           background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 10px 12px; font-size: 13px; }
  #panel h3 { font-size: 14px; margin: 0 0 6px 0; }
  #panel .hint { color: #777; }
  .votes { margin: 6px 0 10px 0; }
  .vote { display: flex; align-items: center; gap: 6px; font-size: 12px; margin: 2px 0; }
  .vote .name { width: 110px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .vote .bar { height: 10px; border-radius: 2px; }
  .vote.winner .name { font-weight: 700; }
  .neighbours { display: grid; grid-template-columns: repeat(auto-fill, 104px); gap: 8px; }
  .neighbour { margin: 0; width: 104px; font-size: 11px; }
  .neighbour .thumb { width: 96px; height: 96px; display: flex; align-items: center; justify-content: center;
                      background: #222; border: 4px solid #999; border-radius: 3px; }
  .neighbour img { max-width: 96px; max-height: 96px; }
  .neighbour figcaption { margin-top: 2px; line-height: 1.3; overflow-wrap: anywhere; }
  .neighbour .missing { color: #b71c1c; }
  .muted { color: #777; }
</style>
</head>
<body>
<header><h1>{{title}}</h1><p>{{settings}}. Click a pixel to see the training segments that voted for its segment.</p></header>
<main>
  <div id="photos"></div>
  <aside id="panel"><p class="hint">Click any pixel of a photo: its segment is outlined here with the k nearest
    segments of the prototype bank that voted for its label.</p></aside>
</main>
<script type="application/json" id="data">{{data}}</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const rgb = c => `rgb(${DATA.palette[c].join(",")})`;

function decodeRuns(runs, n) {
  const out = new Int32Array(n);
  let at = 0;
  for (let i = 0; i < runs.length; i += 2) { out.fill(runs[i], at, at + runs[i + 1]); at += runs[i + 1]; }
  return out;
}

function element(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "style") node.style.cssText = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

class PhotoView {
  constructor(index, info) {
    this.index = index; this.info = info; this.selected = null; this.overlayOn = true; this.opacity = 0.5;
    const w = info.width, h = info.height;
    this.labels = decodeRuns(info.labels, w * h);
    this.segments = decodeRuns(info.segments, w * h);
    this.canvas = element("canvas", {width: w, height: h, class: "scene",
                                     style: `width:${w * info.zoom}px;height:${h * info.zoom}px`});
    this.ctx = this.canvas.getContext("2d");
    this.overlay = this.paint((i, px) => {
      const c = this.labels[i];
      if (c === 0) return;  // background is left untinted, as segsort predict's overlays
      px.set([...DATA.palette[c], 255], 4 * i);
    });
    const toggle = element("input", {type: "checkbox", checked: ""});
    toggle.addEventListener("change", () => { this.overlayOn = toggle.checked; this.draw(); });
    const slider = element("input", {type: "range", min: "0", max: "100", value: "50"});
    slider.addEventListener("input", () => { this.opacity = slider.value / 100; this.draw(); });
    const legend = element("div", {class: "legend"});
    for (const c of info.classes) legend.append(element("span", {}, element("span", {class: "chip", style: `background:${rgb(c)}`}), DATA.classes[c]));
    this.section = element("section", {class: "photo", id: `photo-${index}`},
      element("h2", {}, `${info.name} `, element("span", {class: "muted"}, `${info.full_size[0]}\u00d7${info.full_size[1]}`)),
      this.canvas,
      element("div", {class: "controls"}, element("label", {}, toggle, " labels"), " \u2003opacity ", slider),
      legend);
    document.getElementById("photos").append(this.section);
    this.photo = new Image();
    this.photo.onload = () => this.draw();
    this.photo.src = info.photo;
    this.canvas.addEventListener("click", event => {
      const box = this.canvas.getBoundingClientRect();
      const x = Math.min(w - 1, Math.max(0, Math.floor((event.clientX - box.left) * w / box.width)));
      const y = Math.min(h - 1, Math.max(0, Math.floor((event.clientY - box.top) * h / box.height)));
      select(this.index, this.segments[y * w + x], x, y);
    });
  }

  paint(pixel) {  // an offscreen canvas with pixel(i, data) setting the RGBA of pixel i
    const w = this.info.width, h = this.info.height;
    const layer = element("canvas", {width: w, height: h});
    const image = layer.getContext("2d").createImageData(w, h);
    for (let i = 0; i < w * h; i++) pixel(i, image.data);
    layer.getContext("2d").putImageData(image, 0, 0);
    return layer;
  }

  select(id) {
    this.selected = id;
    this.section.classList.toggle("selected", id !== null);
    if (id !== null) {
      const w = this.info.width, h = this.info.height, s = this.segments;
      this.outline = this.paint((i, px) => {
        if (s[i] !== id) { px.set([0, 0, 0, 90], 4 * i); return; }  // the rest dimmed
        const x = i % w, y = (i - x) / w;
        const inside = (u, v) => u >= 0 && v >= 0 && u < w && v < h && s[v * w + u] === id;
        const edge = [1, 2].some(d => !inside(x - d, y) || !inside(x + d, y) || !inside(x, y - d) || !inside(x, y + d));
        if (edge) px.set([255, 235, 0, 255], 4 * i);  // a 2-pixel outline inside the segment
      });
    }
    this.draw();
  }

  draw() {
    const ctx = this.ctx;
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (this.photo.complete) ctx.drawImage(this.photo, 0, 0, this.canvas.width, this.canvas.height);
    if (this.overlayOn) { ctx.globalAlpha = this.opacity; ctx.drawImage(this.overlay, 0, 0); ctx.globalAlpha = 1; }
    if (this.selected !== null) ctx.drawImage(this.outline, 0, 0);
  }
}

const views = DATA.images.map((info, i) => new PhotoView(i, info));

function select(index, id, x, y) {
  views.forEach((view, i) => view.select(i === index ? id : null));
  const info = DATA.images[index], segment = info.evidence[id];
  const panel = document.getElementById("panel");
  panel.replaceChildren();
  panel.dataset.photo = index; panel.dataset.segment = id;
  const k = segment.neighbours.length, won = segment.votes[segment.label];
  panel.append(element("h3", {}, element("span", {class: "chip", style: `background:${rgb(segment.label)}`}),
    `${DATA.classes[segment.label]}`, element("span", {class: "muted"}, ` \u2014 segment ${id} of ${info.name}`)));
  panel.append(element("div", {class: "muted"}, `pixel (${x}, ${y}); ${segment.pixels} pixels; ${won} of ${k} votes`));
  const votes = element("div", {class: "votes"});
  const order = segment.votes.map((count, c) => [count, c]).filter(([count]) => count > 0)
                             .sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [count, c] of order) {
    votes.append(element("div", {class: "vote" + (c === segment.label ? " winner" : ""), "data-class": c, "data-count": count},
      element("span", {class: "name"}, element("span", {class: "chip", style: `background:${rgb(c)}`}), DATA.classes[c]),
      element("span", {class: "bar", style: `width:${Math.round(240 * count / k)}px;background:${rgb(c)}`}),
      element("span", {}, String(count))));
  }
  panel.append(element("div", {}, "Votes per class"), votes);
  panel.append(element("div", {}, `Its ${k} nearest bank segments, most similar first`));
  const grid = element("div", {class: "neighbours"});
  segment.neighbours.forEach(([row, similarity], rank) => {
    const found = DATA.rows[row];
    const caption = element("figcaption", {},
      element("span", {class: "chip", style: `background:${rgb(found.label)}`}), `${DATA.classes[found.label]} `,
      element("b", {}, similarity.toFixed(3)), element("br"),
      element("span", {class: "muted"}, `${found.image_id} \u00b7 row ${row}`));
    if (found.missing) caption.append(element("br"), element("span", {class: "missing", title: found.missing},
                                                              "image not found: mask only"));
    grid.append(element("figure", {class: "neighbour", "data-rank": rank, "data-row": row, "data-label": found.label,
                                   "data-similarity": String(similarity), "data-image-id": found.image_id},
      element("div", {class: "thumb", style: `border-color:${rgb(found.label)}`},
              element("img", {src: found.thumbnail, alt: `${found.image_id}, row ${row}`})),
      caption));
  });
  panel.append(grid);
}
</script>
</body>
</html>
"""
