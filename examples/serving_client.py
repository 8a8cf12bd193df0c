"""TF Serving client for a tfseg SavedModel: REST with base64 images, gRPC with serving protos.

    python examples/serving_client.py rest image.jpg --url http://localhost:8501 --model tfseg
    python examples/serving_client.py grpc image.jpg --target localhost:8500 --model tfseg \\
        --score-threshold 0.5 --max-detections 20 --out overlay.png
    (--json answers.json --masks masks.npz write what it decoded, for a program to read)

Start the server (the export wrote ``<dir>/<name>/<version>/``, ``<dir>/models.config`` with
base_path ``/models/<name>``, and ``<dir>/batching_parameters.txt``):
    docker run -p 8500:8500 -p 8501:8501 -v <dir>:/models tensorflow/serving \\
        --model_config_file=/models/models.config \\
        --enable_batching --batching_parameters_file=/models/batching_parameters.txt

Request (REST, signature ``serving_default``; a string tensor is sent as {"b64": ...}):
    POST /v1/models/<name>:predict
    {"instances": [{"image_bytes": {"b64": "<base64>"}}]}
With run-time thresholds (signature ``serving_thresholds``; -1 keeps the export's value):
    {"signature_name": "serving_thresholds", "instances": [{"image_bytes": {"b64": "..."},
      "score_threshold": 0.5, "iou_threshold": -1, "max_detections": 20}]}
Response (one object per instance):
    {"predictions": [{"boxes": [[x1, y1, x2, y2] x N]   ORIGINAL-image pixels,
                      "scores": [N], "classes": [N], "num_detections": n,
                      "masks_png_bytes": [{"b64": "<PNG>"} x N],
                      "letterbox": [orig_h, orig_w, scale, pad_top, pad_left]}]}
Only the first ``num_detections`` rows are valid. Each mask is a P x P grey PNG (P = S/4) of
the mask probability x 255 on the letterboxed prototype grid (empty past num_detections): a
pixel (r, c) covers input pixels [4c, 4c + 4) x [4r, 4r + 4); original x = (input x -
pad_left) / scale. :func:`paste_masks` places them on the original image. gRPC returns the
same tensors (masks_png_bytes as a string tensor of PNG bytes).

gRPC uses tensorflow-serving-api, imported lazily (``pip install -e ".[serving]"``; beside
tensorflow-cpu, ``pip install --no-deps tensorflow-serving-api``: its dependencies would add the
full tensorflow). This file imports nothing of tfseg, so it says so itself when that is missing.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import urllib.request

import cv2
import numpy as np

from tflite_app import mask_to_original, paste_box_mask  # an app's placement

THRESHOLD_INPUTS = {"score_threshold": np.float32, "iou_threshold": np.float32,
                    "max_detections": np.int32}
MASKS_PNG = "masks_png_bytes"


def _signature(thresholds: dict | None) -> str:
    return "serving_thresholds" if thresholds else "serving_default"


def _threshold_values(thresholds: dict) -> dict:
    """All three threshold inputs, -1 (the export's value) for those not given."""
    unknown = set(thresholds) - set(THRESHOLD_INPUTS)
    if unknown:
        raise ValueError(f"unknown thresholds {sorted(unknown)}; known: {list(THRESHOLD_INPUTS)}")
    return {name: thresholds.get(name, -1) for name in THRESHOLD_INPUTS}


def rest_request(image_bytes: list[bytes], thresholds: dict | None = None) -> dict:
    """The JSON body of a REST predict request for encoded images.

    Args:
        image_bytes: encoded JPEG/PNG images.
        thresholds: None (serving_default, the export's thresholds) or some of
            score_threshold, iou_threshold, max_detections (serving_thresholds).
    """
    instances = [{"image_bytes": {"b64": base64.b64encode(b).decode("ascii")}}
                 for b in image_bytes]
    if thresholds:
        values = _threshold_values(thresholds)
        instances = [{**instance, **values} for instance in instances]
    return {"signature_name": _signature(thresholds), "instances": instances}


def decode_rest_response(body: dict) -> list[dict]:
    """A REST predict response -> one dict per image with its valid rows and full masks."""
    results = []
    for prediction in body["predictions"]:
        pngs = [base64.b64decode(item["b64"]) for item in prediction[MASKS_PNG]]
        arrays = {k: np.asarray(v) for k, v in prediction.items() if k != MASKS_PNG}
        results.append(decode_prediction(arrays, pngs))
    return results


def decode_prediction(prediction: dict, pngs: list[bytes]) -> dict:
    """One image's outputs cut to its num_detections rows, the PNG masks decoded.

    Args:
        prediction: boxes, scores, classes, num_detections, letterbox as arrays.
        pngs: the image's N masks_png_bytes entries.

    Returns:
        boxes ``[n, 4]``, scores ``[n]``, classes ``[n]``, letterbox ``[5]``,
        num_detections n, masks ``[n, P, P]`` float32 probabilities in [0, 1].
    """
    n = int(np.asarray(prediction["num_detections"]).reshape(-1)[0])
    result = {k: (np.asarray(v)[:n] if k in ("boxes", "scores", "classes") else v)
              for k, v in prediction.items()}
    result["masks"] = np.stack([
        cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
        for png in pngs[:n]]) if n else np.zeros((0, 0, 0), np.float32)
    return result


def paste_masks(result: dict, box_aligned: bool = False) -> np.ndarray:
    """The decoded masks placed on the original image: ``[n, H, W]`` bool (probability > 0.5,
    inside the box), as examples/tflite_app.py places an end-to-end TFLite's masks.

    Args:
        result: one image's :func:`decode_prediction`.
        box_aligned: the export was made with ``export.mask_size`` (metadata.json's
            ``masks.mask_size`` > 0): each mask spans its returned box, not the letterbox grid.
    """
    height, width, scale, top, left = np.asarray(result["letterbox"], np.float64).tolist()
    height, width = int(height), int(width)
    if not len(result["masks"]):
        return np.zeros((0, height, width), bool)
    if box_aligned:  # serving_default re-spans box masks to its clipped boxes
        return np.stack([paste_box_mask(mask, box, box, height, width)
                         for mask, box in zip(result["masks"], result["boxes"])])
    return np.stack([mask_to_original(mask, box, scale, top, left, height, width)
                     for mask, box in zip(result["masks"], result["boxes"])])


def predict_rest(url: str, model: str, image_bytes: list[bytes], thresholds: dict | None = None,
                 timeout: float = 30.0) -> list[dict]:
    """POST to ``<url>/v1/models/<model>:predict``; returns one decoded dict per image.

    Raises:
        RuntimeError: the server answered an error (e.g. bytes that are not an image).
    """
    body = json.dumps(rest_request(image_bytes, thresholds)).encode()
    request = urllib.request.Request(f"{url.rstrip('/')}/v1/models/{model}:predict", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return decode_rest_response(json.loads(response.read()))
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"TF Serving error {err.code}: {err.read().decode()[:500]}") from None


def grpc_request(model: str, image_bytes: list[bytes], thresholds: dict | None = None):
    """A PredictRequest (tensorflow-serving-api) for encoded images, thresholds optional."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = _signature(thresholds)
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(image_bytes, dtype=tf.string))
    for name, value in _threshold_values(thresholds).items() if thresholds else ():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(
            np.full([len(image_bytes)], value, THRESHOLD_INPUTS[name])))
    return request


def decode_grpc_response(response) -> list[dict]:
    """A PredictResponse -> one decoded dict per image (as :func:`decode_rest_response`)."""
    import tensorflow as tf

    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    pngs = outputs.pop(MASKS_PNG)  # [B, N] bytes
    return [decode_prediction({k: v[i] for k, v in outputs.items()}, list(pngs[i]))
            for i in range(len(pngs))]


def predict_grpc(target: str, model: str, image_bytes: list[bytes],
                 thresholds: dict | None = None, timeout: float = 30.0) -> list[dict]:
    """The same request over gRPC (PredictionService.Predict)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(grpc_request(model, image_bytes, thresholds), timeout)
    return decode_grpc_response(response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=["rest", "grpc"])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--url", default="http://localhost:8501")
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--model", default="tfseg")
    parser.add_argument("--score-threshold", type=float)
    parser.add_argument("--iou-threshold", type=float)
    parser.add_argument("--max-detections", type=int)
    parser.add_argument("--out", help="overlay PNG of the first image's masks")
    parser.add_argument("--json", help="write each image's boxes, scores, classes and letterbox "
                                       "here")
    parser.add_argument("--masks", help="write each image's masks here (.npz: probabilities_<i> "
                                        "[n, P, P] float32, pasted_<i> [n, H, W] bool)")
    args = parser.parse_args()
    thresholds = {k: v for k, v in (("score_threshold", args.score_threshold),
                                    ("iou_threshold", args.iou_threshold),
                                    ("max_detections", args.max_detections)) if v is not None}
    data = [open(path, "rb").read() for path in args.images]
    if args.protocol == "rest":
        results = predict_rest(args.url, args.model, data, thresholds)
    elif importlib.util.find_spec("tensorflow_serving") is None:
        raise SystemExit('serving_client: error: gRPC requests need tensorflow-serving-api, '
                         'which is not installed: pip install -e ".[serving]"')
    else:
        results = predict_grpc(args.target, args.model, data, thresholds)
    for path, result in zip(args.images, results):
        print(path, json.dumps({"boxes": result["boxes"].round(1).tolist(),
                                "scores": result["scores"].round(3).tolist(),
                                "classes": result["classes"].tolist()}))
    if args.json:
        with open(args.json, "w") as file:
            json.dump([{"image": path, **{k: np.asarray(result[k]).tolist() for k in
                                          ("boxes", "scores", "classes", "letterbox")}}
                       for path, result in zip(args.images, results)], file)
    if args.masks:
        arrays = {}
        for i, result in enumerate(results):
            arrays[f"probabilities_{i}"], arrays[f"pasted_{i}"] = result["masks"], paste_masks(result)
        np.savez_compressed(args.masks, **arrays)
    if args.out:
        image = cv2.imread(args.images[0], cv2.IMREAD_COLOR)
        for mask in paste_masks(results[0]):
            image[mask] = (0.5 * image[mask] + (0, 127, 0)).astype(np.uint8)
        cv2.imwrite(args.out, image)


if __name__ == "__main__":
    main()
