"""The typed schema of params.yaml, checked before any stage or DAG starts.

pydantic models rather than dataclasses: unknown keys (`extra="forbid"`), strict types (`steps: "160"` is
a string, not a step count), ranges and the location of every error come with them, so a wrong value
fails in one line that names its dotted key, before any data is read. The stages keep reading the plain
dictionary (segsort.stage.load_params): the schema validates it, it does not replace it.

Cross-references are checked too: every run's network, schedule (in every preset) and initial model,
and every model that a table, figure or evaluation list names.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from segsort.io import DataError

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Backbone = Literal["efficientnet_lite0", "mobilenet_v2", "resnet101"]  # segsort.models.backbones.BACKBONES


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TinyData(Section):
    num_train: PositiveInt
    num_train_aug: PositiveInt
    num_val: PositiveInt
    num_test: NonNegativeInt
    min_size: PositiveInt
    max_size: PositiveInt
    min_objects: PositiveInt
    max_objects: PositiveInt
    void_width: NonNegativeInt

    @model_validator(mode="after")
    def ordered(self):
        if self.min_size > self.max_size or self.min_objects > self.max_objects:
            raise ValueError("min_size/min_objects must not exceed max_size/max_objects")
        if self.num_train > self.num_train_aug:
            raise ValueError("num_train takes the first images of train_aug: it must not exceed num_train_aug")
        return self


class DownloadSource(Section):
    filename: str
    md5: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    urls: Annotated[list[str], Field(min_length=1)]


class Downloads(Section):
    voc2012_trainval: DownloadSource
    sbd: DownloadSource


class OwnDataset(Section):
    """A dataset of your own (segsort/data/own.py); `classes` absent: images only."""
    root: str
    preset: str                         # the presets entry whose hyper-parameters it trains with
    classes: Annotated[list[str], Field(min_length=2, max_length=255)] | None = None
    palette: list[Annotated[list[Annotated[int, Field(ge=0, le=255)]], Field(min_length=3, max_length=3)]] | None = None
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2  # of the images in val, when there are no split lists

    @model_validator(mode="after")
    def consistent(self):
        if self.palette is not None and (self.classes is None or len(self.palette) != len(self.classes)):
            raise ValueError("palette needs one [r, g, b] colour per class")
        return self


class Hed(Section):
    splits: list[str]
    batch_size: PositiveInt


class PseudoSegments(Section):
    cut: Literal["max_regions", "threshold"]
    threshold: Fraction
    threshold_step: Annotated[float, Field(gt=0, le=1)]
    max_regions: Annotated[int, Field(ge=1, le=255)]  # segment ids are uint8, 255 is "no segment"
    thin_contours: bool


class Figure6(Section):
    dataset_images: NonNegativeInt
    real_images: list[str]


class RetrievalFigures(Section):
    images: PositiveInt
    segments: PositiveInt
    neighbours: PositiveInt
    models: dict[str, str]


class Table4(Section):
    bank_size: PositiveInt


class Tsne(Section):
    samples: PositiveInt
    perplexity: PositiveFloat
    canvas_px: PositiveInt
    patch_px: PositiveInt


class Finch(Section):
    fine_clusters_shown: PositiveInt
    fine_samples: PositiveInt
    coarse_clusters: PositiveInt
    coarse_samples: PositiveInt


class PrototypeFigures(Section):
    models: dict[str, str]
    tsne: Tsne
    finch: Finch


class ComparisonFigure(Section):
    pairs: list[Annotated[list[str], Field(min_length=2, max_length=2)]]  # [softmax model, SegSort model]
    first_image: NonNegativeInt
    images_per_pair: PositiveInt


class InferenceSweep(Section):
    model: str
    kmeans_iterations: list[PositiveInt]
    knn_k: list[PositiveInt]


class Ablations(Section):
    run: str
    network: str
    grid_sides: list[PositiveInt]
    embedding_dims: list[PositiveInt]


class Network(Section):
    backbone: Backbone
    output_stride: Literal[8, 16, 32]
    decoder: Literal["pyramid", "deeplabv3plus", "pspnet"]
    decoder_channels: PositiveInt


class Optimizer(Section):
    momentum: Annotated[float, Field(ge=0, lt=1)]
    weight_decay: Annotated[float, Field(ge=0)]
    poly_power: PositiveFloat
    head_lr_multiplier: PositiveFloat
    min_scale: PositiveFloat
    max_scale: PositiveFloat

    @model_validator(mode="after")
    def ordered(self):
        if self.min_scale > self.max_scale:
            raise ValueError("min_scale must not exceed max_scale")
        return self


class SegSort(Section):
    kappa: PositiveFloat
    grid: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]  # rows x columns of blocks
    grid_frame: Literal["image", "crop"]
    kmeans_iterations: PositiveInt
    memory_batches: NonNegativeInt
    unsupervised_memory: bool


class Inference(Section):
    kmeans_iterations: PositiveInt
    knn_k: PositiveInt
    scales: Annotated[list[PositiveFloat], Field(min_length=1)]
    flip: bool
    max_side: Annotated[int, Field(ge=32)]


class Schedule(Section):
    steps: NonNegativeInt
    lr: PositiveFloat | None = None
    batch_size: PositiveInt | None = None
    crop: PositiveInt | None = None

    @model_validator(mode="after")
    def complete(self):
        if self.steps > 0 and None in (self.lr, self.batch_size, self.crop):
            raise ValueError("a schedule that trains (steps > 0) needs lr, batch_size and crop")
        return self


class Preset(Section):
    imagenet_backbones: list[Backbone]
    embedding_dim: PositiveInt
    segsort: SegSort
    inference: Inference
    schedules: dict[str, Schedule]


class Run(Section):
    network: str
    split: str
    init: str  # imagenet_<network>, or another run of the same network
    schedule: str


class SubmissionModels(Section):
    kmeans: list[str]
    softmax: list[str]


class UnsupervisedProtocols(Section):
    pixels_per_image: PositiveInt
    kmeans_iterations: PositiveInt
    probe_epochs: PositiveInt
    probe_lr: PositiveFloat
    probe_batch_size: PositiveInt


class Evaluation(Section):
    bank_split: str
    eval_split: str
    test_split: str
    server_tables: list[str]
    submission_models: SubmissionModels
    kmeans_models: list[str]
    pseudo_segment_models: list[str]
    softmax_models: list[str]
    unsupervised_protocol_models: dict[str, Literal["embedding", "backbone"]]
    unsupervised_protocols: UnsupervisedProtocols


class TableRow(BaseModel):
    """A row of a paper table: `model`, the `paper` row it is shown beside, and label columns (any name)."""
    model_config = ConfigDict(extra="allow", strict=True)
    model: str
    paper: dict[str, Any]


class Params(Section):
    dataset: str
    seed: NonNegativeInt
    replicate_seeds: list[NonNegativeInt]
    threads: PositiveInt
    checkpoint_every: PositiveInt
    mixed_precision: bool
    train_launcher: str
    data_threads: NonNegativeInt
    tiny: TinyData
    datasets: dict[str, OwnDataset]
    downloads: Downloads
    hed: Hed
    pseudo_segments: PseudoSegments
    real_samples_dir: str
    figure6: Figure6
    retrieval_figures: RetrievalFigures
    table4: Table4
    prototype_figures: PrototypeFigures
    comparison_figures: dict[str, ComparisonFigure]
    inference_sweep: InferenceSweep
    ablations: Ablations
    networks: dict[str, Network]
    optimizer: Optimizer
    presets: dict[str, Preset]
    unsupervised_runs: dict[str, Run]
    supervised_runs: dict[str, Run]
    softmax_runs: dict[str, Run]
    evaluation: Evaluation
    tables: dict[str, list[TableRow]]

    @model_validator(mode="after")
    def references(self):
        """Names that point elsewhere in the file must exist there."""
        problems = []
        built_in = {"tiny", "voc2012", "cityscapes"}
        problems += [f"datasets.{name}: {name!r} is a built-in dataset's name" for name in self.datasets if name in built_in]
        problems += [f"datasets.{name}.preset: {own.preset!r} is not in presets"
                     for name, own in self.datasets.items() if own.preset not in self.presets]
        if self.dataset not in built_in | set(self.datasets):
            problems.append(f"dataset: {self.dataset!r} is neither built in ({', '.join(sorted(built_in))}) nor "
                            f"declared in datasets")
        elif self.dataset not in self.datasets and self.dataset not in self.presets:
            problems.append(f"dataset: {self.dataset!r} has no preset (presets: {sorted(self.presets)})")
        runs = {**self.unsupervised_runs, **self.supervised_runs, **self.softmax_runs}
        clashes = (set(self.unsupervised_runs) & set(self.supervised_runs)) | (
            set(self.softmax_runs) & (set(self.unsupervised_runs) | set(self.supervised_runs)))
        problems += [f"runs: {name!r} is defined in two run groups" for name in sorted(clashes)]
        imagenet = {f"imagenet_{network}" for network in self.networks}
        for group in ("unsupervised_runs", "supervised_runs", "softmax_runs"):
            for name, run in getattr(self, group).items():
                if run.network not in self.networks:
                    problems.append(f"{group}.{name}.network: {run.network!r} is not in networks")
                if run.init not in imagenet | set(runs) - {name}:
                    problems.append(f"{group}.{name}.init: {run.init!r} is neither imagenet_<network> nor a run")
                problems += [f"{group}.{name}.schedule: {run.schedule!r} is not in presets.{preset}.schedules"
                             for preset, settings in self.presets.items() if run.schedule not in settings.schedules]
        models = imagenet | set(runs)
        named = {
            "inference_sweep.model": [self.inference_sweep.model],
            "ablations.run": [self.ablations.run],
            "retrieval_figures.models": list(self.retrieval_figures.models.values()),
            "prototype_figures.models": list(self.prototype_figures.models.values()),
            "comparison_figures": [model for figure in self.comparison_figures.values()
                                   for pair in figure.pairs for model in pair],
            "evaluation": [*self.evaluation.kmeans_models, *self.evaluation.pseudo_segment_models,
                           *self.evaluation.softmax_models, *self.evaluation.unsupervised_protocol_models,
                           *self.evaluation.submission_models.kmeans, *self.evaluation.submission_models.softmax],
            **{f"tables.{table}": [row.model for row in rows] for table, rows in self.tables.items()},
        }
        problems += [f"{key}: {model!r} is neither a run nor imagenet_<network>"
                     for key, names in named.items() for model in dict.fromkeys(names) if model not in models]
        if self.ablations.network not in self.networks:
            problems.append(f"ablations.network: {self.ablations.network!r} is not in networks")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def validate_params(params: dict, source: str | Path = "params.yaml") -> None:
    """Raise DataError, one line per problem naming its dotted key and `source`, unless `params` (the file's
    contents, before the preset is applied) fits the schema."""
    try:
        Params.model_validate(params)
    except ValidationError as err:
        lines = []
        for error in err.errors():
            key = ".".join(str(part) for part in error["loc"])
            message = {"extra_forbidden": "unknown key", "missing": "missing key"}.get(
                error["type"], error["msg"].removeprefix("Value error, "))
            given = "" if error["type"] in ("missing", "value_error") else f" (got {error['input']!r})"
            lines.append(f"{source}: {key + ': ' if key else ''}{message}{given}")
        raise DataError("\n".join(lines)) from None
