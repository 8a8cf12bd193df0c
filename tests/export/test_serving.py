"""What a team deploying the SavedModel on TF Serving relies on.

Compact masks in serving_default (one PNG per detection) and the size of the REST answer,
models.config and batching_parameters.txt for docs/export.md's `docker run` mount, and
examples/serving_client.py over REST and gRPC, run as a user runs it. No TF Serving binary
here: the SavedModel runs in this process behind a small HTTP server and a gRPC server that
play the server's part (JSON row format, PredictRequest/PredictResponse) with TF Serving's own
rules and protos.
"""

import base64
import http.server
import json
import shlex
import threading
from concurrent import futures
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from example_runner import run_example
from tfseg.postprocess import PostProcess
from tfseg.postprocess.host import to_original

pytestmark = pytest.mark.slow  # the shared export, and a SavedModel at 640

ROOT = Path(__file__).resolve().parents[2]


def _decimal(value: float) -> str:
    """A float32 as TF Serving's JSON writer prints it (json_tensor.cc WriteDecimal): six
    significant digits if they read back as the same float, else nine; ".0" on whole numbers."""
    text = "%g" % value
    if np.float32(text) != np.float32(value):
        text = "%.9g" % value
    return text if ("." in text or "e" in text) else text + ".0"


def _json_value(value, as_bytes: bool) -> str:
    if isinstance(value, np.ndarray) and value.ndim:
        # rapidjson's single-line arrays: ", " between elements.
        return "[" + ", ".join(_json_value(v, as_bytes) for v in value) + "]"
    if isinstance(value, (bytes, np.bytes_)):
        assert as_bytes, "a string output not named *_bytes would be written raw"
        return json.dumps({"b64": base64.b64encode(bytes(value)).decode()})
    if np.issubdtype(np.asarray(value).dtype, np.floating):
        return _decimal(float(value))
    return str(int(value))


def tf_serving_rest_body(outputs: dict) -> str:
    """The REST row-format response TF Serving writes for these output tensors:
    {"predictions": [{name: value of image i}, ...]}, strings named *_bytes as {"b64": ...}."""
    outputs = {k: np.asarray(v) for k, v in outputs.items()}
    batch = len(next(iter(outputs.values())))
    rows = []
    for i in range(batch):
        fields = [f'"{name}": {_json_value(value[i], name.endswith("_bytes"))}'
                  for name, value in outputs.items()]
        rows.append("{\n            " + ",\n            ".join(fields) + "\n        }")
    return '{\n    "predictions": [\n        ' + ",\n        ".join(rows) + "\n    ]\n}"


def rest_request_tensors(body: dict) -> dict:
    """The tensors TF Serving builds from a row-format request: one per input, stacked."""
    names = body["instances"][0].keys()
    tensors = {}
    for name in names:
        values = [instance[name] for instance in body["instances"]]
        if isinstance(values[0], dict):  # {"b64": ...}
            tensors[name] = tf.constant([base64.b64decode(v["b64"]) for v in values])
        else:
            dtype = tf.int32 if name == "max_detections" else tf.float32
            tensors[name] = tf.constant(values, dtype)
    return tensors


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported["savedmodel"]))


def _numpy(outputs):
    return {k: v.numpy() for k, v in outputs.items()}


def test_serving_default_masks_are_pngs_of_the_probabilities(loaded, image_files, letterboxed,
                                                             settings):
    out = _numpy(loaded.signatures["serving_default"](
        image_bytes=tf.constant([p.read_bytes() for p in image_files])))
    assert "masks" not in out and out["masks_png_bytes"].shape == (len(image_files),
                                                                   settings.max_det)
    full = _numpy(loaded.signatures["serving_pixels"](images=tf.constant(letterboxed[0])))
    p = settings.size // 4
    for i, n in enumerate(out["num_detections"]):
        assert n > 0 and not any(out["masks_png_bytes"][i, n:]), "padding rows are empty"
        for j in range(n):
            mask = cv2.imdecode(np.frombuffer(out["masks_png_bytes"][i, j], np.uint8),
                                cv2.IMREAD_UNCHANGED)
            assert mask.shape == (p, p) and mask.dtype == np.uint8
            # The same row of the float masks, to the uint8 step (0.5 / 255 and float noise).
            np.testing.assert_allclose(mask / 255.0, full["masks"][i, j], atol=0.5 / 255 + 1e-5)


@pytest.fixture(scope="module")
def served_640(make_network, tmp_path_factory):
    """A 640 px SavedModel keeping every one of N = 100 detections (score threshold 0)."""
    from tfseg.export.savedmodel import export_savedmodel

    path = export_savedmodel(make_network(640), PostProcess(0.0, 0.7, 100), 640,
                             tmp_path_factory.mktemp("served640"), "big", 1)
    return tf.saved_model.load(str(path))


def test_rest_answer_with_100_detections_at_640_is_under_1mb(served_640, image_files):
    rgb = cv2.resize(cv2.imread(str(image_files[0])), (640, 480))
    jpeg = cv2.imencode(".jpg", rgb)[1].tobytes()
    out = _numpy(served_640.signatures["serving_default"](image_bytes=tf.constant([jpeg])))
    assert out["num_detections"].tolist() == [100]
    body = tf_serving_rest_body(out)
    print(f"REST answer, one image, 100 detections at 640: {len(body.encode())} bytes")
    assert len(body.encode()) < 1_000_000
    (prediction,) = json.loads(body)["predictions"]
    masks = np.stack([cv2.imdecode(np.frombuffer(base64.b64decode(item["b64"]), np.uint8),
                                   cv2.IMREAD_UNCHANGED) for item in prediction["masks_png_bytes"]])
    assert masks.shape == (100, 160, 160) and masks.max() > 127


def _documented_docker_command() -> list[str]:
    """docs/export.md's `docker run` command, continuation lines joined, split as a shell would."""
    text = (ROOT / "docs" / "export.md").read_text()
    start = text.index("docker run ")
    lines = []
    for line in text[start:].splitlines():
        lines.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    return shlex.split(" ".join(lines))


def test_models_config_and_batching_file_fit_the_documented_docker_mount(exported):
    """models.config's base_path is where docs/export.md's `docker run -v <export>:/models`
    puts the model inside the container; every file the command names exists there."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    command = _documented_docker_command()
    host, container = command[command.index("-v") + 1].split(":")
    assert host.endswith("runs/export/train"), "where `tfseg export weights=runs/train/train` writes"
    flags = dict(arg[2:].split("=", 1) for arg in command if arg.startswith("--") and "=" in arg)
    assert "--enable_batching" in command
    export_dir = Path(exported["savedmodel"]).parent.parent

    def on_host(path_in_container: str) -> Path:
        assert path_in_container.startswith(container + "/"), path_in_container
        return export_dir / path_in_container[len(container) + 1:]

    config = text_format.Parse(on_host(flags["model_config_file"]).read_text(),
                               model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == "shapes" and model.model_platform == "tensorflow"
    assert (on_host(model.base_path) / "3" / "saved_model.pb").is_file()
    parameters = _batching_parameters(on_host(flags["batching_parameters_file"]).read_text())
    assert parameters.max_batch_size.value >= 1 and parameters.num_batch_threads.value >= 1
    assert parameters.HasField("batch_timeout_micros") and parameters.max_enqueued_batches.value
    assert not parameters.pad_variable_length_inputs


def _batching_parameters(text: str):
    """Parse BatchingParameters text (tensorflow_serving/servables/tensorflow/
    session_bundle_config.proto, not shipped in tensorflow-serving-api) with its fields."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
    from google.protobuf import wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name="batching_test.proto", package="tensorflow.serving",
        dependency=[wrappers_pb2.DESCRIPTOR.name], syntax="proto3")
    message = proto.message_type.add(name="BatchingParameters")
    F = descriptor_pb2.FieldDescriptorProto
    for name, number, kind in [("max_batch_size", 1, "Int64Value"),
                               ("batch_timeout_micros", 2, "Int64Value"),
                               ("max_enqueued_batches", 3, "Int64Value"),
                               ("num_batch_threads", 4, "Int64Value"),
                               ("thread_pool_name", 5, "StringValue"),
                               ("enable_large_batch_splitting", 8, "BoolValue"),
                               ("max_execution_batch_size", 9, "Int64Value")]:
        message.field.add(name=name, number=number, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                          type_name=f".google.protobuf.{kind}")
    message.field.add(name="allowed_batch_sizes", number=6, type=F.TYPE_INT64,
                      label=F.LABEL_REPEATED)
    message.field.add(name="pad_variable_length_inputs", number=7, type=F.TYPE_BOOL,
                      label=F.LABEL_OPTIONAL)
    pool.Add(proto)
    cls = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))
    return text_format.Parse(text, cls())


def _host_masks(loaded, letterboxed, thresholds):
    """Reference: the float masks of serving_pixels_thresholds placed by tfseg's host code."""
    images, infos = letterboxed
    count = len(images)
    out = _numpy(loaded.signatures["serving_pixels_thresholds"](
        images=tf.constant(images),
        score_threshold=tf.fill([count], float(thresholds.get("score_threshold", -1))),
        iou_threshold=tf.fill([count], float(thresholds.get("iou_threshold", -1))),
        max_detections=tf.fill([count], int(thresholds.get("max_detections", -1)))))
    return to_original(out, infos)


def _assert_same_as_host(results, reference):
    """Each host detection has a client row with its box and (nearly) its mask."""
    for got, want in zip(results, reference):
        assert len(got["boxes"]) >= len(want) > 0
        for i, box in enumerate(want.boxes):
            row = int(np.argmin(np.abs(got["boxes"] - box).sum(1)))
            np.testing.assert_allclose(got["boxes"][row], box, atol=1e-3)
            mask, expected = got["pasted"][row], want.full_mask(i)
            # uint8 probabilities move only pixels whose upsampled probability is within
            # 1/510 of 0.5: a few pixels of a mask, never a visible part of it.
            differ = (mask ^ expected).sum()
            assert differ <= max(3, 0.02 * (mask | expected).sum()), (i, differ)


class _FakeServing:
    """TF Serving's two front ends over the loaded SavedModel: REST on
    /v1/models/<name>:predict (row format) and gRPC PredictionService.Predict."""

    def __init__(self, loaded, name: str):
        self.loaded, self.name, self.requests = loaded, name, []

    def run(self, signature_name: str, tensors: dict) -> dict:
        self.requests.append(signature_name)
        return _numpy(self.loaded.signatures[signature_name](**tensors))

    def rest(self) -> http.server.ThreadingHTTPServer:
        serving = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                assert self.path == f"/v1/models/{serving.name}:predict", self.path
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outputs = serving.run(body.get("signature_name", "serving_default"),
                                      rest_request_tensors(body))
                answer = tf_serving_rest_body(outputs).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def grpc(self):
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        serving = self

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):
                assert request.model_spec.name == serving.name
                outputs = serving.run(request.model_spec.signature_name, {
                    k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
                response = predict_pb2.PredictResponse()
                for key, value in outputs.items():
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
                return response

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        return server, port


def _client(protocol: str, address: str, image_files, folder: Path, *flags: str) -> list[dict]:
    """examples/serving_client.py as typed; per image its --json entry with its --masks."""
    where = ["--url", f"http://{address}"] if protocol == "rest" else ["--target", address]
    out_json, out_masks = folder / f"{protocol}.json", folder / f"{protocol}.npz"
    run_example("serving_client.py", protocol, *map(str, image_files), *where, "--model",
                "shapes", *flags, "--json", str(out_json), "--masks", str(out_masks))
    results = json.loads(out_json.read_text())
    with np.load(out_masks) as masks:
        for i, result in enumerate(results):
            result.update({k: np.asarray(v) for k, v in result.items() if k != "image"},
                          masks=masks[f"probabilities_{i}"], pasted=masks[f"pasted_{i}"])
    return results


def test_client_rest_with_thresholds_decodes_and_pastes_masks(loaded, image_files, letterboxed,
                                                              tmp_path):
    serving = _FakeServing(loaded, "shapes")
    server = serving.rest()
    try:
        results = _client("rest", f"127.0.0.1:{server.server_port}", image_files, tmp_path,
                          "--score-threshold", "0.4", "--max-detections", "6")
    finally:
        server.shutdown()
    assert serving.requests == ["serving_thresholds"]
    assert [r["image"] for r in results] == [str(p) for p in image_files]
    assert all(0 < len(r["scores"]) <= 6 and (r["scores"] >= 0.4).all() for r in results)
    for result in results:
        height, width = result["letterbox"][:2].astype(int)
        assert result["pasted"].shape == (len(result["scores"]), height, width)
    thresholds = {"score_threshold": 0.4, "max_detections": 6}
    _assert_same_as_host(results, _host_masks(loaded, letterboxed, thresholds))


def test_client_grpc_decodes_the_same_as_rest(loaded, image_files, letterboxed, tmp_path):
    pytest.importorskip("tensorflow_serving.apis.predict_pb2",
                        reason="gRPC needs tensorflow-serving-api (tfseg[serving])")
    serving = _FakeServing(loaded, "shapes")
    rest_server = serving.rest()
    grpc_server, port = serving.grpc()
    try:
        rest = _client("rest", f"127.0.0.1:{rest_server.server_port}", image_files, tmp_path,
                       "--iou-threshold", "0.3")
        results = _client("grpc", f"127.0.0.1:{port}", image_files, tmp_path,
                          "--iou-threshold", "0.3")
    finally:
        rest_server.shutdown()
        grpc_server.stop(None)
    assert serving.requests == ["serving_thresholds"] * 2
    for got, want in zip(results, rest):
        np.testing.assert_array_equal(got["masks"], want["masks"])
        np.testing.assert_allclose(got["boxes"], want["boxes"], rtol=1e-6)
    _assert_same_as_host(results, _host_masks(loaded, letterboxed, {"iou_threshold": 0.3}))
