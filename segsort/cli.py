"""`segsort predict`, `segsort explain` and `segsort check-dataset`: trained models on your own images, and
your own dataset folders checked before the pipeline reads them.

    segsort predict --model M.pt --bank M.h5 photos/ --out labelled/
    segsort explain photo.jpg --model M.pt --bank M.h5 --out why.png
    segsort check-dataset /data/my_labels --dataset my_labels   # every problem of a folder of your own

Inference settings (k-means iterations, k of kNN, scales, flip, the longest side an image is labelled
at) come from the active preset of --params (params.yaml by default); class names from the bank. A
softmax model needs no bank. predict writes <name>.png and <name>_overlay.jpg per image (<name> is the
image's stem, with its suffix where two images share one: x_jpg, x_png), and refuses an output folder
where that would replace an input.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segsort.bank import Bank, read_bank
from segsort.checkpoint import file_sha256, load_model
from segsort.data import class_names
from segsort.data.own import check_dataset
from segsort.explain import PALETTE, explain_image, retrieval_figure
from segsort.inference import InferenceConfig, bounded, model_device, segsort_labels, softmax_labels
from segsort.io import IMAGE_SUFFIXES, DataError, PipelineError, atomic_path, read_image, write_label_png
from segsort.stage import add_device_argument, load_params, setup_torch, stage_device



def load_model_and_bank(args) -> tuple[torch.nn.Module, Bank | None, tuple[str, ...]]:
    """The model on its device and, for a SegSort model, its bank, refused if made by another model."""
    model = load_model(args.model).to(stage_device(args.device))
    if model.config["head"] == "softmax":
        params = load_params(args.params)
        return model, None, class_names(params["dataset"], params["datasets"])
    if args.bank is None:
        raise DataError(f"{args.model}: a SegSort model labels segments by kNN: give its prototype bank (--bank)")
    bank = read_bank(args.bank, expect={"model_sha256": file_sha256(args.model), "features": "embedding",
                                        "segmentation": "kmeans", "feature_dim": model.feature_dim("embedding")})
    bank = bank.to(model_device(model))
    return model, bank, tuple(json.loads(bank.attrs["class_names"]))


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


def prediction_outputs(images: list[Path], out: Path) -> dict[Path, tuple[Path, Path]]:
    """Each image's (label PNG, overlay JPEG) under `out`; DataError if one of them would replace an input."""
    outputs = {path: (out / f"{stem}.png", out / f"{stem}_overlay.jpg") for path, stem in output_stems(images).items()}
    inputs = {path.resolve() for path in images}
    clobbered = sorted(str(target) for pair in outputs.values() for target in pair if target.resolve() in inputs)
    if clobbered:
        raise DataError(f"--out {out}: writing there would replace input images ({', '.join(clobbered[:3])}); "
                        f"choose another output folder")
    return outputs


def predict(args) -> int:
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) \
        if args.images.is_dir() else []
    if not images:
        raise DataError(f"{args.images}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    outputs = prediction_outputs(images, args.out)
    params = load_params(args.params)
    setup_torch(params)
    config = InferenceConfig.from_params(params)
    model, bank, names = load_model_and_bank(args)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for path in images:
        try:
            image = read_image(path)
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            failed.append(path)
            continue
        labels = softmax_labels(model, image, config) if bank is None else \
            segsort_labels(model, image, bank.prototypes, bank.labels, config, len(names))
        label_path, overlay_path = outputs[path]
        with atomic_path(label_path) as tmp:
            write_label_png(tmp, labels)
        with atomic_path(overlay_path) as tmp:
            Image.fromarray(overlay(image, labels)).save(tmp, format="JPEG", quality=92)
        found = ", ".join(names[c] for c in np.unique(labels))
        print(f"{path.name}: {found}")
    print(f"{len(images) - len(failed)} of {len(images)} images labelled into {args.out}")
    if failed:
        print(f"error: {len(failed)} image(s) could not be read: {', '.join(str(p) for p in failed)}",
              file=sys.stderr)
        return 1
    return 0


def explain(args) -> int:
    params = load_params(args.params)
    setup_torch(params)
    model, bank, names = load_model_and_bank(args)
    if bank is None:
        raise DataError(f"{args.model}: a softmax model has no retrieved segments to explain its labels")
    dataset_root = args.dataset_root or Path(bank.attrs["dataset_root"])
    image = bounded(read_image(args.image), params["inference"]["max_side"])
    queries = explain_image(model, image, bank, InferenceConfig.from_params(params), len(names),
                            args.segments, args.neighbours)
    with atomic_path(args.out) as tmp:
        retrieval_figure([(args.image.stem, image, queries)], dataset_root, names, tmp,
                         f"{args.image.name}: its segments and the training segments they retrieved")
    print(f"{args.out}: {len(queries)} segments explained")
    return 0


def check_dataset_command(args) -> int:
    classes, palette = None, None
    if args.dataset:
        declared = load_params(args.params)["datasets"]
        if args.dataset not in declared:
            raise DataError(f"{args.params}: datasets.{args.dataset} is not declared (declared: {sorted(declared)})")
        classes, palette = declared[args.dataset].get("classes"), declared[args.dataset].get("palette")
    elif args.classes:
        classes = args.classes.split(",")
    problems = check_dataset(args.root, classes, palette)
    for line in problems:
        print(line)
    if problems:
        print(f"{args.root}: {len(problems)} problems", file=sys.stderr)
        return 1
    kind = f"labelled, {len(classes)} classes" if classes else "images only"
    print(f"{args.root}: no problems ({kind})")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="segsort", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True)
    c = commands.add_parser("check-dataset", help="report every problem of a dataset folder, one line per file")
    c.add_argument("root", type=Path, help="the folder: JPEGImages/, SegmentationClass/, ImageSets/Segmentation/")
    c.add_argument("--dataset", help="its declaration in params.yaml datasets (classes, palette)")
    c.add_argument("--classes", help="comma-separated class names, instead of --dataset (none: images only)")
    c.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
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
                       help="output folder" if name == "predict" else "PNG to write")
        c.add_argument("--params", default="params.yaml", help="inference settings (default: params.yaml)")
        add_device_argument(c)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return {"predict": predict, "explain": explain, "check-dataset": check_dataset_command}[args.command](args)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
