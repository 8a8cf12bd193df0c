"""Every configuration key tfseg knows: its type, its default and why. The one place defaults live.

A run's configuration is a ``RunConfig`` made of sections. Any leaf can be set from YAML or
from the command line as ``section.key=value``; keys whose name is unique across sections
can also be given bare (``epochs=10``), and ``ALIASES`` adds the short names YOLO users know
(``imgsz``, ``batch``, ``model``, ``data``).

Each key is declared with ``key(default, why)``: the sentence is the key's documentation,
kept beside its value so the two cannot part. ``tfseg.config.load.defaults_yaml`` writes
every key with its default and sentence (configs/train/default.yaml is that text, and a test
holds it to it). Values follow the published YOLOv8/YOLO11-seg recipe unless a sentence says
why not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def key(default: Any, why: str) -> Any:
    """A config key's dataclass field: its default and the one line that documents it."""
    return field(default=default, metadata={"why": why})


@dataclass
class ModelConfig:
    name: str = key("yolov8-seg-n", "yolov8-seg-, yolo11-seg- or yolo26-seg- and a scale n, s, m, l, x; "
                    "n is what a CPU can train")
    num_classes: int = key(0, "0: take it from the dataset")
    weights: str = key("", "Keras weights (.weights.h5 / .keras), an Ultralytics .pt or a run "
                       "directory to start from")
    image_size: int = key(640, "square input in pixels, a multiple of 32; 640 is COCO practice, "
                          "the demo and CI use 320 or less")


@dataclass
class DataConfig:
    name: str = key("shapes", "a dataset in configs/data/<name>.yaml, or a path to such a YAML "
                    "(ours or an Ultralytics data.yaml)")
    format: str = key("coco", "coco | yolo: layout of the source files")
    root: str = key("", "dataset root; the paths below are under it. Empty: datasets/<name>")
    train_images: str = key("images/train", "folder of the training images")
    train_annotations: str = key("annotations/instances_train.json", "COCO JSON of the training images")
    val_images: str = key("images/val", "folder of the validation images")
    val_annotations: str = key("annotations/instances_val.json",
                               "COCO JSON of the validation images: the evaluation ground truth")
    records: str = key("", "prepared TFDS records; empty: <root>/records")
    data_yaml: str = key("", "format yolo: the YOLO-seg data.yaml (relative to root)")
    prepare_workers: int = key(-1, "processes preparing records; -1: every CPU, 0 or 1: in process")
    strict: bool = key(False, "stop at the first bad record instead of counting and skipping it")
    beam_options: str = key("", "Apache Beam pipeline options: prepare on Beam (needs tfseg[beam])")
    overwrite: bool = key(False, "prepare records again even when they exist")
    max_instances: int = key(100, "M, instances per image in a training batch: COCO images hold up "
                             "to ~90 after crowd removal; a mosaic's extra ones are counted")
    cache: str = key("false", "false | ram | disk: keep the training images decoded and resized "
                     "after the first epoch (in memory, or in files beside the records) instead of "
                     "decoding them every epoch; training says what it needs and refuses what "
                     "does not fit")
    shapes_train: int = key(200, "built-in shapes dataset (written when name is shapes and root has "
                            "no data): training images, enough for the quick demo to reach a "
                            "visible mAP in a few CPU minutes")
    shapes_val: int = key(40, "shapes: validation images")
    shapes_seed: int = key(0, "shapes: the same seed writes byte-identical files")
    shapes_min_size: int = key(96, "shapes: each image side is drawn in [min, max] pixels, so sizes "
                               "and aspect ratios vary")
    shapes_max_size: int = key(160, "shapes: see shapes_min_size")
    shapes_num_classes: int = key(3, "shapes: 1..5 kinds; category ids 1, 3, 7, 8, 12 "
                                  "(non-contiguous on purpose)")
    shapes_objects: int = key(0, "shapes: 0 draws 1-4 shapes sized to each image; n > 0 scatters "
                              "about n small ones (20-80 px) instead: large images for tiled "
                              "inference (docs/large_images.md)")


@dataclass
class AugmentConfig:
    mosaic: float = key(1.0, "probability of a 4-image mosaic: more instances and scales per step")
    close_mosaic: int = key(10, "mosaic off for the last N epochs: they train on plain images, as "
                            "the model will see them")
    degrees: float = key(0.0, "random rotation range (+/- degrees)")
    translate: float = key(0.1, "random translation (+/- fraction of the image)")
    scale: float = key(0.5, "random scale gain range (1 +/- scale)")
    shear: float = key(0.0, "random shear (+/- degrees)")
    perspective: float = key(0.0, "random perspective: the warp's projective terms drawn in +/- "
                             "this, at most 0.001; 0 keeps the warp affine")
    fliplr: float = key(0.5, "probability of a horizontal flip")
    flipud: float = key(0.0, "probability of a vertical flip: for views without an up (aerial, "
                        "microscopy); upside-down street scenes only mislead")
    hsv_h: float = key(0.015, "hue jitter (fraction)")
    hsv_s: float = key(0.7, "saturation jitter (fraction)")
    hsv_v: float = key(0.4, "value jitter (fraction)")
    min_area: float = key(4.0, "instances smaller than this (input pixels) after augmentation are "
                          "dropped")
    mixup: float = key(0.0, "probability of blending with a second augmented sample (Beta(32, 32) "
                       "ratio), the instances of both kept. Larger models: model= applies its "
                       "scale's published values of this section to the keys you leave unset "
                       "(configs/train/recipes.yaml)")
    cutmix: float = key(0.0, "probability of pasting a rectangle of a second sample; its "
                        "instances are kept where visible")
    copy_paste: float = key(0.0, "fraction of the eligible instances (covering under 30% of every "
                            "box) pasted with their pixels; mode mixup: also its probability")
    copy_paste_mode: str = key("flip", "flip | mixup: paste instances of the mirrored image, or of "
                               "a second sample")
    multi_scale: float = key(0.0, "each batch resized to a multiple of 32 drawn within imgsz "
                             "(1 +/- this); 0.5 at 320 trains at 160-480. Memory follows the "
                             "largest size")


@dataclass
class TrainConfig:
    epochs: int = key(100, "passes over the training set")
    batch: int = key(16, "global batch: split across replicas under tf.distribute")
    steps_per_epoch: int = key(0, "0: one pass over the training set")
    optimizer: str = key("auto", "auto | sgd | adamw; auto takes AdamW for short runs (< 10k "
                         "iterations), SGD for long ones, and sets lr0 and momentum itself "
                         "(setting them is refused)")
    lr0: float = key(0.01, "initial rate (after warmup), SGD's; needs optimizer sgd or adamw "
                     "(auto derives AdamW's from the class count)")
    lrf: float = key(0.01, "final rate as a fraction of lr0, reached at the last epoch")
    momentum: float = key(0.937, "SGD momentum / Adam beta1")
    weight_decay: float = key(0.0005, "applied to kernels only, never to batch-norm or biases")
    warmup_epochs: float = key(3.0, "linear warmup of the rate (and of momentum from 0.8)")
    warmup_bias_lr: float = key(0.1, "biases start high during warmup, as the reference does")
    cosine: bool = key(False, "cosine decay instead of the reference's linear one")
    ema: bool = key(True, "evaluate and export a moving average of the weights: steadier than "
                    "the raw ones")
    clip_norm: float = key(10.0, "global gradient-norm clipping, a guard for the first iterations "
                           "when the assigner is still noisy; 0 disables")
    nominal_batch: int = key(64, "accumulate gradients to this many images per update, the batch "
                             "the rates were tuned for; 0: off")
    mixed_precision: bool = key(True, "float16 on GPUs, bfloat16 on TPUs and bfloat16 CPUs, else "
                                "float32 (tfseg.train.precision)")
    jit_compile: bool = key(True, "XLA on GPUs: the train step has fixed shapes and compiles once "
                            "(off on CPUs, where it is slower)")
    box: float = key(7.5, "box loss gain (CIoU)")
    cls: float = key(0.5, "class loss gain (BCE)")
    dfl: float = key(1.5, "distribution focal loss gain (yolo26, no DFL: gain of the L1 distance "
                     "term in its place)")
    seg: float = key(0.0, "mask loss gain; 0: the box gain, as the reference does")
    topk: int = key(10, "assigner: candidate anchors per ground-truth instance (yolo26: its "
                    "one-to-many head)")
    alpha: float = key(0.5, "assigner: alignment = score^alpha * IoU^beta")
    beta: float = key(6.0, "assigner: IoU exponent of the alignment (see alpha)")
    max_mask_anchors: int = key(0, "mask loss: positives per image it covers; 0: all, as the "
                                "reference does (a bound caps its memory on crowded images)")
    patience: int = key(50, "stop when mask mAP has not improved for this many epochs (judged at "
                        "evaluations only); 0: off")
    eval_period: int = key(1, "evaluate every N epochs (and always the last)")
    freeze: int = key(0, "freeze the first N backbone stages")
    strategy: str = key("auto", "auto | default | mirrored | multi_worker (tf.distribute)")
    resume: str = key("", "run directory to resume (epochs=, patience=, eval_period=... may change)")
    seed: int = key(0, "seeds the initialisation, shuffling and augmentation")


@dataclass
class EvalConfig:
    conf: float = key(0.001, "score threshold: COCO mAP needs the low-score tail")
    iou: float = key(0.7, "NMS IoU threshold")
    max_det: int = key(300, "detections kept per image, as COCO evaluation does")
    tile: int = key(0, "0: off; n: also evaluate each original image as n px tiles (1: tiles of "
                    "the model's input size) merged with the whole-image pass (docs/large_images.md)")
    tile_overlap: float = key(0.2, "with tile: fraction of a tile that neighbouring tiles share")
    batch: int = key(8, "images per evaluation batch")
    agnostic: bool = key(False, "class-agnostic NMS")
    multi_label: bool = key(False, "true: an anchor may be kept once per class it scores for (as "
                            "Ultralytics validates)")
    end2end: bool = key(True, "yolo26-seg: the one-to-one head's top-k, no NMS (what it is trained "
                        "for); false: one-to-many head + NMS")
    augment: bool = key(False, "test-time augmentation: the image, its mirror and 0.83 / 0.67 "
                        "scales in one batch, merged by one NMS (docs/tta.md); Keras models only")
    split: str = key("val", "the split evaluated: val or train")
    plots: bool = key(True, "PR curves, confusion matrix and a prediction grid as PNGs")


@dataclass
class PredictConfig:
    source: str = key("", "image, folder, glob, video file, stream URL (rtsp://, http://...) "
                      "or camera index")
    conf: float = key(0.25, "score threshold: what a user wants to see")
    iou: float = key(0.7, "NMS IoU threshold")
    max_det: int = key(300, "detections kept per image")
    tile: int = key(0, "0: off; n: also cut each image into overlapping n px tiles (1: the model's "
                    "input size), run them in batches and merge them with the whole-image pass: "
                    "small objects in large images (docs/large_images.md)")
    tile_overlap: float = key(0.2, "with tile: fraction of a tile that neighbouring tiles share; an "
                              "object cut by a border is whole in a neighbour when it fits that band")
    save_json: bool = key(False, "write predictions.json (boxes, scores, classes, masks)")
    mask_format: str = key("rle", "rle | polygon, for the JSON")
    cutouts: str = key("none", "none | alpha | black: one image per detection, its mask cut out")
    agnostic: bool = key(False, "class-agnostic NMS")
    end2end: bool = key(True, "yolo26-seg: the one-to-one head's top-k, no NMS; false: "
                        "one-to-many head + NMS")
    augment: bool = key(False, "test-time augmentation: the image, its mirror and 0.83 / 0.67 "
                        "scales in one batch, merged by one NMS (docs/tta.md); Keras models only")
    save_overlays: bool = key(True, "overlay images / videos with masks, boxes and labels")
    weights: str = key("", ".keras/.weights.h5, a SavedModel or a .tflite file; empty: model.weights")
    tracker: str = key("", "track objects across frames with this tracker YAML (bytetrack.yaml or "
                       "a file of yours); empty: no tracking (tfseg track: bytetrack.yaml)")


@dataclass
class ExportConfig:
    formats: str = key("savedmodel,tflite", "comma-separated: savedmodel, tflite, tflite_segmenter")
    raw: bool = key(True, "also write the network-only .tflite (apps with their own "
                    "post-processing)")
    tflite_modes: str = key("float32", "comma-separated: float32, float16, dynamic_int8, int8")
    conf: float = key(0.25, "default of the run-time score threshold input: what an app shows "
                      "(lower it to evaluate the export offline)")
    iou: float = key(0.45, "default of the run-time NMS IoU threshold input")
    max_det: int = key(100, "the fixed N of every output; the run-time max_detections may only "
                       "lower it")
    agnostic: bool = key(False, "class-agnostic NMS")
    end2end: bool = key(True, "yolo26-seg: the one-to-one head's top-k in the graph, no NMS; "
                        "false: one-to-many head + NMS")
    serving_name: str = key("tfseg", "TF Serving model name (<dir>/<name>/<version>/)")
    serving_version: int = key(1, "TF Serving model version")
    calibration_images: int = key(100, "representative images for int8")
    mask_size: int = key(0, "0: masks [N, S/4, S/4] on the letterboxed grid; m > 0 (56, 112): "
                         "box_masks [N, m, m] spanning each box, which an app only resizes to it")
    mask_dtype: str = key("float32", "float32 probabilities, or uint8 round(255 p): 4x smaller, "
                          "threshold at 128")
    standard_outputs: bool = key(False, "true: the end-to-end .tflite has the 4 outputs the TFLite "
                                 "Task Library's and MediaPipe's ObjectDetector take (boxes only; "
                                 "both refuse a 5th output)")
    parity: bool = key(True, "score every written file against the Keras model on validation "
                       "images (needs the dataset)")
    parity_images: int = key(200, "validation images the parity check scores (int8 at 640 is slow "
                             "on CPU)")
    parity_max_drop: float = key(1.0, "fail when a file's mask mAP50-95 is this many points below "
                                 "Keras's")


@dataclass
class RunConfig:
    task: str = key("segment", "the only task tfseg has; any other value is refused (kept so "
                    "YOLO-style configs load)")
    project: str = key("runs", "run directories go to <project>/<verb>/<name>")
    name: str = key("", "run name; empty: the verb's default (train, val, ...), auto-incremented")
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
