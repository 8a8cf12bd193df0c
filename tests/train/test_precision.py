"""The dtype policy of train.mixed_precision: bfloat16 CPUs told apart, and what bfloat16
computes against float32 on the same weights and batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseg.train.precision import cpu_has_bf16


def test_bfloat16_cpus_are_recognised_from_their_cpuinfo_flags(tmp_path):
    def cpuinfo(flags):
        path = tmp_path / f"cpuinfo_{len(flags)}"
        path.write_text("processor\t: 0\nmodel name\t: test\nflags\t\t: " + " ".join(flags) + "\n")
        return path

    assert cpu_has_bf16(cpuinfo(["fpu", "avx2", "avx512f", "avx512_bf16"]))
    assert cpu_has_bf16(cpuinfo(["fpu", "amx_tile", "amx_bf16"]))
    assert not cpu_has_bf16(cpuinfo(["fpu", "avx2", "avx512f", "avx512_vnni"]))
    assert not cpu_has_bf16(tmp_path / "missing")


@pytest.mark.slow  # a model's loss and gradients traced twice
def test_a_mixed_bfloat16_model_computes_the_float32_loss_and_gradients_within_bfloat16_error():
    """What train.mixed_precision=true runs on a bfloat16 CPU: the same weights and batch give
    the float32 model's loss within 2%, and gradients closer to float32's than float32's own
    gradient on the next batch is (the noise SGD already lives with); variables, the loss and
    the outputs stay float32."""
    from tfseg.benchmarks.train import _batch
    from tfseg.model.yolo_seg import build_model

    images, targets = _batch(128, 4, 8)
    batches = [(images[i:i + 2], {k: v[i:i + 2] for k, v in targets.items()}) for i in (0, 2)]
    models = {}
    for policy in ("float32", "mixed_bfloat16"):
        keras.config.set_dtype_policy(policy)
        try:
            models[policy] = build_model("yolov8-seg-n", 3, 128)
        finally:
            keras.config.set_dtype_policy("float32")
        models[policy].configure_loss()
    models["mixed_bfloat16"].set_weights(models["float32"].get_weights())

    def loss_and_gradient(model, batch):
        with tf.GradientTape() as tape:
            outputs = model(batch[0], training=True)
            loss = model.compute_loss(batch[0], batch[1], outputs)
        assert loss.dtype == tf.float32 and all(o.dtype == "float32" for o in tf.nest.flatten(outputs))
        grads = tape.gradient(loss, model.trainable_variables)
        return float(loss), tf.concat([tf.reshape(g, [-1]) for g in grads], 0).numpy()

    def cosine(a, b):
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    loss32, grad32 = loss_and_gradient(models["float32"], batches[0])
    loss16, grad16 = loss_and_gradient(models["mixed_bfloat16"], batches[0])
    _, grad32_next = loss_and_gradient(models["float32"], batches[1])
    assert models["mixed_bfloat16"].get_layer("stem").compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in models["mixed_bfloat16"].weights)
    assert not np.array_equal(grad32, grad16)  # bfloat16 did the arithmetic
    assert loss16 == pytest.approx(loss32, rel=0.02)
    assert cosine(grad32, grad16) > 0.8
    assert cosine(grad32, grad16) > cosine(grad32, grad32_next)
