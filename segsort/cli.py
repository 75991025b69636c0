"""`segsort predict`, `segsort explain` and `segsort check-dataset`: trained models on your own images, and
your own dataset folders checked before the pipeline reads them.

    segsort predict --model M.pt --bank M.h5 photos/ --out labelled/
    segsort explain photo.jpg --model M.pt --bank M.h5 --out why.png
    segsort explore photos/ --model M.pt --bank M.h5 --out page.html   # click a segment: what voted for it
    segsort check-dataset /data/my_labels --dataset my_labels   # every problem of a folder of your own
    segsort bank add more_labels/ --bank M.h5 --model M.pt --classes background,cat,kiwi  # grow a bank
    segsort compare-run                  # after a run: the first stage and training step that part from git's

Inference settings (k-means iterations, k of kNN, scales, flip, the longest side an image is labelled
at) come from the active preset of --params (params.yaml by default); class names from the bank. A
softmax model needs no bank. predict writes <name>.png and <name>_overlay.jpg per image (<name> is the
image's stem, with its suffix where two images share one: x_jpg, x_png).

Outputs never cost you a file: before the model loads, an --out that is an input, a folder where a file is
wanted (or a file where a folder is), a folder that cannot be written, or an existing output without
--overwrite is refused in one line.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from PIL import Image

from segsort.checkpoint import load_model
from segsort.data.own import check_dataset, problems_count, reads_masks
from segsort.explain import PALETTE, explained_queries, retrieval_figure
from segsort.explore import ExplorePage
from segsort.inference import bounded
from segsort.io import IMAGE_SUFFIXES, DataError, PipelineError, atomic_path, read_image, write_label_png
from segsort.provenance import compare_run
from segsort.segmenter import Segmenter
from segsort.stage import add_device_argument, load_params, setup_torch, stage_device



def load_segmenter(args, params: dict) -> Segmenter:
    """The model on its device and, for a SegSort model, its bank, refused if made by another model."""
    return Segmenter.for_model(load_model(args.model).to(stage_device(args.device)), args.model, args.bank, params)


def retrieval_segmenter(args, shown: str) -> tuple[dict, Segmenter, Path]:
    """(params, segmenter, dataset root) of a command that shows the bank segments a label came from (explain,
    explore): a softmax model, which has no bank, is refused; `shown` says what the command shows."""
    params = load_params(args.params)
    setup_torch(params)
    segmenter = load_segmenter(args, params)
    if segmenter.bank is None:
        raise DataError(f"{args.model}: a softmax model has no retrieved segments to {shown}")
    return params, segmenter, args.dataset_root or Path(segmenter.bank.attrs["dataset_root"])


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Each non-background pixel tinted with its class colour."""
    out = image.astype(np.float32)
    tinted = labels != 0
    out[tinted] = (1 - alpha) * out[tinted] + alpha * PALETTE[labels[tinted]]
    return out.astype(np.uint8)


def output_stems(images: list[Path]) -> dict[Path, str]:
    """Each image's output name: its stem, or stem_suffix where two images share a stem (x.jpg, x.png)."""
    stems = [path.stem for path in images]
    return {path: path.stem if stems.count(path.stem) == 1 else f"{path.stem}_{path.suffix.lower().lstrip('.')}"
            for path in images}


def writable(folder: Path, out: Path) -> None:
    """DataError unless `folder` exists and a file can be created in it: said before the model loads."""
    if not folder.is_dir():
        raise DataError(f"--out {out}: there is no folder {folder} to write it in")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise DataError(f"--out {out}: {folder} cannot be written ({err.strerror})") from None


def check_out_file(out: Path, inputs: list[Path], overwrite: bool, suffixes) -> None:
    """A single-file --out: a new file, or an earlier output with --overwrite; never an input or a folder."""
    if out.resolve() in {path.resolve() for path in inputs}:
        raise DataError(f"--out {out}: is the input; choose another file")
    if out.is_dir():
        example = "explained.png" if "png" in suffixes else f"explained.{max(suffixes)}"
        raise DataError(f"--out {out}: is a folder; give the file to write, e.g. {out / example}")
    if out.suffix.lower().lstrip(".") not in suffixes:
        raise DataError(f"--out {out}: give a file name ending in one of .{', .'.join(sorted(suffixes))}")
    if out.exists() and not overwrite:
        raise DataError(f"--out {out}: exists; add --overwrite to replace it")
    writable(out.parent, out)


def prediction_outputs(images: list[Path], folder: Path, out: Path, overwrite: bool) -> dict[Path, tuple[Path, Path]]:
    """Each image's (label PNG, overlay JPEG) under `out`; DataError if `out` is the input folder (outputs
    elsewhere cannot replace an input) or a file, cannot be written, or holds an output without --overwrite."""
    if out.resolve() == folder.resolve():
        raise DataError(f"--out {out}: is the folder of input images; a second run would label the outputs too. "
                        f"Choose another folder")
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: is a file; give a folder")
    writable(out if out.is_dir() else out.parent, out)
    outputs = {path: (out / f"{stem}.png", out / f"{stem}_overlay.jpg") for path, stem in output_stems(images).items()}
    targets = [target for pair in outputs.values() for target in pair]
    existing = [str(target) for target in targets if target.exists()]
    if existing and not overwrite:
        raise DataError(f"--out {out}: {len(existing)} output file(s) exist ({', '.join(existing[:3])}); "
                        f"add --overwrite to replace them")
    return outputs


def listed_images(folder: Path) -> list[Path]:
    """The images of a folder, by suffix; the other files are named in one line, not skipped silently."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) \
        if folder.is_dir() else []
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    others = [p.name for p in files if p not in images]
    if not images:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    if others:
        print(f"note: {len(others)} file(s) skipped, not {'/'.join(IMAGE_SUFFIXES)} images: "
              f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''}", file=sys.stderr)
    return images


def predict(args) -> int:
    images = listed_images(args.images)
    outputs = prediction_outputs(images, args.images, args.out, args.overwrite)
    params = load_params(args.params)
    setup_torch(params)
    segmenter = load_segmenter(args, params)
    args.out.mkdir(exist_ok=True)
    failed = []
    for path, image in read_each(images, failed):
        labels = segmenter(image, evidence=False).labels
        label_path, overlay_path = outputs[path]
        with atomic_path(label_path) as tmp:
            write_label_png(tmp, labels)
        with atomic_path(overlay_path) as tmp:
            Image.fromarray(overlay(image, labels)).save(tmp, format="JPEG", quality=92)
        found = ", ".join(segmenter.class_names[c] for c in np.unique(labels))
        print(f"{path.name}: {found}")
    print(f"{len(images) - len(failed)} of {len(images)} images labelled into {args.out}")
    return status_of(failed)


def read_each(images: list[Path], failed: list[Path]):
    """(path, image) of each image that reads; each other one is named on stderr and appended to `failed`."""
    for path in images:
        try:
            image = read_image(path)
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            failed.append(path)
            continue
        yield path, image


def status_of(failed: list[Path]) -> int:
    """The exit status of a command over several images: 1, naming them, if some could not be read."""
    if failed:
        print(f"error: {len(failed)} image(s) could not be read: {', '.join(str(p) for p in failed)}",
              file=sys.stderr)
        return 1
    return 0


def explain(args) -> int:
    check_out_file(args.out, [args.image], args.overwrite, FigureCanvasBase.get_supported_filetypes())
    params, segmenter, dataset_root = retrieval_segmenter(args, "explain its labels")
    image = bounded(read_image(args.image), params["inference"]["max_side"])
    queries = explained_queries(segmenter.segments(image, args.neighbours)[1], args.segments)
    with atomic_path(args.out) as tmp:
        retrieval_figure([(args.image.stem, image, queries)], dataset_root, segmenter.class_names, tmp,
                         f"{args.image.name}: its segments and the training segments they retrieved")
    print(f"{args.out}: {len(queries)} segments explained")
    return 0


def explore(args) -> int:
    """One self-contained HTML page of an image or a folder's images (segsort.explore)."""
    if not args.images.is_dir() and not args.images.is_file():
        raise DataError(f"{args.images}: no such image or folder")
    images = listed_images(args.images) if args.images.is_dir() else [args.images]
    check_out_file(args.out, images, args.overwrite, {"html", "htm"})
    _, segmenter, dataset_root = retrieval_segmenter(args, "explore")
    page = ExplorePage(segmenter, dataset_root, f"segsort explore: {args.model}")
    failed = []
    for path, image in read_each(images, failed):
        result = segmenter(image)
        page.add(path.name, image, result)
        print(f"{path.name}: {len(result.segments)} segments, "
              f"{', '.join(segmenter.class_names[c] for c in np.unique(result.labels))}")
    if not page.images:
        raise DataError(f"{args.images}: no image could be read")
    with atomic_path(args.out) as tmp:
        size = page.write(tmp)
    print(f"{args.out}: {len(page.images)} of {len(images)} images, {len(page.rows)} bank segments shown "
          f"({size / 1e6:.1f} MB); open it in a browser")
    return status_of(failed)


def check_dataset_command(args) -> int:
    classes, palette = None, None
    if args.dataset:
        declared = load_params(args.params)["datasets"]
        if args.dataset not in declared:
            raise DataError(f"{args.params}: datasets.{args.dataset} is not declared (declared: {sorted(declared)})")
        classes, palette = declared[args.dataset].get("classes"), declared[args.dataset].get("palette")
    elif args.classes:
        classes = args.classes.split(",")
    images_only = bool(args.dataset) and not classes  # declared without classes: its build never reads masks
    problems = check_dataset(args.root, classes, palette, images_only)
    if classes:
        kind = f"labelled, {len(classes)} classes"
    elif reads_masks(args.root, classes, images_only):
        kind = "labelled: masks decoded and sized; class ids not checked: give --classes or --dataset"
    else:
        kind = "images only"
    for line in problems:
        print(line)
    if problems:
        print(f"{args.root}: {problems_count(problems)} ({kind})", file=sys.stderr)
        return 1
    print(f"{args.root}: no problems ({kind})")
    return 0


def bank_add_command(args) -> int:
    """Grow a bank by a folder's labelled segments (segsort.grow), with the folder's classes as
    check-dataset takes them: --dataset (params.yaml declaration), --classes, or else the bank's."""
    from segsort.grow import add_folder

    params = load_params(args.params)
    classes, palette = None, None
    if args.dataset:
        if args.dataset not in params["datasets"]:
            raise DataError(f"{args.params}: datasets.{args.dataset} is not declared "
                            f"(declared: {sorted(params['datasets'])})")
        classes, palette = params["datasets"][args.dataset].get("classes"), params["datasets"][args.dataset].get("palette")
        if not classes:
            raise DataError(f"{args.params}: datasets.{args.dataset} declares no classes: an images-only folder "
                            f"has no labelled segments to add")
    elif args.classes:
        classes = args.classes.split(",")
    setup_torch(params)
    added = add_folder(args.bank, args.model, args.folder, params, stage_device(args.device), classes, palette,
                       args.split, args.out)
    new = f"; new classes: {', '.join(added['classes_added'])}" if added["classes_added"] else ""
    grown = f"{args.bank}" if args.out is None else f"{args.out} ({args.bank} grown)"
    print(f"{grown}: {added['segments']} segments of {added['images']} images from {args.folder} added{new}")
    return 0


def compare_run_command(args) -> int:
    parting = compare_run(args.run, args.reference)
    if parting is None:
        print(f"{args.run}: every stage built is the same as the committed run's")
        return 0
    print(parting)
    return 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="segsort", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True)
    c = commands.add_parser("check-dataset", help="report every problem of a dataset folder, one line per file")
    c.add_argument("root", type=Path, help="the folder: JPEGImages/, SegmentationClass/, ImageSets/Segmentation/")
    c.add_argument("--dataset", help="its declaration in params.yaml datasets (classes, palette)")
    c.add_argument("--classes", help="comma-separated class names, instead of --dataset (none: images only)")
    c.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    c = commands.add_parser("bank", help="grow a prototype bank: segsort bank add")
    c = c.add_subparsers(dest="bank_command", required=True).add_parser(
        "add", help="add the labelled segments of a folder of images and masks to a bank, with its model")
    c.add_argument("folder", type=Path, help="the folder: JPEGImages/, SegmentationClass/ (optional "
                                             "ImageSets/Segmentation/), as check-dataset reads it")
    c.add_argument("--bank", required=True, type=Path, help="the prototype bank to grow (replaced when complete)")
    c.add_argument("--out", type=Path, help="write the grown bank here instead, and leave --bank as it is")
    c.add_argument("--model", required=True, type=Path, help="the model checkpoint that made the bank")
    c.add_argument("--classes", help="comma-separated class names of the masks' ids 0, 1, ... (default: the "
                                     "bank's); names the bank lacks are added")
    c.add_argument("--dataset", help="instead of --classes: the folder's declaration in params.yaml datasets "
                                     "(classes, palette)")
    c.add_argument("--split", help="add only the images of ImageSets/Segmentation/<split>.txt (default: every "
                                   "image with a mask)")
    c.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    add_device_argument(c)
    c = commands.add_parser("compare-run", help="name the first stage, and training step, where a run parts "
                                                 "from the committed one (dvc.lock, reports/<dataset>/training/)")
    c.add_argument("--run", type=Path, default=Path("."), help="the checkout that holds the run (default: here)")
    c.add_argument("--reference", type=Path, help="a checkout holding the committed run (default: --run's git HEAD)")
    for name, help_text in (("predict", "label every image of a folder: label PNGs and colour overlays"),
                            ("explain", "draw an image's segments next to the training segments they retrieved")):
        c = commands.add_parser(name, help=help_text)
        if name == "predict":
            c.add_argument("images", type=Path, help="folder of images")
        else:
            c.add_argument("image", type=Path)
            c.add_argument("--dataset-root", type=Path, help="the bank's training images (default: as recorded "
                                                              "in the bank)")
            c.add_argument("--segments", type=int, default=6, help="segments shown, taken in turns from each predicted class (default 6)")
            c.add_argument("--neighbours", type=int, default=5, help="retrieved segments shown (default 5)")
        c.add_argument("--model", required=True, type=Path, help="model checkpoint (model.pt)")
        c.add_argument("--bank", type=Path, help="the model's prototype bank (SegSort models)")
        c.add_argument("--out", required=True, type=Path,
                       help="output folder (created if its parent exists)" if name == "predict"
                       else "figure to write (.png, .jpg, .pdf, .svg ...)")
        c.add_argument("--overwrite", action="store_true", help="replace outputs that exist (default: refuse)")
        c.add_argument("--params", default="params.yaml", help="inference settings (default: params.yaml)")
        add_device_argument(c)
    c = commands.add_parser("explore", help="one HTML page to explore the labels in a browser: click a pixel to "
                                            "see the training segments that voted for its segment")
    c.add_argument("images", type=Path, help="an image, or a folder of images")
    c.add_argument("--model", required=True, type=Path, help="SegSort model checkpoint (model.pt)")
    c.add_argument("--bank", required=True, type=Path, help="the model's prototype bank")
    c.add_argument("--out", required=True, type=Path, help="HTML page to write (.html), self-contained")
    c.add_argument("--dataset-root", type=Path, help="the bank's training images (default: as recorded in the bank)")
    c.add_argument("--overwrite", action="store_true", help="replace the page if it exists (default: refuse)")
    c.add_argument("--params", default="params.yaml", help="inference settings (default: params.yaml)")
    add_device_argument(c)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return {"predict": predict, "explain": explain, "explore": explore, "check-dataset": check_dataset_command,
                "compare-run": compare_run_command, "bank": bank_add_command}[args.command](args)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
