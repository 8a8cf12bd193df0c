"""``tfseg benchmark <target>``: prints one JSON line per measurement; --output saves them."""

from __future__ import annotations

import importlib
import json
import os

from tfseg.runs import write_json


def run(args) -> int:
    threads = args.threads
    if threads:  # the figures in docs/benchmarks.md use 2 threads, as on the reference machine
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    module = importlib.import_module(f"tfseg.benchmarks.{args.target}")
    options = {}
    if args.target == "export":  # LiteRT has its own thread pool: pass the count on
        options["threads"] = threads
        if args.modes:
            options["modes"] = args.modes
        options.update(models=args.models, work=args.work)
    if args.target in ("train", "data"):
        options["overrides"] = list(args.overrides)  # data=..., any tfseg train key
    if args.target == "train":
        options.update(epochs=args.epochs, threads=threads, padding=args.padding)
    results = []
    for result in module.run(args.sizes, args.batch, args.runs, **options):
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.output:
        write_json(args.output, results)
    if hasattr(module, "table"):
        print(module.table(results))
    return 0
