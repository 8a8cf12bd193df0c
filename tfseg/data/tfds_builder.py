"""The TFDS builder: a COCO-format dataset (paths given at run time) -> TFDS records.

Masks are decoded by pycocotools at preparation time and stored as one PNG per instance
(see ``tfseg.data.features``); class names and the category-id map go into the dataset
metadata (``info.metadata``: ``class_names``, ``category_ids``, ``skips``).

Parallel generation, two ways:

- On one machine (default): the annotation files are read and validated in this process,
  then a ``multiprocessing`` pool of ``num_workers`` processes (spawned, not forked, so no
  TensorFlow state is copied) reads the image files, decodes and PNG-encodes the masks,
  and feeds the finished values, in order, to TFDS's writer. Serializing and writing stay
  in this process; the pool does the expensive part.
- On Apache Beam (``beam=True``): ``_generate_examples`` returns a Beam ``PTransform``
  and TFDS runs the split generation as a Beam pipeline (Dataflow, Flink, Spark or the
  DirectRunner), passed through ``tfds.download.DownloadConfig(beam_runner=...,
  beam_options=...)``. ``tfseg.data.prepare.prepare(..., beam_options="--runner=...")`` does
  this; Beam itself is needed only then (``pip install apache-beam``). On Beam, skipped
  images are reported as Beam counters (namespace ``tfseg``) rather than in the metadata.

The builder skips TFDS registration: it is built with run-time paths, never by name.
Read prepared records back with ``tfseg.data.prepare.load_split`` (no builder needed).
"""

from __future__ import annotations

import multiprocessing
import os

import tensorflow_datasets as tfds

from tfseg.data import coco, encode, features
from tfseg.errors import DatasetError

BUILDER_NAME = "coco_segmentation"


def _check_same_classes(datasets: dict[str, coco.CocoDataset]) -> tuple[list[str], list[int]]:
    first_split, first = next(iter(datasets.items()))
    for split, ds in datasets.items():
        if ds.category_ids != first.category_ids:
            raise DatasetError(f"categories differ from split '{first_split}' "
                               f"({ds.category_ids} vs {first.category_ids})",
                               file=ds.annotation_file, field="categories")
    return first.class_names, first.category_ids


class CocoSegmentation(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """TFDS builder of tfseg records from COCO-format splits.

    Args:
        sources: split name -> (images folder, annotation JSON path).
        data_dir: where TFDS writes ``coco_segmentation/<version>/``.
        num_workers: processes for local generation; 0 or 1 generates in this process.
        strict: raise DatasetError at the first bad record instead of skipping it.
        beam: generate with Apache Beam (see the module docstring).
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Records per tfseg.contracts.RECORD, PNG masks per instance."}
    # TFDS looks for a checksums file beside the builder's source (for downloads, which this
    # builder has none of); that look-up needs the optional `importlib_resources` package.
    code_path = None

    def __init__(self, *, sources: dict[str, tuple[str, str]], data_dir: str,
                 num_workers: int = 0, strict: bool = False, beam: bool = False, **kwargs):
        if not sources:
            raise DatasetError("no splits given to prepare")
        self._sources = {split: (str(img), str(ann)) for split, (img, ann) in sources.items()}
        self._num_workers = num_workers
        self._beam = beam
        # Read and validate the JSON now: the class names are part of the feature spec.
        self.datasets = {split: coco.read_coco(ann, strict=strict)
                         for split, (_, ann) in self._sources.items()}
        self.class_names, self.category_ids = _check_same_classes(self.datasets)
        # Images skipped while generating (missing/corrupt files), per split.
        self.image_skips = {split: coco.SkipReport(strict=strict) for split in self._sources}
        self.skipped_image_ids = {split: set() for split in self._sources}
        super().__init__(data_dir=data_dir, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        skips = {split: ds.skips.as_dict() for split, ds in self.datasets.items()}
        return self.dataset_info_from_configs(
            description="Instance segmentation records prepared by tfseg from COCO-format files.",
            features=features.record_features(self.class_names),
            metadata=tfds.core.MetadataDict(features.metadata_dict(
                self.class_names, self.category_ids, annotation_skips=skips)),
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self._sources}

    def _generate_examples(self, split: str):
        images_dir, _ = self._sources[split]
        entries = self.datasets[split].images
        if self._beam:
            return _beam_transform(entries, images_dir)
        return self._generate_local(split, entries, images_dir)

    def _generate_local(self, split, entries, images_dir):
        jobs = [(entry, images_dir) for entry in entries]
        ann_file = self._sources[split][1]
        if self._num_workers > 1:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(self._num_workers) as pool:
                # Ordered imap keeps the output deterministic; chunks amortize the IPC.
                yield from self._collect(pool.imap(encode.encode_entry_or_skip, jobs, chunksize=8),
                                         split, ann_file)
        else:
            yield from self._collect(map(encode.encode_entry_or_skip, jobs), split, ann_file)

    def _collect(self, results, split, ann_file):
        for image_id, record, reason in results:
            if record is None:
                self.image_skips[split].add(reason, ann_file, f"image id {image_id}", "file_name")
                self.skipped_image_ids[split].add(image_id)
                continue
            yield image_id, record
        # Mutating the MetadataDict before TFDS writes dataset_info stores these with it.
        self.info.metadata["image_skips"] = {
            s: report.as_dict() for s, report in self.image_skips.items()}


def _beam_transform(entries, images_dir):
    """The split's generation as a Beam PTransform: entries -> (key, record)."""
    beam = tfds.core.lazy_imports.apache_beam

    def encode(entry):
        image_id, record, reason = encode.encode_entry_or_skip((entry, images_dir))
        if record is None:
            beam.metrics.Metrics.counter("tfseg", f"skipped images: {reason}").inc()
            return
        yield image_id, record

    return beam.Create(entries) | beam.FlatMap(encode)


def default_num_workers() -> int:
    """Processes for local generation: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
