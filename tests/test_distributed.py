"""Two processes (torch.distributed, gloo on CPU) give the loss and gradients of one process on the
same global batch: the SegSort losses see the prototypes of every process's images."""
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import segsort.train as training
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.losses import MemoryBank
from segsort.models import build_model, network_config

pytestmark = pytest.mark.slow  # two training processes

WORLD_SIZE = 2
NUM_CLASSES = 4
SEGSORT = {"kappa": 10.0, "grid": [2, 2], "kmeans_iterations": 3, "memory_batches": 2}


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


def train_rank(rank: int, rendezvous: str, dataset_root: str, out_dir: str, params: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD_SIZE)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = Path(out_dir)
    model = build_model(network_config(params["networks"]["lite0_pyramid"], "segsort", params["embedding_dim"],
                                       len(class_names("tiny"))))
    dataset = VOCLayout(dataset_root, "train", len(class_names("tiny")))
    training.train(model, dataset, "supervised", params["schedules"]["supervised"], params["optimizer"],
                   params["segsort"], seed=0, log_path=out / "log.csv", resume_path=out / "resume.pt",
                   checkpoint_every=2, config={}, tensorboard_dir=out / "tensorboard")
    # Parameters only: without SyncBatchNorm (GPU only) each process keeps its own running statistics.
    torch.save({name: p.detach() for name, p in model.named_parameters()}, out / f"weights{rank}.pt")
    dist.destroy_process_group()


def test_data_parallel_training_keeps_the_processes_in_step(small_dataset, small_params, tmp_path):
    """A whole training under 2 processes: the replicas' weights stay identical; process 0 alone writes the
    log and the TensorBoard events."""
    mp.spawn(train_rank, args=(str(tmp_path / "rendezvous"), str(small_dataset), str(tmp_path), small_params),
             nprocs=WORLD_SIZE, join=True)
    weights = [torch.load(tmp_path / f"weights{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, msg=name)
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr,images_per_second" and len(rows) == 1 + small_params["schedules"]["supervised"]["steps"]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
