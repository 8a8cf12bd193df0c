"""Which dtype policy ``train.mixed_precision`` trains under on this machine.

Mixed precision keeps variables, the loss and the model's outputs float32 and runs the
network's passes in a 16-bit type where the hardware does that arithmetic natively:
float16 on GPUs with tensor cores, bfloat16 on TPUs and on CPUs with AVX512-BF16 or AMX.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bfloat16 math


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU does bfloat16 arithmetic natively (AVX512-BF16 or AMX), which oneDNN
    uses for bfloat16 convolutions and matmuls. False where ``cpuinfo`` cannot be read."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def precision_policy(enabled: bool) -> str:
    """The Keras dtype policy for ``train.mixed_precision``.

    ``mixed_float16`` on GPUs of compute capability 7.0 or newer (tensor cores; Keras wraps
    the optimizer in a LossScaleOptimizer), ``mixed_bfloat16`` on TPUs and on CPUs with
    native bfloat16 math (AVX512-BF16 or AMX: the network's passes take about a third less
    CPU, see docs/benchmarks.md), ``float32`` otherwise (older GPUs lose accuracy for
    no speed; CPUs without bfloat16 instructions emulate it, slower than float32).
    Variables, the loss and the model's outputs stay float32 under either mixed policy.
    """
    if not enabled:
        return "float32"
    if tf.config.list_logical_devices("TPU"):
        return "mixed_bfloat16"
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and capability >= (7, 0):
            return "mixed_float16"
    if not gpus and cpu_has_bf16():
        return "mixed_bfloat16"
    print("train.mixed_precision: float32 (no GPU of compute capability 7.0 or newer, TPU or "
          "bfloat16 CPU here gains from a mixed policy)", flush=True)
    return "float32"
