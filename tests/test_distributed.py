"""Two processes (torch.distributed, gloo on CPU) give the loss and gradients of one process on the
same global batch: the SegSort losses see the prototypes of every process's images."""
import subprocess
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

import segsort.train as training
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.stage import setup_torch
from segsort.losses import MemoryBank
from segsort.models import build_model, network_config
from workflow_dags import copy_tracked_files, tool_env

pytestmark = pytest.mark.slow  # two training processes

WORLD_SIZE = 2
NUM_CLASSES = 4
# Two processes against one: the sums of the gradients and of the batch statistics are taken in another
# order. After one step of small_params (batch 2, crops of 64), with the stages' numerics, the weights
# differed by at most 8.5e-6 (the stem's convolution; with each process's own batch statistics instead: 1.5;
# with oneDNN on and MKL's COMPATIBLE path, which no stage takes, 1.7e-3). Later steps amplify
# the difference (k-means assignments flip): 4e-4 after two steps of the tiny schedule, 0.1 after four
# of small_params.
ONE_STEP_TOLERANCE = {"rtol": 0.0, "atol": 1e-4}
# The tiny DAG's supervised training (batch 8, crops of 160), cut to DAG_STEPS steps, in one and in two
# processes: the weights and batch statistics differed by at most 6.1e-5 (a running variance; with each
# process's own batch statistics, 3.8e-2 on a few images of the same sizes).
DAG_STEPS = 2
DAG_TOLERANCE = {"rtol": 0.0, "atol": 5e-4}
SEGSORT = {"kappa": 10.0, "grid": [2, 2], "kmeans_iterations": 3, "memory_batches": 2, "grid_blocks": "fixed_size",
           "unsupervised_padding": "dropped"}  # the capacities below count the segments without the padding


def global_batch():
    """4 images: unit embeddings (float64, 12x12), labels with void pixels, segments, locations, logits."""
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(4, 8, 12, 12, generator=generator, dtype=torch.float64),
                                               dim=1)
    labels = torch.randint(0, NUM_CLASSES, (4, 12, 12), generator=generator)
    labels[:, :3] = torch.randint(0, 2, (4, 3, 12), generator=generator)  # a band of one or two classes
    labels[:, 5, :] = 255
    segments = torch.randint(0, 6, (4, 12, 12), generator=generator)
    segments[1, 2:4] = 255
    ys, xs = torch.meshgrid(torch.arange(12) / 12, torch.arange(12) / 12, indexing="ij")
    locations = torch.stack([ys, xs]).double().expand(4, 2, 12, 12)
    logits = torch.randn(4, NUM_CLASSES, 6, 6, generator=generator, dtype=torch.float64)
    return embeddings, labels, segments, locations, logits


def distinct_per_image(maps: torch.Tensor) -> int:
    """The values other than void (255) that each map shows, summed over the maps: what Batch counts."""
    return sum(len(set(m.unique().tolist()) - {255}) for m in maps)


def filled_bank(with_labels: bool) -> MemoryBank:
    generator = torch.Generator().manual_seed(1)
    bank = MemoryBank(SEGSORT["memory_batches"])
    prototypes = torch.nn.functional.normalize(torch.randn(5, 8, generator=generator, dtype=torch.float64), dim=1)
    bank.push(prototypes, torch.tensor([0, 1, 2, 3, 1]) if with_labels else torch.zeros(5, dtype=torch.long))
    return bank


def losses_and_gradients(images: slice):
    """Each objective's loss on the images of `images` and the gradient of that loss on its input."""
    embeddings, labels, segments, locations, logits = global_batch()
    results = {}
    for objective in ("supervised", "unsupervised", "softmax"):
        inputs = (logits if objective == "softmax" else embeddings)[images].clone().requires_grad_()
        if objective == "supervised":
            bank = filled_bank(with_labels=True)
            capacity = SEGSORT["grid"][0] * SEGSORT["grid"][1] * distinct_per_image(labels[images])
            loss = training.supervised_loss(inputs, labels[images], locations[images], NUM_CLASSES, SEGSORT, bank,
                                            capacity)
        elif objective == "unsupervised":
            bank = filled_bank(with_labels=False)
            loss = training.unsupervised_loss(inputs, segments[images], SEGSORT, bank,
                                              distinct_per_image(segments[images]))
        else:
            bank = None
            loss = training.softmax_loss(inputs, labels[images])
        loss.backward()
        world_size = dist.get_world_size() if dist.is_initialized() else 1
        results[objective] = {"loss": training.all_sum(loss.detach()) / world_size, "grad": inputs.grad,
                              "bank": None if bank is None else torch.cat([p for p, _ in bank.batches()])}
    return results


def run_rank(rank: int, rendezvous: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD_SIZE)
    per_rank = 4 // WORLD_SIZE
    torch.save(losses_and_gradients(slice(rank * per_rank, (rank + 1) * per_rank)), f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_match_one_process_on_the_global_batch(tmp_path):
    single = losses_and_gradients(slice(0, 4))
    mp.spawn(run_rank, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]
    for objective, expected in single.items():
        for rank_result in ranks:
            torch.testing.assert_close(rank_result[objective]["loss"], expected["loss"], msg=objective)
            if expected["bank"] is not None:
                torch.testing.assert_close(rank_result[objective]["bank"], expected["bank"], msg=objective)
        # Each process's loss is its share of the global mean times the number of processes (DDP then
        # averages the parameter gradients), so its input gradient is WORLD_SIZE times the global one.
        gathered = torch.cat([r[objective]["grad"] for r in ranks]) / WORLD_SIZE
        torch.testing.assert_close(gathered, expected["grad"], msg=objective)


def train_small_model(dataset_root: str, out: Path, params: dict) -> dict:
    """The weights and batch-norm statistics of a small supervised training from a seeded network, with the
    stages' numerics (one thread)."""
    setup_torch(params, threads=1)
    torch.manual_seed(0)
    model = build_model(network_config(params["networks"]["lite0_pyramid"], "segsort", params["embedding_dim"],
                                       len(class_names("tiny"))))
    dataset = VOCLayout(dataset_root, "train", len(class_names("tiny")))
    training.train(model, dataset, "supervised", params["schedules"]["supervised"], params["optimizer"],
                   params["segsort"], seed=0, log_path=out / "log.csv", resume_path=out / "resume.pt",
                   checkpoint_every=2, config={}, tensorboard_dir=out / "tensorboard")
    return model.state_dict()


def train_rank(rank: int, rendezvous: str, dataset_root: str, out_dir: str, params: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD_SIZE)
    torch.save(train_small_model(dataset_root, Path(out_dir), params), Path(out_dir) / f"weights{rank}.pt")
    dist.destroy_process_group()


def test_data_parallel_training_keeps_the_processes_in_step(small_dataset, small_params, tmp_path):
    """A whole training under 2 processes: the replicas' weights and batch statistics stay identical;
    process 0 alone writes the log and the TensorBoard events."""
    mp.spawn(train_rank, args=(str(tmp_path / "rendezvous"), str(small_dataset), str(tmp_path), small_params),
             nprocs=WORLD_SIZE, join=True)
    weights = [torch.load(tmp_path / f"weights{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    for name, value in weights[0].items():
        assert torch.equal(weights[1][name], value), name
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr" and len(rows) == 1 + small_params["schedules"]["supervised"]["steps"]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_a_step_of_two_processes_is_the_step_of_one(small_dataset, small_params, tmp_path):
    """One training step under 2 processes moves the weights where one process moves them: batch norm
    takes the global batch's statistics (GlobalBatchNorm2d), the losses its prototypes."""
    params = {**small_params, "schedules": {**small_params["schedules"],
                                            "supervised": {**small_params["schedules"]["supervised"], "steps": 1}}}
    mp.spawn(train_rank, args=(str(tmp_path / "rendezvous"), str(small_dataset), str(tmp_path), params),
             nprocs=WORLD_SIZE, join=True)
    parallel = torch.load(tmp_path / "weights0.pt", weights_only=True)
    (tmp_path / "single").mkdir()
    single = train_small_model(str(small_dataset), tmp_path / "single", params)
    for name, value in single.items():
        torch.testing.assert_close(parallel[name], value, msg=name, **ONE_STEP_TOLERANCE)


def test_torchrun_training_in_the_dag_gives_the_weights_of_one_process(tmp_path):
    """params.yaml `train_launcher: torchrun --standalone --nproc_per_node 2` (gloo on the CPU): Snakemake's
    supervised training job, on a schedule cut to a few steps, ends at the weights of the same job run
    by one process."""
    repo = copy_tracked_files(tmp_path / "repo", skip=("tests/", "reports/tiny/"))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["presets"]["tiny"]["schedules"]["supervised"]["steps"] = DAG_STEPS
    env = tool_env()
    model = "data/tiny/models/sup_train/model.pt"
    weights = {}
    for launcher in ("python", "torchrun --standalone --nproc_per_node 2"):
        params["train_launcher"] = launcher
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        result = subprocess.run(["snakemake", "--cores", "2", "--force", model], cwd=repo,
                                env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-4000:]
        weights[launcher] = torch.load(repo / model, weights_only=True)["model"]
        log = (repo / "data/tiny/logs/train_supervised/sup_train.log").read_text()
        assert ("data-parallel: 2 processes (gloo)" in log) == launcher.startswith("torchrun"), log[-2000:]
    single, parallel = weights.values()
    for name, value in single.items():
        torch.testing.assert_close(parallel[name], value, msg=name, **DAG_TOLERANCE)
