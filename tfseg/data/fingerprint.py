"""What prepared records were made from, and why they no longer match it.

``prepare`` stores a fingerprint of its sources in the records' metadata
(``source_fingerprint``): per split, the annotation file's name, size and sha256 and the
image folder's file list (relative names and sizes, hashed); the preparation options that
change what is written (``strict``); and the records' format version. A later ``prepare``
into the same folder compares it with the sources as they are now; on any difference the
records are prepared again, and ``stale_reason`` says why in one line. Records without a
fingerprint (prepared by an older tfseg) count as stale.

Image contents are not hashed (COCO train is 18 GB): an image replaced by one of the same
name and byte size goes unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import os

import tensorflow as tf

# Bump when the records tfseg writes change for the same sources (features, masks, metadata)
# so that older records no longer read as this tfseg reads them: records that are out of date
# are prepared again on first use. Masks stored as 1-bit PNGs instead of 8-bit 0/1 ones did
# not bump it: both read the same, only faster (``tfseg data prepare overwrite=true``).
FORMAT_VERSION = 1
METADATA_KEY = "source_fingerprint"
_CHUNK = 1 << 20


def file_digest(path: str) -> dict:
    """{"name", "size", "sha256"} of one file (local or any tf.io.gfile path)."""
    digest = hashlib.sha256()
    size = 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"name": os.path.basename(path), "size": size, "sha256": digest.hexdigest()}


def _listing(folder: str) -> list[str]:
    """Sorted "relative name<TAB>size" of every file under ``folder`` (sizes only locally:
    one stat per file on a remote store would cost minutes)."""
    lines = []
    if "://" in folder:
        for root, _, files in tf.io.gfile.walk(folder):
            lines += [os.path.relpath(os.path.join(root, f), folder) for f in files]
        return sorted(lines)
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            lines.append(f"{os.path.relpath(path, folder)}\t{os.path.getsize(path)}")
    return sorted(lines)


def image_list_digest(folder: str) -> dict:
    """{"count", "sha256"} of the file list (names and sizes) under an images folder."""
    lines = _listing(folder)
    return {"count": len(lines), "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest()}


def source_fingerprint(sources: dict[str, tuple[str, str]], strict: bool) -> dict:
    """The fingerprint of what ``prepare`` is about to read.

    Args:
        sources: split -> (images folder, annotation JSON path).
        strict: the preparation option that changes what is kept.

    Returns:
        {"format_version", "options": {"strict"}, "splits": {split: {"annotations":
        file_digest, "images": image_list_digest}}} (JSON-serializable).
    """
    return {"format_version": FORMAT_VERSION,
            "options": {"strict": bool(strict)},
            "splits": {split: {"annotations": file_digest(ann),
                               "images": image_list_digest(images)}
                       for split, (images, ann) in sources.items()}}


def stored_fingerprint(version_dir: str) -> dict | None:
    """The fingerprint in prepared records' metadata.json; None when there is none."""
    path = os.path.join(str(version_dir), "metadata.json")
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f).get(METADATA_KEY)


def _split_change(split: str, old: dict, new: dict) -> str | None:
    old_ann, new_ann = old["annotations"], new["annotations"]
    if old_ann != new_ann:
        size = (f"{old_ann['size']} -> {new_ann['size']} bytes" if old_ann["size"] != new_ann["size"]
                else "same size, different content")
        return f"the {split} annotations changed ({new_ann['name']}: {size})"
    if old["images"] != new["images"]:
        count = (f"{old['images']['count']} -> {new['images']['count']} files"
                 if old["images"]["count"] != new["images"]["count"]
                 else "a file was added, removed, renamed or resized")
        return f"the {split} images changed ({count})"
    return None


def stale_reason(stored: dict | None, current: dict) -> str | None:
    """Why records with fingerprint ``stored`` do not match sources with ``current``.

    Returns:
        One line naming the first difference found, or None when they match.
    """
    if not stored:
        return "they carry no source fingerprint (prepared by an older tfseg)"
    if stored.get("format_version") != current["format_version"]:
        return (f"they are in record format {stored.get('format_version')}, this tfseg writes "
                f"format {current['format_version']}")
    if stored.get("options") != current["options"]:
        return f"the preparation options changed ({stored.get('options')} -> {current['options']})"
    old_splits, new_splits = stored.get("splits") or {}, current["splits"]
    if sorted(old_splits) != sorted(new_splits):
        return f"the splits changed ({sorted(old_splits)} -> {sorted(new_splits)})"
    for split in new_splits:
        change = _split_change(split, old_splits[split], new_splits[split])
        if change:
            return change
    return None
