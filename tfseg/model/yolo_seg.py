"""YoloSeg: the YOLOv8-seg / YOLO11-seg / YOLO26-seg network as one functional Keras model.

Input ``images``: float32 ``[B, S, S, 3]`` RGB in [0, 1]. Output: the raw-output dict of
tfseg/contracts.py (box_logits, class_logits, mask_coefficients, prototypes; YOLO26 adds the
one-to-one head's END_TO_END_OUTPUTS and the training-only semantic logits). The model
returns the same thing in training and inference; decoding, NMS and masks are composed
outside it (tfseg/postprocess).

Example:
    >>> model = build_model("yolov8-seg-n", num_classes=3, image_size=128)
    >>> outputs = model(images)            # images [B, 128, 128, 3]
    >>> outputs["box_logits"].shape        # (B, 336, 64)
"""

from __future__ import annotations

import keras

from tfseg.contracts import STRIDES
from tfseg.errors import ConfigError
from tfseg.loss.end_to_end_loss import EndToEndSegLoss
from tfseg.loss.yolo_seg_loss import YoloSegLoss
from tfseg.model.backbone import yolo11_backbone, yolo26_backbone, yolov8_backbone
from tfseg.model.head import SegmentHead
from tfseg.model.head26 import DualSegmentHead
from tfseg.model.neck import yolo11_neck, yolo26_neck, yolov8_neck
from tfseg.model.scales import model_spec
from tfseg.model.train_function import has_accelerator, without_graph_rewrites

_FAMILIES = {
    "yolov8-seg": (yolov8_backbone, yolov8_neck, False),
    "yolo11-seg": (yolo11_backbone, yolo11_neck, True),
    "yolo26-seg": (yolo26_backbone, yolo26_neck, True),
}


def _check_arguments(num_classes: int, image_size: int) -> None:
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"model.num_classes: must be a positive integer, got {num_classes!r}")
    if not isinstance(image_size, int) or image_size < max(STRIDES) or image_size % max(STRIDES):
        raise ConfigError(f"model.image_size: must be a positive multiple of {max(STRIDES)}, "
                          f"got {image_size!r}")


@keras.saving.register_keras_serializable(package="tfseg")
class YoloSeg(keras.Model):
    """A YOLOv8-seg, YOLO11-seg or YOLO26-seg network, chosen by name.

    Args:
        model_name: ``<family>-{n,s,m,l,x}``, family yolov8-seg, yolo11-seg or yolo26-seg.
        num_classes: C, number of classes.
        image_size: S, square input size, a multiple of 32.

    Raises:
        ConfigError: unknown name, C < 1, or S not a multiple of 32.
    """

    def __init__(self, model_name: str, num_classes: int, image_size: int, **kwargs):
        _check_arguments(num_classes, image_size)
        spec = model_spec(model_name)
        make_backbone, make_neck, lightweight = _FAMILIES[spec.family]
        images = keras.Input((image_size, image_size, 3), name="images", dtype="float32")
        levels = make_neck(make_backbone(images, spec), spec)
        head_class = DualSegmentHead if spec.end2end else SegmentHead
        head = head_class(num_classes, [int(f.shape[-1]) for f in levels],
                           proto_channels=spec.channels(spec.proto_channels),
                           reg_max=spec.reg_max, num_masks=spec.num_masks,
                           lightweight_class_branch=lightweight, name="head")
        outputs = head(levels)
        kwargs.setdefault("name", model_name.replace("-", "_"))
        super().__init__(inputs=images, outputs=outputs, **kwargs)
        self.model_name, self.num_classes, self.image_size = model_name, num_classes, image_size
        self.spec = spec

    # Training: Keras fit calls compute_loss with (x, y, y_pred); tfseg.loss does the work
    # (this file is the only place the model may import the loss from).

    def make_loss(self, **arguments) -> YoloSegLoss | EndToEndSegLoss:
        """The family's training loss: YoloSegLoss (YOLOv8/11, DFL), or EndToEndSegLoss for
        the dual-head YOLO26 (both with this model's ``reg_max``).

        Args:
            **arguments: YoloSegLoss arguments (tfseg.config.factory.loss_arguments);
                image_size and num_classes default to the model's.
        """
        arguments = {"image_size": self.image_size, "num_classes": self.num_classes,
                     **arguments, "reg_max": self.spec.reg_max}
        return (EndToEndSegLoss if self.spec.end2end else YoloSegLoss)(**arguments)

    def configure_loss(self, loss: YoloSegLoss | EndToEndSegLoss | None = None) -> None:
        """Set the training loss and create its per-term log metrics (``box_loss``, ...).

        Call before ``compile``/``fit``, inside the strategy scope (the metrics, and the
        head weight of EndToEndSegLoss, hold variables). ``loss``: from ``make_loss``; None
        uses the reference gains.
        """
        self.yolo_loss = loss or self.make_loss()
        self.loss_terms = [keras.metrics.Mean(name=f"{term}_loss")
                           for term in self.yolo_loss.term_names]
        # Instances beyond the targets' M slots, summed over the epoch (tfseg.pipeline.targets).
        self.dropped_instances = keras.metrics.Sum(name="dropped_instances")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The YOLO-seg loss of targets ``y`` (TRAIN_TARGETS) and raw outputs ``y_pred``.

        Returns the scalar total (summed over the batch, as tfseg.loss documents); each
        gained term is tracked as a metric so Keras logs it per epoch. Under tf.distribute
        the total is the replica's own batch sum, deliberately not divided by the replica
        count: Keras sums the replicas' gradients (see tfseg/train/strategy.py).
        """
        if getattr(self, "yolo_loss", None) is None:
            raise RuntimeError("YoloSeg.configure_loss() must be called before training")
        total, terms = self.yolo_loss(y, y_pred)
        for term, tracker in zip(self.yolo_loss.term_names, self.loss_terms):
            tracker.update_state(terms[term])
        if "dropped" in y:
            self.dropped_instances.update_state(keras.ops.sum(y["dropped"]))
        return total

    def make_train_function(self, force=False):
        """Keras' train function; on CPUs run without grappler's graph rewrites, which
        cost seconds of every run's start there and gained nothing
        (tfseg/model/train_function.py).

        The optimizer's variables are created here, before the first trace: outside a
        distribution strategy Keras leaves that to the trace, and a trace that creates
        variables makes TensorFlow trace the train step a second time.
        """
        if self.train_function is not None and not force:
            return self.train_function
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)
        super().make_train_function(force=True)
        if not has_accelerator():
            self.train_function = without_graph_rewrites(self.train_function)
        return self.train_function

    def get_config(self):
        return {"model_name": self.model_name, "num_classes": self.num_classes,
                "image_size": self.image_size, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def build_model(name: str, num_classes: int, image_size: int) -> YoloSeg:
    """Build a YoloSeg by name (fresh weights, head biases at their priors).

    Args:
        name: ``yolov8-seg-{n,s,m,l,x}`` or ``yolo11-seg-{n,s,m,l,x}``.
        num_classes: C.
        image_size: S, a multiple of 32.

    Returns:
        The functional model: ``images [B, S, S, 3]`` -> raw-output dict.
    """
    return YoloSeg(name, num_classes, image_size)
