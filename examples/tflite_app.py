"""What a phone app does with the end-to-end .tflite, in plain numpy (no tfseg, no TensorFlow).

    python examples/tflite_app.py model_float32.tflite image.jpg [--out overlay.png]
        [--json detections.json] [--masks masks.npz]

Steps, as an Android/iOS app would write them:
  1. decode the image (here cv2) to RGB uint8;
  2. letterbox it to S x S: scale = min(S/h, S/w), bilinear resize to round(h*scale) x
     round(w*scale), pad with grey 114, image centred (pad_top = (S - new_h) // 2, ...);
  3. run the signature "detect" by NAME (the flatbuffer's output order is not the
     signature's): inputs "images" uint8 [1, S, S, 3] and the run-time thresholds
     "score_threshold" float32 [1], "iou_threshold" float32 [1], "max_detections" int32 [1]
     (every input must be fed; -1 means the value chosen at export, written in the
     file's metadata); outputs "boxes" [1, N, 4] normalized
     [ymin, xmin, ymax, xmax] of the letterboxed input, "scores" [1, N], "classes" [1, N],
     "masks" [1, N, S/4, S/4] probabilities, "num_detections" [1];
  4. map boxes back: x = (x_norm * S - pad_left) / scale, y likewise with pad_top;
  5. place each mask: for every original pixel inside the box, sample the mask at
     ((x + 0.5) * scale + pad_left) / 4 - 0.5 (bilinear), threshold at 0.5.
     A file exported with export.mask_size=m returns "box_masks" [1, N, m, m] instead:
     each spans its box (before clipping), so step 5 is a resize of m x m to the box in
     original pixels (paste_box_mask below); uint8 masks (export.mask_dtype=uint8) hold
     round(255 p): threshold at 128.
The geometry is the same as tfseg.postprocess.host (which the Python predict uses); this
file restates it without tfseg so an app developer can read it in one place. Precision
matters where a probability sits within a rounding step of the threshold: the letterbox info
and the boxes mapped back are float32 (what tfseg's letterbox info holds), the sampling maps
are computed in float64 from those values, as tfseg's predict computes them, so both place
the very same pixels.
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

PAD_VALUE = 114
PROTO_STRIDE = 4


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, tuple[np.float32, int, int]]:
    """``[H, W, 3]`` uint8 -> (``[S, S, 3]`` uint8, (scale as float32, pad_top, pad_left))."""
    height, width = rgb.shape[:2]
    scale = min(size / height, size / width)
    new_h, new_w = min(round(height * scale), size), min(round(width * scale), size)
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas, (np.float32(scale), top, left)


def run_detect(model_path: str, image: np.ndarray, num_threads: int = 2,
               score_threshold: float = -1, iou_threshold: float = -1,
               max_detections: int = -1) -> dict:
    """Run the "detect" signature on one letterboxed image; outputs by name.

    A threshold left at -1 is the one chosen at export.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model_path, num_threads=num_threads)
    runner = interpreter.get_signature_runner("detect")
    return runner(images=image[None],
                  score_threshold=np.array([score_threshold], np.float32),
                  iou_threshold=np.array([iou_threshold], np.float32),
                  max_detections=np.array([max_detections], np.int32))


def boxes_to_original(boxes_norm: np.ndarray, size: int, scale: float, top: int, left: int,
                      height: int, width: int, clip: bool = True) -> np.ndarray:
    """``[n, 4]`` normalized yxyx of the input -> ``[n, 4]`` float32 xyxy original pixels."""
    ymin, xmin, ymax, xmax = (boxes_norm[:, i].astype(np.float32) * np.float32(size)
                              for i in range(4))
    top, left, scale = np.float32(top), np.float32(left), np.float32(scale)
    boxes = np.stack([(xmin - left) / scale, (ymin - top) / scale,
                      (xmax - left) / scale, (ymax - top) / scale], axis=1)
    limit = np.array([width, height, width, height], np.float32)
    return np.clip(boxes, np.float32(0), limit) if clip else boxes


def paste_box_mask(box_mask: np.ndarray, span: np.ndarray, box: np.ndarray, height: int,
                   width: int) -> np.ndarray:
    """One box-aligned ``[m, m]`` mask -> ``[H, W]`` bool on the original image.

    Args:
        box_mask: ``[m, m]`` float32 probabilities or uint8 round(255 p).
        span: ``[4]`` xyxy original pixels the m x m grid spans (the box, unclipped).
        box: ``[4]`` the box clipped to the image: pixels outside it stay False.
        height, width: original image size.
    """
    full = np.zeros((height, width), bool)
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[2])), width), min(int(np.ceil(box[3])), height)
    span = np.asarray(span, np.float64)  # the map below in float64, as tfseg computes it
    span_w, span_h = span[2] - span[0], span[3] - span[1]
    if x1 <= x0 or y1 <= y0 or span_w <= 0 or span_h <= 0:
        return full
    m_y, m_x = box_mask.shape
    probabilities = box_mask.astype(np.float32) / (255.0 if box_mask.dtype == np.uint8 else 1.0)
    # Cell (i, j) is centred at span_x0 + (j + 0.5) * span_w / m: the resize's own convention
    # when the span starts and ends on pixel edges; warpAffine handles fractional boxes.
    to_cells = np.array([[m_x / span_w, 0, (x0 + 0.5 - span[0]) * m_x / span_w - 0.5],
                         [0, m_y / span_h, (y0 + 0.5 - span[1]) * m_y / span_h - 0.5]])
    resized = cv2.warpAffine(probabilities, to_cells, (x1 - x0, y1 - y0),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
    cols, rows = np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5
    inside = ((rows >= box[1]) & (rows < box[3]))[:, None] & ((cols >= box[0]) & (cols < box[2]))
    full[y0:y1, x0:x1] = (resized > 0.5) & inside
    return full


def mask_to_original(mask: np.ndarray, box: np.ndarray, scale: float, top: int, left: int,
                     height: int, width: int) -> np.ndarray:
    """One ``[P, P]`` mask -> ``[H, W]`` bool on the original image, inside its box."""
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    full = np.zeros((height, width), bool)
    if x1 <= x0 or y1 <= y0:
        return full
    scale, top, left = float(scale), float(top), float(left)  # float64 from here
    step = scale / PROTO_STRIDE
    to_proto = np.array([[step, 0, ((x0 + 0.5) * scale + left) / PROTO_STRIDE - 0.5],
                         [0, step, ((y0 + 0.5) * scale + top) / PROTO_STRIDE - 0.5]])
    probabilities = mask.astype(np.float32) / (255.0 if mask.dtype == np.uint8 else 1.0)
    warped = cv2.warpAffine(probabilities, to_proto, (x1 - x0, y1 - y0),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    cols, rows = np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5
    inside = ((rows >= box[1]) & (rows < box[3]))[:, None] & ((cols >= box[0]) & (cols < box[2]))
    full[y0:y1, x0:x1] = (warped > 0.5) & inside
    return full


def detect_image(model_path: str, rgb: np.ndarray, size: int) -> list[dict]:
    """Detections of one RGB image in original pixels: box, score, class, mask."""
    height, width = rgb.shape[:2]
    boxed, (scale, top, left) = letterbox(rgb, size)
    out = run_detect(model_path, boxed)
    n = int(out["num_detections"][0])
    boxes = boxes_to_original(out["boxes"][0, :n], size, scale, top, left, height, width)
    if "box_masks" in out:
        spans = boxes_to_original(out["boxes"][0, :n], size, scale, top, left, height, width,
                                  clip=False)
        masks = [paste_box_mask(out["box_masks"][0, i], spans[i], boxes[i], height, width)
                 for i in range(n)]
    else:
        masks = [mask_to_original(out["masks"][0, i], boxes[i], scale, top, left, height, width)
                 for i in range(n)]
    return [{"box": boxes[i].tolist(), "score": float(out["scores"][0, i]),
             "class": int(out["classes"][0, i]), "mask": masks[i]} for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("image")
    parser.add_argument("--out", help="write an overlay PNG here")
    parser.add_argument("--json", help="write the letterbox and the detections (box, score, "
                                       "class, mask pixel count) here")
    parser.add_argument("--masks", help="write the masks on the original image here (.npz, "
                                        "'masks': [n, H, W] bool)")
    args = parser.parse_args()
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=args.model).get_signature_runner("detect").get_input_details()
    size = int(details["images"]["shape"][1])
    rgb = cv2.cvtColor(cv2.imread(args.image, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    detections = detect_image(args.model, rgb, size)
    summary = [{k: v for k, v in d.items() if k != "mask"} | {"mask_pixels": int(d["mask"].sum())}
               for d in detections]
    print(json.dumps(summary, indent=1))
    if args.json:
        scale, top, left = letterbox(rgb, size)[1]
        with open(args.json, "w") as file:
            json.dump({"image": args.image, "letterbox": [*rgb.shape[:2], float(scale), top, left],
                       "detections": summary}, file, indent=1)
    if args.masks:
        masks = np.stack([d["mask"] for d in detections]) if detections else \
            np.zeros((0, *rgb.shape[:2]), bool)
        np.savez_compressed(args.masks, masks=masks)
    if args.out:
        overlay = rgb.copy()
        for d in detections:
            overlay[d["mask"]] = (0.5 * overlay[d["mask"]] + (0, 127, 0)).astype(np.uint8)
        cv2.imwrite(args.out, cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
