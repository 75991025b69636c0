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
Backbone = Literal["efficientnet_lite0", "efficientnet_lite2", "mobilenet_v2", "resnet101"]  # segsort.models.backbones.BACKBONES


class Section(BaseModel):
    # The string under each field is its description (use_attribute_docstrings): docs/configuration.md is
    # written from them by scripts/write_config_reference.py, which refuses a field without one.
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)


class TinyData(Section):
    """The embedded tiny dataset (segsort/data/tiny.py): generated offline from scikit-image's photographs,
    in PASCAL VOC layout (docs/tiny_dataset.md)."""
    num_train: PositiveInt
    """Images of VOC-style `train`: the first num_train images of train_aug (at most num_train_aug)."""
    num_train_aug: PositiveInt
    """Images of `train_aug`, the larger training split."""
    num_val: PositiveInt
    """Images of `val`, the evaluation split."""
    num_test: NonNegativeInt
    """Images of `test`, Table 7's split: packaged like a test set for an evaluation server."""
    min_size: PositiveInt
    """Smallest image side in pixels: sides are drawn uniformly in [min_size, max_size]."""
    max_size: PositiveInt
    """Largest image side in pixels (at least min_size)."""
    min_objects: PositiveInt
    """Fewest objects pasted on an image's background."""
    max_objects: PositiveInt
    """Most objects pasted on an image's background (at least min_objects)."""
    void_width: NonNegativeInt
    """Width in pixels of the void band (255) along every object border, as in VOC."""

    @model_validator(mode="after")
    def ordered(self):
        if self.min_size > self.max_size or self.min_objects > self.max_objects:
            raise ValueError("min_size/min_objects must not exceed max_size/max_objects")
        if self.num_train > self.num_train_aug:
            raise ValueError("num_train takes the first images of train_aug: it must not exceed num_train_aug")
        return self


class DownloadSource(Section):
    """One archive of a real dataset (stages/make_dataset.py, segsort/download.py)."""
    filename: str
    """The archive's file name under data/downloads/, where it may also be placed by hand."""
    md5: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    """The archive's md5 checksum, checked after every download."""
    urls: Annotated[list[str], Field(min_length=1)]
    """URLs tried in order: the official host first, then mirrors (add yours)."""


class Downloads(Section):
    """The real datasets' archives. No stage tracks this section: the bytes, not their source, make the
    dataset. When every URL fails, place the archive (or its extracted folder) in data/downloads/ as the
    message says."""
    voc2012_trainval: DownloadSource
    """PASCAL VOC 2012 train and val (`VOCtrainval_11-May-2012.tar`)."""
    sbd: DownloadSource
    """The Semantic Boundaries Dataset (`benchmark.tgz`), whose masks make VOC's train_aug."""


class OwnDataset(Section):
    """A dataset of your own (segsort/data/own.py, docs/your_own_data.md); `classes` absent: images only."""
    root: str
    """Its folder: JPEGImages/, and for a labelled dataset SegmentationClass/ and optionally
    ImageSets/Segmentation/."""
    preset: str                         # the presets entry whose hyper-parameters it trains with
    """The presets entry whose hyper-parameters it trains with (copy one to tune it)."""
    classes: Annotated[list[str], Field(min_length=2, max_length=255)] | None = None
    """Class names, id 0 first; absent: images only (the unsupervised chain and the groups it finds)."""
    palette: list[Annotated[list[Annotated[int, Field(ge=0, le=255)]], Field(min_length=3, max_length=3)]] | None = None
    """One [r, g, b] colour per class, only for masks saved as RGB colours (white is void)."""
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2  # of the images in val, when there are no split lists
    """Share of the images put in val by a split seeded with `seed`, when the folder has no split lists."""

    @model_validator(mode="after")
    def consistent(self):
        if self.palette is not None and (self.classes is None or len(self.palette) != len(self.classes)):
            raise ValueError("palette needs one [r, g, b] colour per class")
        return self


class Hed(Section):
    """HED contours (segsort/contours/hed.py): the HED network with its BSDS500-trained weights."""
    splits: list[str]
    """The splits whose images get contours, and so pseudo-segments."""
    batch_size: PositiveInt
    """Images of the same size that go through the network together."""


class PseudoSegments(Section):
    """HED-owt-ucm pseudo-segments (segsort/contours/owt_ucm.py): oriented watershed, ultrametric contour
    map, cut."""
    cut: Literal["max_regions", "threshold"]
    """How the UCM is cut: `max_regions` raises the threshold until at most max_regions segments remain;
    `threshold` cuts at a fixed threshold."""
    threshold: Fraction
    """The fixed cut, and the starting threshold of the max_regions rule."""
    threshold_step: Annotated[float, Field(gt=0, le=1)]
    """Step by which the max_regions rule raises the threshold."""
    max_regions: Annotated[int, Field(ge=1, le=255)]  # segment ids are uint8, 255 is "no segment"
    """Most segments per image under the max_regions rule (segment ids are uint8; 255 means no segment)."""
    thin_contours: bool
    """Non-maximum suppression of the HED map before the watershed. Measured on the BSDS samples, it leaves
    flat zero plateaus: boundary recall 0.80 -> 0.07, F 0.82 -> 0.13."""


class Figure6(Section):
    """Figure 6 (reports/<dataset>/figures/fig6_pseudo_segments.png): images, HED contours and
    pseudo-segments."""
    dataset_images: NonNegativeInt
    """How many of the dataset's first validation images are shown."""
    real_images: list[str]
    """Real photographs shown, as paths under `real_samples_dir`."""


class RetrievalFigures(Section):
    """Figures 5 and 7: validation segments next to the training segments they retrieved."""
    images: PositiveInt
    """The first validation images shown."""
    segments: PositiveInt
    """Segments shown per image, in turns from each predicted class, smallest class first."""
    neighbours: PositiveInt
    """Retrieved training segments shown per segment."""
    models: dict[str, str]
    """Figure name (its file's stem) -> the model whose bank it retrieves from."""


class Table4(Section):
    """Table 4: runtime and memory of SegSort inference against softmax, read from
    reports/benchmarks/inference_latency.csv (benchmarks/inference_latency.py, on the machine it describes);
    mIoU from the inference sweep."""
    bank_size: PositiveInt
    """The benchmark's bank size whose rows the table shows (the paper's: 36,000 prototypes)."""


class Tsne(Section):
    """Figures 9 and 10: t-SNE of a bank's prototypes, each drawn as its patch."""
    samples: PositiveInt
    """Prototypes drawn at random (the paper: 5,000)."""
    perplexity: PositiveFloat
    """t-SNE perplexity."""
    canvas_px: PositiveInt
    """Side of the figure's canvas in pixels."""
    patch_px: PositiveInt
    """Side of each segment's patch on the canvas in pixels."""


class Finch(Section):
    """Figure 8: FINCH clustering of the bank's foreground prototypes."""
    fine_clusters_shown: PositiveInt
    """Clusters of the finest level shown."""
    fine_samples: PositiveInt
    """Segments shown per fine cluster."""
    coarse_clusters: PositiveInt
    """Clusters asked of FINCH for the coarse level (its `req_clust`)."""
    coarse_samples: PositiveInt
    """Segments shown per coarse cluster."""


class PrototypeFigures(Section):
    """Figures 8-10: the prototypes of a model's bank (its training segments), shown by their patches."""
    models: dict[str, str]
    """Figure name (its file's stem) -> the model whose bank it draws."""
    tsne: Tsne
    """Figures 9 and 10."""
    finch: Finch
    """Figure 8."""


class ComparisonFigure(Section):
    """A figure of image | ground truth | softmax | SegSort rows, for pairs of models trained alike
    (Figures 4 and 14)."""
    pairs: list[Annotated[list[str], Field(min_length=2, max_length=2)]]  # [softmax model, SegSort model]
    """[softmax model, SegSort model] pairs."""
    first_image: NonNegativeInt
    """Index of the first validation image shown."""
    images_per_pair: PositiveInt
    """Validation images shown per pair, from first_image on."""


class InferenceSweep(Section):
    """One model evaluated with every k-means iterations x k of kNN, in one job (Table 4's settings,
    Figure 13)."""
    model: str
    """The model swept (the paper sweeps DeepLabv3+/MNV2)."""
    kmeans_iterations: list[PositiveInt]
    """k-means iterations swept."""
    knn_k: list[PositiveInt]
    """Values of k of kNN swept (the paper: odd k from 1 to 31)."""


class Ablations(Section):
    """Figures 11 and 12: `run` trained and tested again with one setting changed (train, bank, metrics);
    the run's own setting is each curve's reference point."""
    run: str
    """The supervised run retrained."""
    network: str
    """The run's network; the run must start from imagenet_<network>."""
    grid_sides: list[PositiveInt]
    """k-means grid sides n (n x n clusters) in training and testing (the paper: 4 to 81 clusters)."""
    embedding_dims: list[PositiveInt]
    """Embedding dimensions (the paper: 8, 16, 32, 64, 128)."""


class HiddenClass(Section):
    """A class hidden from a training run, then added to its bank by `segsort bank add` (no retraining):
    reports/<dataset>/hidden_class.csv and figures/hidden_class.png (docs/growing_a_bank.md)."""
    run: str
    """The SegSort run trained again with the class's pixels void in every training image and in its bank;
    the run itself, trained with the class, is the reference. It must start from imagenet_<network>."""
    classes: dict[str, str]
    """The class hidden, by dataset; a dataset without one has no hidden-class experiment."""
    images: list[PositiveInt]
    """How many labelled images showing the class are added to the bank: the first of train_aug outside the
    bank split, in list order (each size adds the images of the smaller ones and more)."""
    min_share: Annotated[float, Field(gt=0, lt=1)]
    """An image shows the class when the class covers at least this share of its pixels."""
    knn_k: list[PositiveInt]
    """Every bank, the reference run's included, is also scored with each of these k of kNN, beside the
    preset's `inference.knn_k`: a few images add a few segments, which win a vote only when k is small."""


class Network(Section):
    """A network (segsort/models): backbone and decoder. Every run names one and adds a SegSort or softmax
    head to it."""
    backbone: Backbone
    """The backbone (segsort.models.backbones.BACKBONES), with ImageNet weights where the preset's
    imagenet_backbones lists it."""
    output_stride: Literal[8, 16, 32]
    """Image side over feature side at the backbone's output (below 32 by dilation)."""
    decoder: Literal["pyramid", "deeplabv3plus", "pspnet"]
    """The decoder: a light pyramid (the tiny dataset's), DeepLabv3+ or PSPNet."""
    decoder_channels: PositiveInt
    """Channels of the decoder's features."""


class Optimizer(Section):
    """SGD with momentum and poly learning-rate decay, and the training augmentation, for every run."""
    momentum: Annotated[float, Field(ge=0, lt=1)]
    """SGD momentum."""
    weight_decay: Annotated[float, Field(ge=0)]
    """Weight decay, on conv weights only."""
    poly_power: PositiveFloat
    """Power of the poly decay: lr x (1 - step / steps) ** poly_power."""
    head_lr_multiplier: PositiveFloat
    """Learning-rate factor of everything but the backbone (decoder and head) over the backbone's."""
    min_scale: PositiveFloat
    """Training images are scaled at random in [min_scale, max_scale), mirrored and cropped (crops padded
    with void)."""
    max_scale: PositiveFloat
    """Upper end of the random scale (at least min_scale)."""

    @model_validator(mode="after")
    def ordered(self):
        if self.min_scale > self.max_scale:
            raise ValueError("min_scale must not exceed max_scale")
        return self


class SegSort(Section):
    """The SegSort objective: paper Sec. 4.1 and the authors' release (docs/segsort_core.md)."""
    kappa: PositiveFloat
    """vMF concentration κ."""
    grid: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]  # rows x columns of blocks
    """k-means starts from a regular grid of [rows, columns] blocks ([5, 5]: 25 clusters)."""
    grid_frame: Literal["image", "crop"]
    """Where training lays the grid: `image`, on a crop's original image before scale, mirror and crop (the
    release: a crop starts with the blocks inside it); `crop`, on the crop."""
    kmeans_iterations: PositiveInt
    """Training's k-means iterations (the bank's and the test images': inference.kmeans_iterations)."""
    memory_batches: NonNegativeInt
    """Prototypes of the previous N batches join the supervised loss, without gradient."""
    unsupervised_memory: bool
    """false (the release): the unsupervised loss compares pixels with their own batch's prototypes only;
    true: the memory bank's prototypes join as negatives."""
    grid_blocks: Literal["fixed_size", "even"]
    """k-means' initial blocks: `fixed_size`, ceil(H/rows) x ceil(W/cols) pixels, as the release (a side may get
    fewer blocks); `even`, row floor(y*rows/H), always rows x cols blocks."""
    unsupervised_padding: Literal["segment", "dropped"]
    """`segment`: the unsupervised loss keeps a crop's padding as one more segment (release); `dropped`: those
    pixels take no part."""


class Inference(Section):
    """Labelling an image: k-means on the training grid, kNN against the bank, votes per pixel."""
    kmeans_iterations: PositiveInt
    """k-means iterations on a test image, and on the bank's training images."""
    knn_k: PositiveInt
    """Neighbours that vote (the paper: 21)."""
    scales: Annotated[list[PositiveFloat], Field(min_length=1)]
    """Image scales; the votes of every scale (and mirror) are accumulated per pixel."""
    flip: bool
    """Also vote with each scale's mirror image."""
    max_side: Annotated[int, Field(ge=32)]
    """A larger image (`segsort predict` on a photo) is labelled at this longest side and its labels resized
    back: memory and time grow with its pixels."""
    bank_locations: Literal["last_pixel", "size"]
    """The bank's k-means location features: `last_pixel`, (y, x) / (H-1, W-1), as the release's prototype
    extraction; `size`, / (H, W), as training and the test images."""


class Schedule(Section):
    """A named training schedule; a run names one. One of 0 steps trains nothing: the run keeps the model it
    starts from."""
    steps: NonNegativeInt
    """Training steps."""
    lr: PositiveFloat | None = None
    """Initial learning rate (needed when steps > 0)."""
    batch_size: PositiveInt | None = None
    """Crops per step, over all processes (needed when steps > 0)."""
    crop: PositiveInt | None = None
    """Side of the square training crops in pixels (needed when steps > 0)."""

    @model_validator(mode="after")
    def complete(self):
        if self.steps > 0 and None in (self.lr, self.batch_size, self.crop):
            raise ValueError("a schedule that trains (steps > 0) needs lr, batch_size and crop")
        return self


class Preset(Section):
    """The hyper-parameters of one dataset (`dataset` picks the preset). Stages read the active preset's keys
    as if they stood at the top of params.yaml. Each preset spells out every value: DVC tracks a parameter by
    its key in the file."""
    imagenet_backbones: list[Backbone]
    """Backbones that start from ImageNet weights (torchvision's are downloaded on first use); the others
    train from scratch."""
    embedding_dim: PositiveInt
    """Width of the SegSort embedding head."""
    segsort: SegSort
    """The SegSort objective."""
    inference: Inference
    """Test-time segmentation and kNN."""
    schedules: dict[str, Schedule]
    """Training schedules by name: every run's schedule must be in every preset."""
    stand_ins: dict[str, str] = {}
    """Networks replaced by another in this preset (a paper network -> the network trained in its place),
    e.g. ImageNet EfficientNet-Lites under the paper's decoders where torchvision's weights cannot be
    downloaded; both must be in `networks`."""


class Run(Section):
    """A training run: a model, named by its key, trained by stages/train.py."""
    network: str
    """Its network, a key of `networks`."""
    split: str
    """The split it trains on."""
    init: str  # imagenet_<network>, or another run of the same network
    """`imagenet_<network>` (ImageNet backbone, fresh decoder and head) or another run of the same network
    (its head is kept if it is the same kind, else a fresh one is made)."""
    schedule: str
    """Its schedule, a key of every preset's `schedules`."""


class SubmissionModels(Section):
    """Models whose test-split predictions are packaged for the server (reports/<dataset>/submissions/)."""
    kmeans: list[str]
    """SegSort models (k-means and kNN)."""
    softmax: list[str]
    """Softmax models."""


class UnsupervisedProtocols(Section):
    """Later papers' protocols for unsupervised features (stages/unsupervised_metrics.py)."""
    pixels_per_image: PositiveInt
    """Labelled pixels sampled per image to fit k-means and the probe (memory ~ images x this x D x 4 B)."""
    kmeans_iterations: PositiveInt
    """Spherical k-means iterations on the eval split's sampled pixels, one cluster per class."""
    probe_epochs: PositiveInt
    """Adam passes of the linear probe over the sampled train-split pixels."""
    probe_lr: PositiveFloat
    """Adam learning rate of the linear probe."""
    probe_batch_size: PositiveInt
    """Sampled pixels per Adam step."""


class Evaluation(Section):
    """Which split is scored against which bank, and which models are evaluated how."""
    bank_split: str
    """The labelled split whose segment prototypes form the kNN bank."""
    eval_split: str
    """The split scored."""
    test_split: str
    """Predicted, never scored here: its labels belong to the dataset's evaluation server."""
    server_tables: list[str]
    """Tables of the test split: each row is a package for the server."""
    submission_models: SubmissionModels
    """The models those packages are made for."""
    kmeans_models: list[str]
    """SegSort models: k-means on their embedding, kNN against their bank."""
    pseudo_segment_models: list[str]
    """ImageNet features pooled on HED-owt-ucm segments, kNN against their bank (Table 3, row 1)."""
    softmax_models: list[str]
    """Softmax models: the arg max of their class scores."""
    unsupervised_protocol_models: dict[str, Literal["embedding", "backbone"]]
    """Models also scored by later papers' protocols (PiCIE, STEGO), and which features: `embedding` or
    `backbone`."""
    unsupervised_protocols: UnsupervisedProtocols
    """Settings of those protocols."""


class TableRow(BaseModel):
    """A row of a paper table: `model`, the `paper` row it is shown beside, and label columns (any name)."""
    model_config = ConfigDict(extra="allow", strict=True, use_attribute_docstrings=True)
    model: str
    """The model whose metrics fill the row."""
    paper: dict[str, Any]
    """Keys that pick the row of the paper's table (references/paper_tables.yaml) shown beside it."""


class Params(Section):
    """params.yaml: the one configuration file of the pipeline. Snakemake and DVC both read it; every stage
    declares the keys it reads, so changing a value reruns exactly the stages that depend on it."""
    dataset: str
    """The one key that selects a dataset and its preset: tiny (embedded, generated offline), voc2012 (VOC 2012
    + SBD, downloaded), cityscapes (needs an account) or a name of `datasets`."""
    seed: NonNegativeInt
    """Seed of the dataset, the figures and every training run."""
    replicate_seeds: list[NonNegativeInt]
    """The rows of `replicated_tables` trained again with each of these seeds; <table>_seeds.csv gives each
    row's mean and standard deviation over `seed` and these (outputs under data/<dataset>/seeds/<seed>/)."""
    replicated_tables: dict[str, list[str]]
    """Per table, the rows (models) trained again with every replicate seed."""
    threads: PositiveInt
    """torch CPU threads of every stage, fixed so that results do not depend on the scheduler."""
    checkpoint_every: PositiveInt
    """Training saves a resume state every N steps."""
    mixed_precision: bool
    """Training runs the backbone and decoder in bfloat16 autocast on a GPU (no effect on a CPU)."""
    train_launcher: str
    """The command that runs stages/train.py: `python`, or e.g. `torchrun --standalone --nproc_per_node gpu`
    for data-parallel training on every local GPU."""
    data_threads: NonNegativeInt
    """Training on a GPU: threads that make the next batches while a step runs (no result depends on them,
    so no stage tracks this key); on a CPU the step makes its own batch."""
    tiny: TinyData
    """The embedded tiny dataset."""
    datasets: dict[str, OwnDataset]
    """Datasets of your own by name; `dataset: <name>` selects one."""
    downloads: Downloads
    """Where the real datasets' archives come from."""
    hed: Hed
    """HED contours."""
    pseudo_segments: PseudoSegments
    """HED-owt-ucm pseudo-segments."""
    real_samples_dir: str
    """A few real BSDS500 and VOC images with human labels (real_samples/README.md), for
    reports/pseudo_segments_quality.csv and Figure 6. Not named like the folder: `dvc exp show
    --only-changed` fails on a key named like a dependency."""
    figure6: Figure6
    """Figure 6."""
    retrieval_figures: RetrievalFigures
    """Figures 5 and 7."""
    table4: Table4
    """Table 4."""
    prototype_figures: PrototypeFigures
    """Figures 8-10."""
    comparison_figures: dict[str, ComparisonFigure]
    """Figures 4 and 14 by name (their files' stems)."""
    inference_sweep: InferenceSweep
    """The sweep of Table 4 and Figure 13."""
    ablations: Ablations
    """The retrained points of Figures 11 and 12."""
    hidden_class: HiddenClass
    """A class hidden from training, then added to the bank: the hidden-class experiment."""
    networks: dict[str, Network]
    """Networks by name."""
    optimizer: Optimizer
    """Optimiser and augmentation."""
    presets: dict[str, Preset]
    """Hyper-parameters per dataset, by the dataset's name (a dataset of your own names the one it uses)."""
    unsupervised_runs: dict[str, Run]
    """Unsupervised SegSort: the vMF loss (Eq. 8) on HED-owt-ucm pseudo-segments, no labels."""
    supervised_runs: dict[str, Run]
    """Supervised SegSort: the vMF-N loss (Eq. 10) on k-means segments partitioned by the labels."""
    softmax_runs: dict[str, Run]
    """The pixel-wise softmax cross-entropy baselines of Tables 1 and 9, same data and schedules."""
    evaluation: Evaluation
    """Evaluation."""
    tables: dict[str, list[TableRow]]
    """Tables of the paper by name (table1 ... table9): rows in the paper's order."""

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
        if self.hidden_class.run not in self.supervised_runs:
            problems.append(f"hidden_class.run: {self.hidden_class.run!r} is not a supervised run")
        elif not self.supervised_runs[self.hidden_class.run].init.startswith("imagenet_"):
            problems.append(f"hidden_class.run: {self.hidden_class.run!r} starts from "
                            f"{self.supervised_runs[self.hidden_class.run].init!r}, a model that may have seen the "
                            f"class; the hidden-class run must start from imagenet_<network>")
        if self.hidden_class.run not in self.evaluation.kmeans_models:
            problems.append(f"hidden_class.run: {self.hidden_class.run!r} must be in evaluation.kmeans_models (its "
                            f"metrics are the hidden-class table's reference)")
        if self.ablations.network not in self.networks:
            problems.append(f"ablations.network: {self.ablations.network!r} is not in networks")
        problems += [f"replicated_tables.{table}: {model!r} is not a row of tables.{table}"
                     for table, models in self.replicated_tables.items() for model in models
                     if model not in {row.model for row in self.tables.get(table, [])}]
        problems += [f"presets.{preset}.stand_ins.{paper}: {paper!r} and {used!r} must both be in networks"
                     for preset, settings in self.presets.items() for paper, used in settings.stand_ins.items()
                     if not {paper, used} <= set(self.networks)]
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
