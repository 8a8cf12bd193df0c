"""TF Serving client for a tfseg SavedModel: REST with base64 images, gRPC with serving protos.

    python tools/serving_client.py rest image.jpg --url http://localhost:8501 --model tfseg
    python tools/serving_client.py grpc image.jpg --target localhost:8500 --model tfseg

Start the server (the export wrote ``<dir>/<name>/<version>/`` and ``<dir>/models.config``):
    docker run -p 8500:8500 -p 8501:8501 -v <dir>:/models tensorflow/serving \\
        --model_config_file=/models/models.config   (edit base_path to /models/<name>)

Request (REST, signature ``serving_default``; a string tensor is sent as {"b64": ...}):
    POST /v1/models/<name>:predict
    {"signature_name": "serving_default", "instances": [{"image_bytes": {"b64": "<base64>"}}]}
Response (one object per instance):
    {"predictions": [{"boxes": [[x1, y1, x2, y2] x N]   ORIGINAL-image pixels,
                      "scores": [N], "classes": [N], "num_detections": n,
                      "masks": [N][P][P]  probabilities on the letterboxed prototype grid,
                      "letterbox": [orig_h, orig_w, scale, pad_top, pad_left]}]}
Only the first ``num_detections`` rows are valid. A mask pixel (r, c) of the P x P grid
covers input pixels [4c, 4c + 4) x [4r, 4r + 4); original x = (input x - pad_left) / scale.

gRPC uses tensorflow-serving-api (``pip install tfseg[serving]``), imported lazily.
"""

from __future__ import annotations

import argparse
import base64
import json
import urllib.request

import numpy as np


def rest_request(image_bytes: list[bytes], signature: str = "serving_default") -> dict:
    """The JSON body of a REST predict request for encoded images."""
    return {"signature_name": signature,
            "instances": [{"image_bytes": {"b64": base64.b64encode(b).decode("ascii")}}
                          for b in image_bytes]}


def predict_rest(url: str, model: str, image_bytes: list[bytes],
                 timeout: float = 30.0) -> list[dict]:
    """POST to ``<url>/v1/models/<model>:predict``; returns one dict of arrays per image.

    Raises:
        RuntimeError: the server answered an error (e.g. bytes that are not an image).
    """
    body = json.dumps(rest_request(image_bytes)).encode()
    request = urllib.request.Request(f"{url.rstrip('/')}/v1/models/{model}:predict", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            predictions = json.loads(response.read())["predictions"]
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"TF Serving error {err.code}: {err.read().decode()[:500]}") from None
    return [valid_rows({k: np.asarray(v) for k, v in p.items()}) for p in predictions]


def predict_grpc(target: str, model: str, image_bytes: list[bytes],
                 timeout: float = 30.0) -> list[dict]:
    """The same request over gRPC (PredictionService.Predict)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(image_bytes, dtype=tf.string))
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout)
    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    return [valid_rows({k: v[i] for k, v in outputs.items()}) for i in range(len(image_bytes))]


def valid_rows(prediction: dict) -> dict:
    """One image's outputs cut to its num_detections rows."""
    n = int(np.asarray(prediction["num_detections"]).reshape(-1)[0])
    return {k: (np.asarray(v)[:n] if k in ("boxes", "scores", "classes", "masks") else v)
            for k, v in prediction.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=["rest", "grpc"])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--url", default="http://localhost:8501")
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--model", default="tfseg")
    args = parser.parse_args()
    data = [open(path, "rb").read() for path in args.images]
    if args.protocol == "rest":
        results = predict_rest(args.url, args.model, data)
    else:
        results = predict_grpc(args.target, args.model, data)
    for path, result in zip(args.images, results):
        print(path, json.dumps({"boxes": result["boxes"].round(1).tolist(),
                                "scores": result["scores"].round(3).tolist(),
                                "classes": result["classes"].tolist()}))


if __name__ == "__main__":
    main()
