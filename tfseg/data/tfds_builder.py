"""The TFDS builder: a COCO-format dataset (paths given at run time) -> TFDS records.

Masks are decoded by pycocotools at preparation time and stored as one PNG per instance
(see ``tfseg.data.features``); class names and the category-id map go into the dataset
metadata (``info.metadata``: ``class_names``, ``category_ids``, ``annotation_skips``,
``image_skips``).

Parallel generation, two ways, producing the same records:

- On one machine (default): the annotation files are read and validated in this process,
  then a ``multiprocessing`` pool of ``num_workers`` processes (spawned, not forked, so no
  TensorFlow state is copied) reads the image files, decodes and PNG-encodes the masks,
  and feeds the finished values, in order, to TFDS's writer. Serializing and writing stay
  in this process; the pool does the expensive part.
- On Apache Beam (``beam=True``, ``pip install apache-beam``): ``_generate_examples``
  returns a Beam ``PTransform`` and TFDS runs every split as one Beam pipeline
  (DirectRunner, Dataflow, Flink, Spark), configured by ``DownloadConfig(beam_options=...)``
  (``tfseg.data.prepare.prepare(..., beam_options="--runner=...")``). The annotation files
  are still validated here; the validated image entries are pickled into shard files in
  the dataset's temporary folder (so the job graph stays small: it would otherwise carry
  every annotation, hundreds of MB for COCO train, where Dataflow accepts about 20 MB) and
  workers read, encode and count them. Workers need tfseg installed
  (on a cluster: ``--setup_file`` or ``--extra_package``) and the images folder readable
  (on Dataflow: a ``gs://`` path). Kept and skipped images are counted with Beam metrics
  (namespace ``tfseg``) and read back from the pipeline result after it finishes, into the
  same summary and metadata as the local path (the examples of a skip reason are then its
  smallest and largest image id, where the local path lists the first three).

Both store ``kept_counts`` and ``image_skips`` per split in the metadata, so a reused
dataset reports the summary it was prepared with.

The builder skips TFDS registration: it is built with run-time paths, never by name.
Read prepared records back with ``tfseg.data.prepare.load_split`` (no builder needed).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle

import tensorflow_datasets as tfds
from etils import epath

from tfseg.data import coco, encode, features
from tfseg.data.fingerprint import METADATA_KEY as FINGERPRINT_KEY
from tfseg.errors import DatasetError
from tfseg.optional import require

BUILDER_NAME = "coco_segmentation"
METRICS_NAMESPACE = "tfseg"
_BEAM_INPUTS = "beam_inputs"   # folder of entry shards inside the dataset's temporary folder
_ENTRIES_PER_SHARD = 1000      # COCO train: 119 shard files; entries are re-spread after reading
_KEPT_COUNTS = ("images", "images_without_instances", "instances", "crowds")


def _check_same_classes(datasets: dict[str, coco.CocoDataset]) -> tuple[list[str], list[int]]:
    first_split, first = next(iter(datasets.items()))
    for split, ds in datasets.items():
        if ds.category_ids != first.category_ids:
            raise DatasetError(f"categories differ from split '{first_split}' "
                               f"({ds.category_ids} vs {first.category_ids})",
                               file=ds.annotation_file, field="categories")
    return first.class_names, first.category_ids


def count_kept(entries) -> dict[str, int]:
    """{"images", "images_without_instances", "instances", "crowds"} of kept image entries."""
    entries = list(entries)
    return {"images": len(entries),
            "images_without_instances": sum(1 for e in entries if not e.instances),
            "instances": sum(len(e.instances) for e in entries),
            "crowds": sum(1 for e in entries for inst in e.instances if inst.is_crowd)}


class CocoSegmentation(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """TFDS builder of tfseg records from COCO-format splits.

    Args:
        sources: split name -> (images folder, annotation JSON path).
        data_dir: where TFDS writes ``coco_segmentation/<version>/``.
        num_workers: processes for local generation; 0 or 1 generates in this process.
        strict: raise DatasetError at the first bad record instead of skipping it.
        beam: generate with Apache Beam (see the module docstring).
        fingerprint: ``tfseg.data.fingerprint.source_fingerprint`` of the sources, stored in
            the metadata so a later preparation can tell whether they changed.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Records per tfseg.contracts.RECORD, PNG masks per instance."}
    # TFDS looks for a checksums file beside the builder's source (for downloads, which this
    # builder has none of); that look-up needs the optional `importlib_resources` package.
    code_path = None

    def __init__(self, *, sources: dict[str, tuple[str, str]], data_dir: str,
                 num_workers: int = 0, strict: bool = False, beam: bool = False,
                 fingerprint: dict | None = None, **kwargs):
        if not sources:
            raise DatasetError("no splits given to prepare")
        self._sources = {split: (str(img), str(ann)) for split, (img, ann) in sources.items()}
        self._num_workers = num_workers
        self._strict = strict
        self._beam = beam
        self._fingerprint = fingerprint
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
        extra = {FINGERPRINT_KEY: self._fingerprint} if self._fingerprint else {}
        return self.dataset_info_from_configs(
            description="Instance segmentation records prepared by tfseg from COCO-format files.",
            features=features.record_features(self.class_names),
            metadata=tfds.core.MetadataDict(features.metadata_dict(
                self.class_names, self.category_ids, annotation_skips=skips, **extra)),
        )

    def kept_counts(self, split: str) -> dict[str, int] | None:
        """Counts of what was written for ``split`` (keys of ``count_kept``), as stored in
        the metadata (so also for reused records); None when unknown (a Beam runner that
        reports no metrics, or records prepared before these were stored)."""
        return (self.info.metadata.get("kept_counts") or {}).get(split)

    def image_skip_report(self, split: str) -> dict:
        """Images skipped for ``split`` as stored in the metadata: reason -> {count, examples}."""
        return (self.info.metadata.get("image_skips") or {}).get(split, {})

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self._sources}

    def _generate_examples(self, split: str):
        images_dir, ann_file = self._sources[split]
        entries = self.datasets[split].images
        if self._beam:
            # self.data_path is TFDS's temporary folder here: removed if generation fails.
            shards = _write_entry_shards(entries, self.data_path / _BEAM_INPUTS / split)
            return _beam_transform(shards, images_dir, split, ann_file, self._strict)
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
        skipped = self.skipped_image_ids[split]
        kept = count_kept(e for e in self.datasets[split].images if e.image_id not in skipped)
        self._store_reports({split: kept})

    def _process_pipeline_result(self, pipeline_result) -> None:
        """Beam: read the kept/skipped counts from the metrics; drop the entry shards.

        TFDS calls this after the pipeline finished and before it writes dataset_info.
        """
        (self.data_path / _BEAM_INPUTS).rmtree(missing_ok=True)
        try:
            metrics = read_beam_metrics(pipeline_result)
        except (NotImplementedError, AttributeError):  # a runner without metrics
            return
        kept = {}
        for split in self._sources:
            found = metrics.get(split, {})
            kept[split] = {name: found.get(name, 0) for name in _KEPT_COUNTS}
            report = self.image_skips[split]
            for reason, (count, image_ids) in sorted(found.get("skipped", {}).items()):
                report.counts[reason] = count
                report.examples[reason] = [f"image id {i} (file_name)" for i in image_ids]
        self._store_reports(kept)

    def _store_reports(self, kept: dict[str, dict[str, int]]) -> None:
        """Kept counts (of these splits) and image skips (of all) into the metadata.

        Mutating the MetadataDict before TFDS writes dataset_info stores these with it.
        """
        self.info.metadata["kept_counts"] = {**(self.info.metadata.get("kept_counts") or {}),
                                             **kept}
        self.info.metadata["image_skips"] = {
            s: report.as_dict() for s, report in self.image_skips.items()}


def _write_entry_shards(entries: list[coco.ImageEntry], folder: epath.Path) -> list[str]:
    """Pickle the validated entries into shard files under ``folder`` (local or gs://)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, len(entries), _ENTRIES_PER_SHARD):
        path = folder / f"entries-{start:09d}.pkl"
        path.write_bytes(pickle.dumps(entries[start:start + _ENTRIES_PER_SHARD],
                                      protocol=pickle.HIGHEST_PROTOCOL))
        paths.append(os.fspath(path))
    return paths


def import_beam(module: str = "apache_beam"):
    """Apache Beam, or a module of it; without it, one line naming the extra (tfseg[beam])."""
    return require(module, extra="beam", purpose="preparing records on Apache Beam "
                                                 "(data.beam_options)")


def _beam_transform(shard_paths: list[str], images_dir: str, split: str, ann_file: str,
                    strict: bool):
    """One split's generation as a Beam PTransform: shard paths -> (image id, record)."""
    beam = import_beam()
    # Reshuffles break fusion, so a runner spreads shards, then entries, over its workers.
    return (beam.Create(shard_paths)
            | "SpreadShards" >> beam.Reshuffle()
            | "ReadEntries" >> beam.FlatMap(_read_entry_shard)
            | "SpreadEntries" >> beam.Reshuffle()
            | "Encode" >> beam.FlatMap(_encode_counted, images_dir=images_dir, split=split,
                                       ann_file=ann_file, strict=strict))


def _read_entry_shard(path: str) -> list[coco.ImageEntry]:
    """Beam worker: the entries of one shard file written by ``_write_entry_shards``."""
    return pickle.loads(epath.Path(path).read_bytes())


def _encode_counted(entry: coco.ImageEntry, images_dir: str, split: str, ann_file: str,
                    strict: bool):
    """Beam worker: one entry -> [(image id, record)] or [] for a skipped image, counted.

    Metric names are "<split>/<count>" (counters) for the kept counts, and for each skip
    reason "<split>/skipped/<reason>", a distribution of the skipped image ids: its count
    is the number of skips, its min and max two examples. (Beam's string-set metric would
    hold every id, but the DirectRunner of Beam 2.77 keeps only one bundle's set.)
    """
    Metrics = import_beam("apache_beam.metrics").Metrics  # noqa: N806 (Beam's class)

    image_id, record, reason = encode.encode_entry_or_skip((entry, images_dir))
    if record is None:
        if strict:
            raise DatasetError(reason, file=ann_file, record=f"image id {image_id}",
                               field="file_name")
        Metrics.distribution(METRICS_NAMESPACE, f"{split}/skipped/{reason}").update(image_id)
        return []
    for name, value in count_kept([entry]).items():
        if value:
            Metrics.counter(METRICS_NAMESPACE, f"{split}/{name}").inc(value)
    return [(image_id, record)]


def read_beam_metrics(pipeline_result) -> dict[str, dict]:
    """The tfseg metrics of a finished pipeline, per split.

    Returns:
        {split: {"images": n, "images_without_instances": n, "instances": n, "crowds": n,
                 "skipped": {reason: (count, [smallest id, largest id])}}}; committed
        values where the runner has them, else attempted ones.
    """
    beam_filter = import_beam("apache_beam.metrics.metric").MetricsFilter()
    results = pipeline_result.metrics().query(beam_filter.with_namespace(METRICS_NAMESPACE))

    def value(result):
        return result.committed if result.committed is not None else result.attempted

    out: dict[str, dict] = {}
    for result in results["counters"]:
        split, name = result.key.metric.name.split("/", 1)
        out.setdefault(split, {})[name] = value(result)
    for result in results["distributions"]:
        split, name = result.key.metric.name.split("/", 1)
        ids = value(result)
        examples = sorted({ids.min, ids.max}) if ids.count else []
        reason = name.removeprefix("skipped/")
        out.setdefault(split, {}).setdefault("skipped", {})[reason] = (ids.count, examples)
    return out


def default_num_workers() -> int:
    """Processes for local generation: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
