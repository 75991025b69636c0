"""Training: resume reproduces an uninterrupted run; a non-finite loss stops with the step and image ids."""
import shutil

import pytest
import torch

import segsort.train as training
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.io import DataError
from segsort.models import build_model, network_config

# A network with dropout (PSPNet's decoder), on a light backbone: its training must resume exactly too.
DROPOUT_NETWORK = {"backbone": "mobilenet_v2", "output_stride": 16, "decoder": "pspnet", "decoder_channels": 64}
TINY_NETWORK = "lite0_pyramid"


def small_model(network: dict, head: str = "segsort"):
    torch.manual_seed(0)
    return build_model(network_config(network, head, 32, len(class_names("tiny"))))


def run(small_params, dataset, tmp_path, objective="supervised", network=None, data_threads=0):
    head = "softmax" if objective == "softmax" else "segsort"
    model = small_model(network or small_params["networks"][TINY_NETWORK], head)
    training.train(model, dataset, objective, small_params["schedules"]["supervised"], small_params["optimizer"],
                   small_params["segsort"], seed=0, log_path=tmp_path / "log.csv",
                   resume_path=tmp_path / "resume.pt", checkpoint_every=small_params["checkpoint_every"],
                   config={"test": objective}, data_threads=data_threads, tensorboard_dir=tmp_path / "events")
    return model


def tensorboard_losses(folder) -> list[tuple[int, float]]:
    """(step, loss) of every loss event in `folder`, in the order TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars("loss")]


def losses(log_path):
    return [float(line.split(",")[1]) for line in log_path.read_text().splitlines()[1:]]


def make_batch_failing_at(failing_step: int, error: BaseException):
    """training.make_batch, raising `error` for one step (a killed run, a bad file)."""
    make_batch = training.make_batch

    def failing(dataset, indices, step, *args, **kwargs):
        if step == failing_step:
            raise error
        return make_batch(dataset, indices, step, *args, **kwargs)

    return failing


def assert_same_training(a, b, a_dir, b_dir):
    """Two trained models have the same weights and their runs logged the same losses."""
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    assert losses(a_dir / "log.csv") == losses(b_dir / "log.csv")


@pytest.fixture
def dataset(small_dataset):
    return VOCLayout(small_dataset, "train", len(class_names("tiny")))


@pytest.mark.parametrize("objective, network", [("supervised", None), ("softmax", DROPOUT_NETWORK)])
def test_resume_reaches_the_same_weights(small_params, dataset, tmp_path, monkeypatch, objective, network):
    torch.set_num_threads(1)
    reference = run(small_params, dataset, tmp_path / "a", objective, network)

    make_batch = training.make_batch
    monkeypatch.setattr(training, "make_batch", make_batch_failing_at(3, KeyboardInterrupt("killed")))
    with pytest.raises(KeyboardInterrupt):
        run(small_params, dataset, tmp_path / "b", objective, network)
    assert (tmp_path / "b" / "resume.pt").is_file()
    shutil.rmtree(tmp_path / "b" / "events")  # as Snakemake and DVC delete a failed job's outputs
    monkeypatch.setattr(training, "make_batch", make_batch)
    resumed = run(small_params, dataset, tmp_path / "b", objective, network)
    assert_same_training(reference, resumed, tmp_path / "a", tmp_path / "b")
    # TensorBoard holds the whole run, the steps before the resume too
    expected = tensorboard_losses(tmp_path / "a" / "events")
    assert [step for step, _ in expected] == list(range(1, small_params["schedules"]["supervised"]["steps"] + 1))
    assert tensorboard_losses(tmp_path / "b" / "events") == expected


def test_batches_made_ahead_by_threads_train_the_same_weights(small_params, dataset, tmp_path):
    torch.set_num_threads(1)
    reference = run(small_params, dataset, tmp_path / "a")
    prefetched = run(small_params, dataset, tmp_path / "b", data_threads=3)
    assert_same_training(reference, prefetched, tmp_path / "a", tmp_path / "b")


def test_a_batch_that_fails_in_a_thread_stops_training_with_its_error(small_params, dataset, tmp_path, monkeypatch):
    bad_file = DataError("JPEGImages/broken.jpg: cannot read image")
    monkeypatch.setattr(training, "make_batch", make_batch_failing_at(2, bad_file))
    with pytest.raises(DataError, match="broken.jpg"):
        run(small_params, dataset, tmp_path, data_threads=2)
    assert (tmp_path / "resume.pt").is_file()  # the state after step 2 of 4 (checkpoint_every: 2)


def test_stale_resume_state_is_ignored(small_params, dataset, tmp_path):
    torch.save({"digest": "another run", "step": 3}, tmp_path / "resume.pt")
    run(small_params, dataset, tmp_path)  # would fail to load the foreign state if it tried
    assert len(losses(tmp_path / "log.csv")) == 4


def test_non_finite_loss_names_step_and_images(small_params, dataset, tmp_path):
    model = small_model(small_params["networks"][TINY_NETWORK])
    with torch.no_grad():
        model.embedding.bias.fill_(float("nan"))
    with pytest.raises(training.NonFiniteLoss, match=r"step 0 on images \['tiny_"):
        training.train(model, dataset, "supervised", small_params["schedules"]["supervised"],
                       small_params["optimizer"], small_params["segsort"], seed=0, log_path=tmp_path / "log.csv",
                       resume_path=tmp_path / "resume.pt", checkpoint_every=2, config={})
    assert not (tmp_path / "log.csv").exists()


def test_unsupervised_training_runs_on_pseudo_segments(small_params, small_dataset, tmp_path):
    # Any label-like map serves as pseudo-segments here; the HED-owt-ucm ones are tested with the stage.
    dataset = VOCLayout(small_dataset, "train", len(class_names("tiny")), with_labels=False,
                        segments_dir=small_dataset / "SegmentationClass")
    model = small_model(small_params["networks"][TINY_NETWORK])
    training.train(model, dataset, "unsupervised", small_params["schedules"]["unsupervised"],
                   small_params["optimizer"], small_params["segsort"], seed=0, log_path=tmp_path / "log.csv",
                   resume_path=tmp_path / "resume.pt", checkpoint_every=2, config={})
    values = losses(tmp_path / "log.csv")
    assert len(values) == 4 and all(loss > 0 for loss in values)


def test_softmax_baseline_trains_the_classifier_head(small_params, dataset, tmp_path):
    model = run(small_params, dataset, tmp_path, "softmax")
    values = losses(tmp_path / "log.csv")
    assert len(values) == 4 and all(0 < loss < 10 for loss in values)
    assert model.classifier.out_channels == len(class_names("tiny"))


def test_softmax_loss_ignores_void_pixels():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 5.0]]]])  # (1, 2 classes, 1, 2)
    labels = torch.tensor([[[0, 255]]])
    expected = -torch.log_softmax(torch.tensor([2.0, 0.0]), 0)[0]
    assert torch.isclose(training.softmax_loss(logits, labels), expected)
    assert training.softmax_loss(logits, torch.full((1, 1, 2), 255)) is None


def test_a_schedule_of_no_steps_keeps_the_model(small_params, dataset, tmp_path):
    """Cityscapes' fine-tuning stage: the paper trains once, so the run on train is the run it starts from."""
    model = small_model(small_params["networks"][TINY_NETWORK])
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    training.train(model, dataset, "supervised", {"steps": 0}, small_params["optimizer"], small_params["segsort"],
                   seed=0, log_path=tmp_path / "log.csv", resume_path=tmp_path / "resume.pt", checkpoint_every=2,
                   config={}, tensorboard_dir=tmp_path / "events")
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert (tmp_path / "log.csv").read_text().strip() == "step,loss,lr"
    assert (tmp_path / "events").is_dir() and not (tmp_path / "resume.pt").exists()
