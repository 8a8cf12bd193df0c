"""Every configuration key tfseg knows: its type, default and one-line meaning.

A run's configuration is a ``RunConfig`` made of sections. Any leaf can be set from YAML or
from the command line as ``section.key=value``; keys whose name is unique across sections
can also be given bare (``epochs=10``), and ``ALIASES`` adds the short names YOLO users know
(``imgsz``, ``batch``, ``model``, ``data``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    name: str = "yolov8-seg-n"  # family and scale: yolov8-seg-, yolo11-seg- or yolo26-seg-{n,s,m,l,x}
    num_classes: int = 0  # 0: take it from the dataset
    weights: str = ""  # Keras weights (.weights.h5 / .keras) or a run directory to start from
    image_size: int = 640  # square input size in pixels, divisible by 32


@dataclass
class DataConfig:
    name: str = "shapes"  # a dataset in configs/data/<name>.yaml, or a path to such a YAML
    format: str = "coco"  # coco | yolo: layout of the source files
    root: str = ""  # dataset root; relative paths below are under it. Empty: datasets/<name>
    train_images: str = "images/train"
    train_annotations: str = "annotations/instances_train.json"
    val_images: str = "images/val"
    val_annotations: str = "annotations/instances_val.json"
    records: str = ""  # prepared TFDS records; empty: <root>/records
    data_yaml: str = ""  # format yolo: the YOLO-seg data.yaml (relative to root)
    prepare_workers: int = -1  # processes preparing records; -1: every CPU, 0 or 1: in process
    strict: bool = False  # stop at the first bad record instead of counting and skipping it
    beam_options: str = ""  # Apache Beam pipeline options: prepare on Beam (needs tfseg[beam])
    overwrite: bool = False  # prepare records again even when they exist
    max_instances: int = 100  # M: instances per image in a training batch
    # The built-in synthetic dataset, written when name is shapes and root has no data.
    shapes_train: int = 200
    shapes_val: int = 40
    shapes_seed: int = 0
    shapes_min_size: int = 96  # each image side is drawn in [min, max] pixels
    shapes_max_size: int = 160
    shapes_num_classes: int = 3


@dataclass
class AugmentConfig:
    mosaic: float = 1.0  # probability of a 4-image mosaic
    close_mosaic: int = 10  # turn mosaic off for the last N epochs
    degrees: float = 0.0  # random rotation range (+/- degrees)
    translate: float = 0.1  # random translation (+/- fraction of the image)
    scale: float = 0.5  # random scale gain range (1 +/- scale)
    shear: float = 0.0  # random shear (+/- degrees)
    fliplr: float = 0.5  # probability of a horizontal flip
    hsv_h: float = 0.015  # hue jitter (fraction)
    hsv_s: float = 0.7  # saturation jitter (fraction)
    hsv_v: float = 0.4  # value jitter (fraction)
    min_area: float = 4.0  # instances smaller than this (input pixels) after augmentation are dropped


@dataclass
class TrainConfig:
    epochs: int = 100
    batch: int = 16  # global batch size
    steps_per_epoch: int = 0  # 0: one pass over the training set
    optimizer: str = "auto"  # auto | sgd | adamw; auto picks lr0/momentum itself (setting them is refused)
    lr0: float = 0.01  # initial learning rate (after warmup); needs optimizer sgd or adamw
    lrf: float = 0.01  # final learning rate as a fraction of lr0
    momentum: float = 0.937
    weight_decay: float = 0.0005
    warmup_epochs: float = 3.0
    warmup_bias_lr: float = 0.1
    cosine: bool = False  # cosine decay instead of linear
    ema: bool = True  # keep an exponential moving average of the weights for eval and export
    clip_norm: float = 10.0  # global gradient-norm clipping; 0 disables
    nominal_batch: int = 64  # accumulate gradients to this many images per update; 0: off
    # float16 on GPUs, bfloat16 on TPUs and bfloat16 CPUs, else float32 (train.precision)
    mixed_precision: bool = True
    jit_compile: bool = True
    box: float = 7.5  # box loss gain
    cls: float = 0.5  # class loss gain
    dfl: float = 1.5  # distribution focal loss gain (yolo26: gain of the L1 distance term replacing it)
    seg: float = 0.0  # mask loss gain; 0: the box gain, as the reference does
    topk: int = 10  # assigner: positive anchors per ground-truth instance (yolo26: one-to-many head)
    alpha: float = 0.5  # assigner: score exponent of the alignment metric
    beta: float = 6.0  # assigner: IoU exponent of the alignment metric
    max_mask_anchors: int = 256  # mask loss: positives per image it covers (memory cap)
    patience: int = 50  # stop when an evaluation finds no mask mAP gain for this many epochs; 0: off
    eval_period: int = 1  # evaluate every N epochs (and always the last)
    freeze: int = 0  # freeze the first N backbone stages
    strategy: str = "auto"  # auto | default | mirrored | multi_worker
    resume: str = ""  # run directory to resume (epochs=, patience=, eval_period=... may change)
    seed: int = 0


@dataclass
class EvalConfig:
    conf: float = 0.001  # score threshold for evaluation
    iou: float = 0.7  # NMS IoU threshold
    max_det: int = 300
    batch: int = 8
    agnostic: bool = False  # class-agnostic NMS
    multi_label: bool = False  # True: an anchor may be kept once per class it scores for (as Ultralytics validates)
    end2end: bool = True  # one-to-one head (yolo26-seg): top-k, no NMS; false: one-to-many + NMS
    split: str = "val"
    plots: bool = True  # PR curves, confusion matrix and a prediction grid as PNGs


@dataclass
class PredictConfig:
    source: str = ""  # image, folder, glob, video file or camera index
    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    save_json: bool = False
    mask_format: str = "rle"  # rle | polygon, for the JSON
    cutouts: str = "none"  # none | alpha | black
    agnostic: bool = False  # class-agnostic NMS
    end2end: bool = True  # one-to-one head (yolo26-seg): top-k, no NMS; false: one-to-many + NMS
    save_overlays: bool = True  # overlay images / videos with masks, boxes and labels
    weights: str = ""  # .keras/.weights.h5, a SavedModel or a .tflite file; empty: model.weights


@dataclass
class ExportConfig:
    formats: str = "savedmodel,tflite"  # comma-separated: savedmodel, tflite
    raw: bool = True  # also write the network-only .tflite (apps with their own post-processing)
    tflite_modes: str = "float32"  # comma-separated: float32, float16, dynamic_int8, int8
    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 100
    agnostic: bool = False
    end2end: bool = True  # one-to-one head (yolo26-seg): top-k, no NMS; false: one-to-many + NMS
    serving_name: str = "tfseg"
    serving_version: int = 1
    calibration_images: int = 100  # representative images for int8
    mask_size: int = 0  # 0: masks [N, S/4, S/4] on the prototype grid; m > 0: box_masks [N, m, m] spanning each box
    mask_dtype: str = "float32"  # float32 probabilities, or uint8 round(255 p) (4x smaller)
    standard_outputs: bool = False  # end-to-end .tflite with the 4 object-detector outputs (Task Library, MediaPipe; no masks)
    parity: bool = True  # score every written file against the Keras model on validation images
    parity_images: int = 200  # validation images the parity check scores (int8 at 640 is slow on CPU)
    parity_max_drop: float = 1.0  # fail when a file's mask mAP50-95 is this many points below Keras's


@dataclass
class RunConfig:
    task: str = "segment"  # the only task tfseg has; any other value is refused (kept so YOLO-style configs load)
    project: str = "runs"  # run directories go to <project>/<verb>/<name>
    name: str = ""  # run name; empty: the verb's default (train, val, ...), auto-incremented
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


SECTIONS = ("model", "data", "augment", "train", "eval", "predict", "export")

# Short names users of the YOLO family type; each maps to one dotted key.
ALIASES = {
    "model": "model.name",
    "data": "data.name",
    "imgsz": "model.image_size",
    "image_size": "model.image_size",
    "weights": "model.weights",
    "batch": "train.batch",
    "source": "predict.source",
}
