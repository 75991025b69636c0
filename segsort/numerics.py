"""A fingerprint of how this machine computes the tiny chain: `python -m segsort.numerics` prints it.

It runs, with the numerics every stage uses (segsort/__init__.py pins the kernels, setup_torch the
threads), the code paths the tiny chain's results depend on: the tiny dataset's generator (numpy, OpenCV)
on three images, then the real training loop (segsort.train.train: augmentation, the Lite0 pyramid
network, its backward pass, the SGD update) for two steps of the supervised objective (vMF-N on k-means
segments partitioned by labels) and two of the unsupervised one (vMF, the label maps standing in for
pseudo-segments). The fingerprint is the sha256 of the images and the weights after the four steps. Two
machines with the same fingerprint took the same kernels on those paths, so the tiny DAG gives them the
same tables; a machine with another one gets the tests' tolerance (tests/test_tiny_pipeline.py).
"""
import contextlib
import hashlib
import io
import tempfile
from pathlib import Path


from segsort.data import class_names
from segsort.data.tiny import generate_tiny_dataset
from segsort.data.voc import VOCLayout
from segsort.models import build_model, network_config
from segsort.stage import load_params, setup_torch
from segsort.train import train

SCHEDULE = {"steps": 2, "batch_size": 2, "crop": 64, "lr": 0.01}


def fingerprint(params: dict) -> str:
    """sha256 (16 hex digits) of three generated tiny images and of a Lite0 pyramid network's weights after two
    training steps of each SegSort objective, with the stages' numerics."""
    setup_torch(params)
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "dataset"
        generate_tiny_dataset(root, {**params["tiny"], "num_train": 2, "num_train_aug": 2, "num_val": 1,
                                     "num_test": 0}, params["seed"])
        for path in sorted(root.rglob("*.*")):
            digest.update(path.read_bytes())
        names = class_names("tiny")
        dataset = VOCLayout(root, "train", len(names), segments_dir=root / "SegmentationClass")
        model = build_model(network_config(params["networks"]["lite0_pyramid"], "segsort", params["embedding_dim"],
                                           len(names)))
        with contextlib.redirect_stderr(io.StringIO()):  # the progress bars
            for objective in ("supervised", "unsupervised"):
                folder = Path(work) / objective
                train(model, dataset, objective, SCHEDULE, params["optimizer"], params["segsort"], params["seed"],
                      folder / "log.csv", folder / "resume.pt", checkpoint_every=SCHEDULE["steps"], config={})
    for weights in model.state_dict().values():
        digest.update(weights.numpy().tobytes())
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    print(f"numerics fingerprint: {fingerprint(load_params())}")
