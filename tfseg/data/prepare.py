"""``tfseg data prepare``: COCO-format files -> TFDS records, with a report of what was kept
and skipped; and ``load_split``, which reads prepared records back for the pipeline.

Example:
    summary = prepare("coco/train2017", "coco/annotations/instances_train2017.json",
                      "coco/records", splits=["train"])
    dataset, info = load_split("coco/records", "train")

On Apache Beam (``pip install apache-beam``), the same call with pipeline options::

    prepare(..., beam_options="--runner=DirectRunner --direct_num_workers=16 "
                              "--direct_running_mode=multi_processing")
    prepare(..., beam_options="--runner=DataflowRunner --project=P --region=R "
                              "--temp_location=gs://B/tmp")   # output_dir on gs:// then
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import time

import tensorflow_datasets as tfds
from etils import epath

from tfseg.data import tfds_builder
from tfseg.data.fingerprint import source_fingerprint, stale_reason, stored_fingerprint
from tfseg.errors import DatasetError


# A DatasetError raised in a Beam worker process (strict mode) reaches this process as the
# runner's RuntimeError carrying the worker's traceback text.
_WORKER_DATASET_ERROR = re.compile(
    r"tfseg\.errors\.DatasetError: (.*?)(?: \[while running [^\]]*\])?$", re.MULTILINE)


def _as_list(value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def split_name(annotation_file: str) -> str:
    """Split name from an annotation file name: instances_train2017.json -> "train"."""
    stem = os.path.splitext(os.path.basename(annotation_file))[0].lower()
    for name in ("train", "val", "test"):
        if name in stem:
            return name
    return stem.removeprefix("instances_") or "train"


def _sources(images_dir, annotation_files, splits) -> dict[str, tuple[str, str]]:
    anns = _as_list(annotation_files)
    dirs = _as_list(images_dir)
    if len(dirs) == 1:
        dirs = dirs * len(anns)
    names = _as_list(splits) if splits is not None else [split_name(a) for a in anns]
    if not (len(dirs) == len(anns) == len(names)):
        raise DatasetError(f"need one images folder and one split name per annotation file "
                           f"(got {len(dirs)} folders, {len(anns)} files, {len(names)} splits)")
    if len(set(names)) != len(names):
        raise DatasetError(f"split names must differ, got {names} (pass splits=[...])")
    for d in dirs:
        if not os.path.isdir(d):
            raise DatasetError("images folder not found", file=d)
    return dict(zip(names, zip(dirs, anns)))


def _download_config(overwrite: bool, beam_options: str | None) -> tfds.download.DownloadConfig:
    mode = (tfds.download.GenerateMode.FORCE_REDOWNLOAD if overwrite
            else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
    options = None
    if beam_options:
        beam = tfds_builder.import_beam()
        options = beam.options.pipeline_options.PipelineOptions(shlex.split(beam_options))
    return tfds.download.DownloadConfig(download_mode=mode, beam_options=options,
                                        try_download_gcs=False)


def _split_summary(builder: tfds_builder.CocoSegmentation, split: str) -> dict:
    counts = builder.kept_counts(split)
    if counts is None:  # a Beam runner that reports no metrics: only the record count is known
        counts = dict.fromkeys(("images_without_instances", "instances", "crowds"))
        counts["images"] = builder.info.splits[split].num_examples
    return {**counts,
            "skipped_annotations": builder.datasets[split].skips.as_dict(),
            "skipped_images": builder.image_skip_report(split)}


def _set_aside_if_stale(output_dir: str, fingerprint: dict) -> epath.Path | None:
    """Move records prepared from other sources out of the way, saying why in one line.

    They go to ``<output_dir>/<builder>-<version>.stale`` (outside the folder TFDS and
    ``dataset_dir`` look in) until the new ones are written, then are deleted.

    Returns:
        Where the stale records were moved, or None (none there, or they match).
    """
    version = str(tfds_builder.CocoSegmentation.VERSION)
    current = epath.Path(output_dir) / tfds_builder.BUILDER_NAME / version
    if not (current / "dataset_info.json").exists():
        return None
    reason = stale_reason(stored_fingerprint(str(current)), fingerprint)
    if reason is None:
        return None
    aside = epath.Path(output_dir) / f"{tfds_builder.BUILDER_NAME}-{version}.stale"
    if aside.exists():
        aside.rmtree()
    current.rename(aside)
    print(f"records in {current} are out of date: {reason}; preparing them again", flush=True)
    return aside


def prepare(images_dir, annotation_files, output_dir: str, splits=None,
            num_workers: int | None = None, strict: bool = False,
            beam_options: str | None = None, overwrite: bool = False,
            verbose: bool = True) -> dict:
    """Prepare COCO-format splits as TFDS records under ``output_dir``.

    Args:
        images_dir: the images folder, or one folder per annotation file.
        annotation_files: one COCO JSON path or a list (one per split).
        output_dir: TFDS data dir; records go to ``<output_dir>/coco_segmentation/1.0.0``.
        splits: split names in the order of ``annotation_files``; default from the file
            names (``instances_val2017.json`` -> ``val``).
        num_workers: local processes; None: every CPU this process may use; 0/1: in process.
        strict: raise DatasetError at the first bad record instead of skipping it.
        beam_options: Apache Beam pipeline options (a command-line string); generate on Beam.
        overwrite: regenerate even when prepared records are already there. Without it,
            records whose sources changed (``tfseg.data.fingerprint``) are regenerated too,
            with a line saying why; matching ones are reused.
        verbose: print the summary (TFDS prints progress bars while writing).

    Returns:
        {"dataset_dir", "class_names", "category_ids", "seconds", "reused",
         "splits": {split: {"images", "images_without_instances", "instances", "crowds",
                            "skipped_annotations", "skipped_images"}}}
        where each skipped_* maps a reason to {"count", "examples"}. The same fields on
        Beam, from the pipeline's metrics; a runner that reports none leaves the counts
        other than "images" None and the skipped_images report empty.

    Raises:
        DatasetError: missing folders/files, unusable annotation files, differing categories
        between splits, or (strict) any bad record.
    """
    start = time.perf_counter()
    sources = _sources(images_dir, annotation_files, splits)
    # First, so a missing Beam fails before any records are moved aside.
    download_config = _download_config(overwrite, beam_options)
    fingerprint = source_fingerprint(sources, strict)
    stale = None if overwrite else _set_aside_if_stale(output_dir, fingerprint)
    workers = tfds_builder.default_num_workers() if num_workers is None else num_workers
    builder = tfds_builder.CocoSegmentation(sources=sources, data_dir=str(output_dir),
                                            num_workers=workers, strict=strict,
                                            beam=bool(beam_options), fingerprint=fingerprint)
    # Not builder.is_prepared(): it logs a warning whenever there is nothing yet, the
    # ordinary case of a first preparation.
    reused = (builder.data_path / "dataset_info.json").exists() and not overwrite
    try:
        builder.download_and_prepare(download_config=download_config)
    except RuntimeError as err:
        found = _WORKER_DATASET_ERROR.search(str(err)) if beam_options else None
        if found is None:
            raise
        raise DatasetError(found.group(1)) from err
    if stale is not None:
        stale.rmtree()
    summary = {
        "dataset_dir": str(builder.data_dir),
        "class_names": builder.class_names,
        "category_ids": builder.category_ids,
        "reused": reused,
        "splits": {split: _split_summary(builder, split) for split in sources},
        "seconds": round(time.perf_counter() - start, 2),
    }
    if verbose:
        print(format_summary(summary))
    return summary


def format_summary(summary: dict) -> str:
    """Human-readable lines of a ``prepare`` summary."""
    lines = [f"records: {summary['dataset_dir']}" + (" (reused)" if summary["reused"] else ""),
             f"classes ({len(summary['class_names'])}): " + ", ".join(
                 f"{n}={c}" for n, c in zip(summary["class_names"], summary["category_ids"]))]
    for split, s in summary["splits"].items():
        if s["instances"] is None:
            # A Beam runner that returns no metrics, or records prepared by an older tfseg.
            lines.append(f"{split}: {s['images']} images (no instance counts recorded)")
        else:
            lines.append(f"{split}: {s['images']} images ({s['images_without_instances']} "
                         f"without instances), {s['instances']} instances, "
                         f"{s['crowds']} crowd regions")
        for kind in ("skipped_annotations", "skipped_images"):
            for reason, info in s[kind].items():
                lines.append(f"  skipped {info['count']} {kind.split('_')[1]}: {reason} "
                             f"(e.g. {'; '.join(info['examples'])})")
    lines.append(f"took {summary['seconds']} s")
    return "\n".join(lines)


class _SkipSequenceDecoding(tfds.decode.SkipDecoding):
    """Leave a feature inside a Sequence (the masks of ``objects``) as its encoded bytes.

    TFDS' own SkipDecoding passes such a feature through ``tf.map_fn`` of the identity,
    called with the deprecated ``dtype=`` (two deprecation warnings in every user's log)
    and one loop iteration per instance; the ``[K]`` strings can pass as they are.
    """

    def decode_batch_example(self, serialized_example):
        return serialized_example


def dataset_dir(data_dir: str) -> str:
    """The folder holding dataset_info.json: ``data_dir`` itself or its newest version."""
    data_dir = str(data_dir)
    if os.path.isfile(os.path.join(data_dir, "dataset_info.json")):
        return data_dir
    found = glob.glob(os.path.join(data_dir, tfds_builder.BUILDER_NAME, "*", "dataset_info.json"))
    if not found:
        raise DatasetError("no prepared records here (run `tfseg data prepare`)", file=data_dir)
    newest = max(found, key=lambda p: tfds.core.Version(os.path.basename(os.path.dirname(p))))
    return os.path.dirname(newest)


def load_split(data_dir: str, split: str, shuffle_files: bool = False, read_config=None,
               decode: bool = True):
    """Prepared records of one split, decoded per ``tfseg.data.features``.

    Args:
        data_dir: the ``output_dir`` given to ``prepare`` (or the version folder itself).
        split: split name, or any TFDS split expression ("train[:10%]").
        shuffle_files: shuffle the order of the record files (training).
        read_config: optional ``tfds.ReadConfig`` (sharding by input context, seeds).
        decode: False leaves the image and the masks as their encoded bytes (``[]`` and
            ``[K]`` strings, which tfseg.pipeline.decode accepts): the training pipeline
            shuffles records before decoding them, and a shuffle buffer of encoded records
            holds a few hundred KB each where decoded ones hold several MB (the image plus
            one full-size mask per instance).

    Returns:
        (dataset, info): a tf.data.Dataset of record dicts (keys and dtypes in
        tfseg.data.features), and {"class_names", "category_ids", "num_examples",
        "splits", "metadata"} (num_examples of the base split).

    Raises:
        DatasetError: nothing prepared at ``data_dir``, or an unknown split.
    """
    builder = tfds.builder_from_directory(dataset_dir(data_dir))
    base = split.split("[")[0]
    if base not in builder.info.splits:
        raise DatasetError(f"unknown split '{base}' (have {sorted(builder.info.splits)})",
                           file=str(data_dir))
    meta = dict(builder.info.metadata or {})
    info = {
        "class_names": list(meta.get("class_names", builder.info.features["objects"]["class"].names)),
        "category_ids": [int(c) for c in meta.get("category_ids", [])],
        "num_examples": builder.info.splits[base].num_examples,
        "splits": sorted(builder.info.splits),
        "metadata": meta,
    }
    decoders = None if decode else {"image": tfds.decode.SkipDecoding(),
                                    "objects": {"mask": _SkipSequenceDecoding()}}
    dataset = builder.as_dataset(split=split, shuffle_files=shuffle_files,
                                 read_config=read_config, decoders=decoders)
    return dataset, info



def records_to_coco(data_dir: str, split: str, out_json: str) -> dict:
    """Write prepared records back as a COCO JSON (compressed-RLE masks, source ids).

    Boxes become COCO xywh, classes the source category ids; crowds keep ``iscrowd``.
    With ``tfseg.data.yolo.coco_to_yolo`` this also exports records to YOLO-seg.

    Returns:
        {"annotation_file", "images", "instances"}.
    """
    import json

    import numpy as np
    from pycocotools import mask as mask_utils

    dataset, info = load_split(data_dir, split)
    ids = info["category_ids"] or list(range(1, len(info["class_names"]) + 1))
    images, annotations = [], []
    for rec in dataset.as_numpy_iterator():
        image_id = int(rec["image_id"])
        images.append({"id": image_id, "file_name": rec["file_name"].decode(),
                       "height": int(rec["height"]), "width": int(rec["width"])})
        obj = rec["objects"]
        for k in range(len(obj["class"])):
            inside = (obj["mask"][k, :, :, 0] != 0).astype(np.uint8)  # 1-bit PNGs read 0/255
            rle = mask_utils.encode(np.asfortranarray(inside))
            x1, y1, x2, y2 = (float(v) for v in obj["bbox"][k])
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id,
                "category_id": ids[int(obj["class"][k])], "iscrowd": int(obj["is_crowd"][k]),
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                "area": float(obj["area"][k]), "bbox": [x1, y1, x2 - x1, y2 - y1]})
    categories = [{"id": int(i), "name": n} for i, n in zip(ids, info["class_names"])]
    with open(out_json, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return {"annotation_file": str(out_json), "images": len(images), "instances": len(annotations)}
