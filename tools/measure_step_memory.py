"""Peak resident memory (and speed) of the train step alone on real batches.

Usage:
    python tools/measure_step_memory.py --size 320 [--data cocolike] [--batch 16] [--steps 6] [--mode bf16]

Builds the dataset's training pipeline (mosaic on), keeps 4 batches in memory, fits the model
on them (``tfseg.benchmarks.train.measure``, Keras ``fit`` as ``tfseg train`` runs it, without
callbacks or evaluation) and prints one JSON line with images/s, CPU seconds per step and the
process's peak resident memory in MB. Run it once per size in a fresh process: the peak is the
process's own. The whole-run figures (pipeline, evaluation, callbacks) come from
``tfseg benchmark train``.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--data", default="cocolike")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mode", choices=("graph", "bf16"), default="graph",
                        help="bf16: the mixed_bfloat16 policy (train.mixed_precision on a "
                             "bfloat16 CPU)")
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from tfseg.benchmarks.timing import peak_rss_mb
    from tfseg.benchmarks.train import measure
    from tfseg.commands.models import load_run_config, prepared_dataset
    from tfseg.pipeline.dataset import build_dataset

    cfg = load_run_config([f"data={args.data}", f"imgsz={args.size}", f"batch={args.batch}"],
                          "train")
    cfg, paths, classes = prepared_dataset(cfg, verbose=False)
    batches = build_dataset(str(paths.records), "train", args.size, args.batch,
                            cfg.data.max_instances, training=True, seed=0,
                            mosaic_p=1.0).take(4).cache()
    result = measure(args.mode, cfg.model.name, args.size, args.batch, args.steps, 2, data=batches,
                     num_classes=len(classes["class_names"]))
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
