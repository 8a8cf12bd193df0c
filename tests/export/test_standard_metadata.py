"""Standard TFLite metadata (TFLITE_METADATA + packed labels.txt) read back with the schema.

The reader here is written from metadata_schema.fbs (tensorflow/tflite-support, version
1.5.0) on its own: field slots are the declaration order of each table, a union takes two
slots (type, value). It does not use tfseg's writer.
"""

import io
import zipfile

import flatbuffers
import numpy as np
import pytest
from flatbuffers.table import Table
from tensorflow.lite.python import schema_py_generated as schema

pytestmark = pytest.mark.slow  # two TFLite exports

NAMES = ["circle", "rectangle", "triangle"]


class Node:
    """A flatbuffer table read by slot number."""

    def __init__(self, buf, pos):
        self.tab = Table(buf, pos)

    def _offset(self, slot):
        return self.tab.Offset(4 + 2 * slot)

    def string(self, slot):
        o = self._offset(slot)
        return self.tab.String(o + self.tab.Pos).decode() if o else None

    def scalar(self, slot, kind=flatbuffers.number_types.Int8Flags):
        o = self._offset(slot)
        return self.tab.Get(kind, o + self.tab.Pos) if o else 0

    def table(self, slot):
        o = self._offset(slot)
        return Node(self.tab.Bytes, self.tab.Indirect(o + self.tab.Pos)) if o else None

    def tables(self, slot):
        o = self._offset(slot)
        if not o:
            return []
        start = self.tab.Vector(o)
        return [Node(self.tab.Bytes, self.tab.Indirect(start + 4 * i))
                for i in range(self.tab.VectorLen(o))]

    def strings(self, slot):
        o = self._offset(slot)
        start = self.tab.Vector(o)
        return [self.tab.String(start + 4 * i).decode() for i in range(self.tab.VectorLen(o))]

    def numbers(self, slot, flags):
        o = self._offset(slot)
        start = self.tab.Vector(o)
        return [self.tab.Get(flags, start + 4 * i) for i in range(self.tab.VectorLen(o))]


def _model_metadata(path):
    """(ModelMetadata root, the TFLite Model, the file bytes)."""
    data = path.read_bytes()
    model = schema.Model.GetRootAsModel(bytearray(data), 0)
    entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer()
               for i in range(model.MetadataLength())}
    assert "tfseg_metadata" in entries, "our own JSON stays beside the standard entry"
    buffer = model.Buffers(entries["TFLITE_METADATA"]).DataAsNumpy().tobytes()
    assert buffer[4:8] == b"M001", "the metadata schema's file identifier"
    root = flatbuffers.encode.Get(flatbuffers.packer.uoffset, bytearray(buffer), 0)
    return Node(bytearray(buffer), root), model, data


def _output_names_in_subgraph_order(model):
    signature = model.SignatureDefs(0)
    graph = model.Subgraphs(signature.SubgraphIndex())
    by_tensor = {signature.Outputs(i).TensorIndex(): signature.Outputs(i).Name().decode()
                 for i in range(signature.OutputsLength())}
    return [by_tensor[graph.Outputs(i)] for i in range(graph.OutputsLength())]


def _labels(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.getinfo("labels.txt").compress_type == zipfile.ZIP_STORED
        return archive.read("labels.txt").decode().splitlines()


def _check_input(subgraph, size):
    (image,) = subgraph.tables(2)
    assert image.string(0) == "images"
    content = image.table(3)
    assert content.scalar(0, flatbuffers.number_types.Uint8Flags) == 2  # ImageProperties
    properties = content.table(1)
    assert properties.scalar(0) == 1  # RGB
    default_size = properties.table(1)
    assert [default_size.scalar(s, flatbuffers.number_types.Uint32Flags) for s in (0, 1)] == \
        [size, size]
    (unit,) = image.tables(4)
    assert unit.scalar(0, flatbuffers.number_types.Uint8Flags) == 1  # NormalizationOptions
    normalization = unit.table(1)
    assert normalization.numbers(0, flatbuffers.number_types.Float32Flags) == [0.0]  # mean
    assert normalization.numbers(1, flatbuffers.number_types.Float32Flags) == [1.0]  # std


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    """A small .tflite with the end-to-end signature's layout (no network: quick to convert),
    its tfseg JSON and the standard metadata, written as export_tflite writes them."""
    import tensorflow as tf

    from tfseg.export.metadata import embed_in_tflite
    from tfseg.export.standard_metadata import embed_standard_metadata

    class Toy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.uint8, name="images")])
        def detect(self, images):
            mean = tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2])  # [1, 3]
            return {"boxes": tf.tile(mean[:, None, :1], [1, 4, 4]) / 255.0,
                    "scores": tf.tile(mean[:, 1:2], [1, 4]) / 255.0,
                    "classes": tf.zeros([1, 4], tf.int32),
                    "masks": tf.zeros([1, 4, 8, 8]) + mean[:, 2, None, None, None],
                    "num_detections": tf.ones([1], tf.int32)}

    toy = Toy()
    folder = tmp_path_factory.mktemp("small")
    tf.saved_model.save(toy, str(folder / "sm"), signatures={"detect": toy.detect})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder / "sm"),
                                                         signature_keys=["detect"])
    info = {"format": "tfseg-export/1", "model_name": "toy", "class_names": NAMES,
            "input": {"size": 32}}
    data = embed_in_tflite(converter.convert(), info)
    data = embed_standard_metadata(data, info, {"boxes": "normalized [ymin, xmin, ymax, xmax]"})
    path = folder / "toy.tflite"
    path.write_bytes(data)
    return path


def test_detection_layout_carries_metadata_and_labels(small_file):
    root, model, data = _model_metadata(small_file)
    assert root.string(0) == "toy" and root.string(7) == "1.2.0"  # min_parser_version
    (subgraph,) = root.tables(3)
    _check_input(subgraph, 32)
    outputs = subgraph.tables(3)
    order = _output_names_in_subgraph_order(model)
    assert sorted(order) == ["boxes", "classes", "masks", "num_detections", "scores"]
    assert [t.string(0) for t in outputs] == order  # one entry per output, in file order
    classes = next(t for t in outputs if t.string(0) == "classes")
    (labels,) = classes.tables(6)
    assert labels.string(0) == "labels.txt" and labels.scalar(2) == 3  # TENSOR_VALUE_LABELS
    boxes = next(t for t in outputs if t.string(0) == "boxes")
    assert boxes.string(1) == "normalized [ymin, xmin, ymax, xmax]"
    assert _labels(data) == NAMES


def test_metadata_survives_rewriting_our_json(small_file, tmp_path):
    """Re-embedding tfseg_metadata (e.g. a parity certificate) keeps the standard entry and
    the packed labels, and the file still runs."""
    from ai_edge_litert.interpreter import Interpreter

    from tfseg.export.metadata import embed_in_tflite, read_tflite_metadata

    path = tmp_path / "rewritten.tflite"
    before = read_tflite_metadata(small_file)
    path.write_bytes(embed_in_tflite(small_file.read_bytes(), {**before, "note": "rewritten"}))
    assert read_tflite_metadata(path)["note"] == "rewritten"
    _model_metadata(path)
    assert _labels(path.read_bytes()) == NAMES
    runner = Interpreter(model_path=str(path)).get_signature_runner("detect")
    out = runner(images=np.full((1, 32, 32, 3), 51, np.uint8))
    np.testing.assert_allclose(out["scores"], 0.2, atol=1e-6)


def test_certificate_rewrite_keeps_the_appended_labels(small_file, tmp_path):
    """update_tflite_metadata (the parity certificate, written after the file is made)
    rewrites the flatbuffer: the zip after it must come back, or MediaPipe's detector finds
    TFLITE_METADATA naming labels.txt and no such file."""
    from tfseg.export.metadata import read_tflite_metadata, update_tflite_metadata

    path = tmp_path / "certified.tflite"
    path.write_bytes(small_file.read_bytes())
    update_tflite_metadata(path, {"parity": {"measured": False, "reason": "test"}})
    update_tflite_metadata(path, {"parity": {"measured": False, "reason": "twice"}})
    assert zipfile.is_zipfile(path)
    assert _labels(path.read_bytes()) == NAMES
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["labels.txt"]  # one archive, not one per rewrite
    assert read_tflite_metadata(path)["parity"]["reason"] == "twice"
    _model_metadata(path)


@pytest.fixture(scope="module")
def standard_file(network, tmp_path_factory):
    """The standard-outputs file as ``tfseg export`` leaves it on disk: exported, then its
    parity certificate written into it (tfseg.export.api.export_from_config's two steps);
    shared with the MediaPipe tests (tests/shared_exports.py)."""
    from shared_exports import shared_export

    return shared_export(tmp_path_factory, "standard-outputs", network)["tflite_float32"]


def test_standard_file_on_disk_has_its_labels_zip(standard_file):
    from tfseg.export.metadata import read_tflite_metadata

    assert read_tflite_metadata(standard_file)["parity"]["measured"] is False  # certified
    assert zipfile.is_zipfile(standard_file)
    with zipfile.ZipFile(standard_file) as archive:
        assert archive.read("labels.txt").decode().splitlines() == NAMES


def test_standard_outputs_are_what_object_detectors_read(standard_file, keras_detections,
                                                         letterboxed, settings):
    from ai_edge_litert.interpreter import Interpreter

    root, model, data = _model_metadata(standard_file)
    (subgraph,) = root.tables(3)
    _check_input(subgraph, settings.size)
    outputs = subgraph.tables(3)
    signature_names = _output_names_in_subgraph_order(model)
    standard = {"locations": "location", "classes": "category", "scores": "score",
                "num_detections": "number of detections"}
    assert sorted(signature_names) == sorted(standard)
    assert [t.string(0) for t in outputs] == [standard[n] for n in signature_names]
    location = next(t for t in outputs if t.string(0) == "location")
    box = location.table(3)
    assert box.scalar(0, flatbuffers.number_types.Uint8Flags) == 3  # BoundingBoxProperties
    properties = box.table(1)
    assert properties.numbers(0, flatbuffers.number_types.Uint32Flags) == [1, 0, 3, 2]
    assert (properties.scalar(1), properties.scalar(2)) == (1, 0)  # BOUNDARIES, RATIO
    category = next(t for t in outputs if t.string(0) == "category")
    assert category.tables(6)[0].string(0) == "labels.txt"
    (group,) = subgraph.tables(8)
    assert group.strings(1) == ["location", "category", "score"]
    assert _labels(data) == NAMES
    # The detections of the network + PostProcess, in the detectors' dtypes and layout.
    got = Interpreter(model_path=str(standard_file)).get_signature_runner("detect")(
        images=letterboxed[0][:1])
    assert all(got[k].dtype == np.float32 for k in standard)
    n = int(keras_detections["num_detections"][0])
    assert got["num_detections"][0] == n > 0
    boxes = got["locations"][0, :n][:, [1, 0, 3, 2]] * settings.size  # -> xyxy input pixels
    distance = np.abs(keras_detections["boxes"][0, :n][:, None] - boxes[None]).sum(-1)
    rows = distance.argmin(axis=1)
    assert (distance.min(axis=1) < 0.05).sum() >= n - 1
    close = distance.min(axis=1) < 0.05
    np.testing.assert_array_equal(got["classes"][0, rows[close]],
                                  keras_detections["classes"][0, :n][close])
    np.testing.assert_allclose(got["scores"][0, rows[close]],
                               keras_detections["scores"][0, :n][close], atol=1e-4)
