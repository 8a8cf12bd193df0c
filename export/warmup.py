"""TF Serving warmup requests (``assets.extra/tf_serving_warmup_requests``) without serving protos.

TF Serving replays this file at load time so the first real request does not pay for graph
initialisation. The file is a TFRecord of ``tensorflow.serving.PredictionLog`` messages.
tensorflow-serving-api (which defines them) is an optional dependency, so the few fields we
need are written here in protobuf wire format, using TensorFlow's own TensorProto for the
inputs. The field numbers come from tensorflow_serving/apis/*.proto:

    PredictionLog  { PredictLog predict_log = 6; }
    PredictLog     { PredictRequest request = 1; }
    PredictRequest { ModelSpec model_spec = 1; map<string, TensorProto> inputs = 2; }
    ModelSpec      { string name = 1; string signature_name = 3; }
    map entry      { string key = 1; TensorProto value = 2; }

tests/export/test_savedmodel.py parses the file back with a descriptor built from those
definitions, so a wrong number fails a test.
"""

from __future__ import annotations

import os

import tensorflow as tf

from tfseg.export import signatures

_LENGTH_DELIMITED = 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited field (string, bytes or embedded message)."""
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def prediction_log(model_name: str, signature_name: str, inputs: dict[str, bytes]) -> bytes:
    """A serialized PredictionLog holding one PredictRequest.

    Args:
        model_name: ModelSpec.name.
        signature_name: ModelSpec.signature_name.
        inputs: input name -> serialized TensorProto.

    Returns:
        The PredictionLog message bytes.
    """
    spec = _field(1, model_name.encode()) + _field(3, signature_name.encode())
    request = _field(1, spec)
    for key, tensor in inputs.items():
        request += _field(2, _field(1, key.encode()) + _field(2, tensor))
    return _field(6, _field(1, request))


def warmup_inputs(encoded: bytes, thresholds: bool) -> dict[str, bytes]:
    """One request's inputs (batch of one): the image, and the thresholds at -1 (defaults)."""
    inputs = {signatures.INPUT_BYTES: tf.make_tensor_proto([encoded], tf.string, [1])}
    if thresholds:
        for name, dtype in zip(signatures.THRESHOLD_INPUTS, (tf.float32, tf.float32, tf.int32)):
            inputs[name] = tf.make_tensor_proto([signatures.USE_DEFAULT], dtype, [1])
    return {name: tensor.SerializeToString() for name, tensor in inputs.items()}


def write_warmup_requests(path: str | os.PathLike, model_name: str,
                          encoded_images: list[bytes]) -> None:
    """Write warmup requests as a TFRecord file: per encoded image, one request to
    ``serving_default`` and one to ``serving_thresholds`` (the signatures REST clients use).

    Args:
        path: the file to write (its folder is created).
        model_name: the Serving model name.
        encoded_images: JPEG/PNG bytes.
    """
    os.makedirs(os.path.dirname(os.fspath(path)), exist_ok=True)
    with tf.io.TFRecordWriter(os.fspath(path)) as writer:
        for encoded in encoded_images:
            for signature, thresholds in ((signatures.SERVING_BYTES, False),
                                          (signatures.SERVING_BYTES_THRESHOLDS, True)):
                writer.write(prediction_log(model_name, signature,
                                            warmup_inputs(encoded, thresholds)))
