// What a browser app does with tfseg's end-to-end .tflite: read the file's metadata,
// letterbox an image, run the "detect" signature with LiteRT.js and place the detections
// on the original image. The geometry is the library's (tfseg.ops.letterbox and
// tfseg.postprocess.host), restated in plain JavaScript; nothing here touches the page.

import {Tensor, loadAndCompile} from '@litertjs/core';

export const PAD_VALUE = 114;     // grey of the letterbox padding
export const PROTO_STRIDE = 4;    // input pixels per prototype pixel
const METADATA_NAME = 'tfseg_metadata';

// ---------------------------------------------------------------------------------------
// Metadata: a flatbuffer Model.metadata entry named "tfseg_metadata" holding UTF-8 JSON.

function tableField(view, table, field) {
  // Absolute offset of a table's field, or 0 when the field is absent.
  const vtable = table - view.getInt32(table, true);
  const vtableSize = view.getUint16(vtable, true);
  const slot = 4 + 2 * field;
  if (slot >= vtableSize) return 0;
  const relative = view.getUint16(vtable + slot, true);
  return relative ? table + relative : 0;
}

function vectorAt(view, fieldOffset) {
  // [start, length] of the vector a field points at.
  const vector = fieldOffset + view.getUint32(fieldOffset, true);
  return [vector + 4, view.getUint32(vector, true)];
}

function tableAt(view, elementOffset) {
  return elementOffset + view.getUint32(elementOffset, true);
}

/**
 * The tfseg metadata JSON inside a .tflite, or null when the file has none.
 * Model fields (TFLite schema): 4 buffers, 6 metadata; Metadata: 0 name, 1 buffer;
 * Buffer: 0 data, 1 offset, 2 size (offset/size for data stored after the flatbuffer).
 * @param {Uint8Array} bytes the whole file.
 */
export function readTfliteMetadata(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const model = view.getUint32(0, true);
  const metadataField = tableField(view, model, 6);
  const buffersField = tableField(view, model, 4);
  if (!metadataField || !buffersField) return null;
  const [entries, count] = vectorAt(view, metadataField);
  const [buffers] = vectorAt(view, buffersField);
  const utf8 = new TextDecoder();
  for (let i = 0; i < count; i++) {
    const entry = tableAt(view, entries + 4 * i);
    const nameField = tableField(view, entry, 0);
    if (!nameField) continue;
    const [nameStart, nameLength] = vectorAt(view, nameField);
    if (utf8.decode(bytes.subarray(nameStart, nameStart + nameLength)) !== METADATA_NAME) continue;
    const bufferField = tableField(view, entry, 1);
    const index = bufferField ? view.getUint32(bufferField, true) : 0;
    const buffer = tableAt(view, buffers + 4 * index);
    const dataField = tableField(view, buffer, 0);
    let start, length;
    if (dataField) {
      [start, length] = vectorAt(view, dataField);
    } else {
      const offsetField = tableField(view, buffer, 1), sizeField = tableField(view, buffer, 2);
      start = Number(view.getBigUint64(offsetField, true));
      length = Number(view.getBigUint64(sizeField, true));
    }
    return JSON.parse(utf8.decode(bytes.subarray(start, start + length)));
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// Letterbox: scale = min(S/h, S/w), bilinear resize (half-pixel centres) to
// round(h*scale) x round(w*scale), grey 114 around it, image centred.

function roundHalfEven(value) {
  const floor = Math.floor(value);
  const rest = value - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * The letterbox of an image of height x width into size x size (float32 like the graph).
 * @returns {{scale: number, resizedHeight: number, resizedWidth: number, padTop: number,
 *   padLeft: number}}
 */
export function letterboxParams(height, width, size) {
  const f = Math.fround;
  const scale = Math.min(f(size / height), f(size / width));
  const resizedHeight = Math.min(roundHalfEven(f(height * scale)), size);
  const resizedWidth = Math.min(roundHalfEven(f(width * scale)), size);
  return {scale, resizedHeight, resizedWidth,
          padTop: Math.floor((size - resizedHeight) / 2),
          padLeft: Math.floor((size - resizedWidth) / 2)};
}

function sourceTaps(outSize, inSize) {
  // For each output index: lower and upper source index and the weight of the upper one,
  // at source coordinate (i + 0.5) * in / out - 0.5 (the RESIZE_BILINEAR half-pixel rule).
  const ratio = inSize / outSize;
  const lower = new Int32Array(outSize), upper = new Int32Array(outSize);
  const weight = new Float64Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const at = (i + 0.5) * ratio - 0.5;
    const floor = Math.floor(at);
    lower[i] = Math.max(floor, 0);
    upper[i] = Math.min(Math.ceil(at), inSize - 1);
    weight[i] = at - floor;
  }
  return {lower, upper, weight};
}

/**
 * Letterbox RGBA pixels into the model's input.
 * @param {Uint8ClampedArray} rgba height x width x 4 (ImageData.data).
 * @returns {{pixels: Uint8Array, params: object}} pixels: size x size x 3 RGB uint8.
 */
export function letterbox(rgba, height, width, size) {
  const params = letterboxParams(height, width, size);
  const {resizedHeight: rh, resizedWidth: rw, padTop, padLeft} = params;
  const pixels = new Uint8Array(size * size * 3).fill(PAD_VALUE);
  const rows = sourceTaps(rh, height), cols = sourceTaps(rw, width);
  for (let y = 0; y < rh; y++) {
    const top = rows.lower[y] * width, bottom = rows.upper[y] * width, dy = rows.weight[y];
    for (let x = 0; x < rw; x++) {
      const left = cols.lower[x], right = cols.upper[x], dx = cols.weight[x];
      const out = ((y + padTop) * size + x + padLeft) * 3;
      for (let c = 0; c < 3; c++) {
        const tl = rgba[(top + left) * 4 + c], tr = rgba[(top + right) * 4 + c];
        const bl = rgba[(bottom + left) * 4 + c], br = rgba[(bottom + right) * 4 + c];
        const upperRow = tl + (tr - tl) * dx, lowerRow = bl + (br - bl) * dx;
        const value = roundHalfEven(upperRow + (lowerRow - upperRow) * dy);
        pixels[out + c] = Math.min(Math.max(value, 0), 255);
      }
    }
  }
  return {pixels, params};
}

// ---------------------------------------------------------------------------------------
// Detections back on the original image.

/** Normalized [ymin, xmin, ymax, xmax] of the input -> xyxy original pixels. */
export function boxToOriginal(yxyx, size, params, height, width, clip = true) {
  const {scale, padTop, padLeft} = params;
  const box = [(yxyx[1] * size - padLeft) / scale, (yxyx[0] * size - padTop) / scale,
               (yxyx[3] * size - padLeft) / scale, (yxyx[2] * size - padTop) / scale];
  if (!clip) return box;
  const limits = [width, height, width, height];
  return box.map((v, i) => Math.min(Math.max(v, 0), limits[i]));
}

function pixelRange(box, height, width) {
  // Integer pixels (x0, y0, x1, y1), exclusive ends, covering the box.
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
  const x0 = clamp(Math.floor(box[0]), 0, width), y0 = clamp(Math.floor(box[1]), 0, height);
  return [x0, y0, clamp(Math.ceil(box[2]), x0, width), clamp(Math.ceil(box[3]), y0, height)];
}

function bilinear(grid, rows, cols, y, x, replicate) {
  // Sample a rows x cols grid at (y, x) between cell centres; outside it the border
  // repeats (replicate) or reads 0.
  const y0 = Math.floor(y), x0 = Math.floor(x), dy = y - y0, dx = x - x0;
  const at = (r, c) => {
    if (replicate) {
      r = Math.min(Math.max(r, 0), rows - 1);
      c = Math.min(Math.max(c, 0), cols - 1);
    } else if (r < 0 || r >= rows || c < 0 || c >= cols) {
      return 0;
    }
    return grid[r * cols + c];
  };
  const top = at(y0, x0) + (at(y0, x0 + 1) - at(y0, x0)) * dx;
  const bottom = at(y0 + 1, x0) + (at(y0 + 1, x0 + 1) - at(y0 + 1, x0)) * dx;
  return top + (bottom - top) * dy;
}

/**
 * One mask -> its crop on the original image, inside the (clipped) box.
 * Prototype masks: original pixel (c, r) samples prototype coordinate
 * ((c + 0.5) * scale + pad_left) / 4 - 0.5 (zero outside the grid). Box-aligned m x m masks:
 * cell (i, j) is centred at span_x0 + (j + 0.5) * span_w / m (edge cells repeat).
 * @param {Float32Array|Uint8Array} grid rows x cols probabilities (uint8: round(255 p)).
 * @param {number[]} box xyxy original pixels, clipped.
 * @param {number[]|null} span box-aligned masks: the unclipped box the grid spans.
 * @returns {{x0: number, y0: number, width: number, height: number, bits: Uint8Array}}
 */
export function maskToOriginal(grid, rows, cols, box, span, params, height, width) {
  const [x0, y0, x1, y1] = pixelRange(box, height, width);
  const crop = {x0, y0, width: x1 - x0, height: y1 - y0,
                bits: new Uint8Array(Math.max(x1 - x0, 0) * Math.max(y1 - y0, 0))};
  const threshold = grid instanceof Uint8Array ? 0.5 * 255 : 0.5;
  let toGrid;
  if (span) {
    const spanW = span[2] - span[0], spanH = span[3] - span[1];
    if (spanW <= 0 || spanH <= 0) return crop;
    toGrid = (c, r) => [(r + 0.5 - span[1]) * rows / spanH - 0.5,
                        (c + 0.5 - span[0]) * cols / spanW - 0.5];
  } else {
    const {scale, padTop, padLeft} = params;
    toGrid = (c, r) => [((r + 0.5) * scale + padTop) / PROTO_STRIDE - 0.5,
                        ((c + 0.5) * scale + padLeft) / PROTO_STRIDE - 0.5];
  }
  for (let r = y0; r < y1; r++) {
    if (r + 0.5 < box[1] || r + 0.5 >= box[3]) continue;
    for (let c = x0; c < x1; c++) {
      if (c + 0.5 < box[0] || c + 0.5 >= box[2]) continue;
      const [gy, gx] = toGrid(c, r);
      if (bilinear(grid, rows, cols, gy, gx, Boolean(span)) > threshold) {
        crop.bits[(r - y0) * crop.width + (c - x0)] = 1;
      }
    }
  }
  return crop;
}

// ---------------------------------------------------------------------------------------
// The model.

/**
 * Load an end-to-end .tflite (LiteRT.js must be loaded: loadLiteRt).
 * @param {Uint8Array} bytes the file.
 * @returns {Promise<{compiled: object, metadata: object|null, size: number}>}
 */
export async function loadModel(bytes) {
  const metadata = readTfliteMetadata(bytes);
  const compiled = await loadAndCompile(bytes, {accelerator: 'wasm'});
  const runner = compiled.signatures.detect;
  if (!runner) throw new Error('this .tflite has no "detect" signature (a raw export?)');
  const image = runner.getInputDetails().find((d) => d.shape.length === 4);
  return {compiled, metadata, size: image.shape[1]};
}

/**
 * Run "detect" on RGBA pixels and place the detections on the original image.
 * @param {object} model from loadModel.
 * @param {Uint8ClampedArray} rgba height x width x 4.
 * @param {{score: number, iou: number}} thresholds run-time thresholds, -1 = the export's.
 * @returns {Promise<{inferenceMs: number, detections: object[]}>} each detection: box
 *   (xyxy original pixels), score, classIndex, label, mask (crop, see maskToOriginal).
 */
export async function detect(model, rgba, height, width, thresholds) {
  const {pixels, params} = letterbox(rgba, height, width, model.size);
  const size = model.size;
  const inputs = {
    images: new Tensor(pixels, [1, size, size, 3]),
    score_threshold: new Tensor(new Float32Array([thresholds.score]), [1]),
    iou_threshold: new Tensor(new Float32Array([thresholds.iou]), [1]),
    max_detections: new Tensor(new Int32Array([-1]), [1]),
  };
  const started = performance.now();
  const outputs = await model.compiled.run('detect', inputs);
  const inferenceMs = performance.now() - started;
  const read = {};
  for (const [name, tensor] of Object.entries(outputs)) {
    read[name] = {data: (await tensor.data()).slice(), shape: Array.from(tensor.type.layout.dimensions)};
    tensor.delete();
  }
  Object.values(inputs).forEach((tensor) => tensor.delete());
  const names = model.metadata?.class_names ?? [];
  const masks = read.box_masks ?? read.masks;
  const [, , rows, cols] = masks.shape;
  const detections = [];
  for (let i = 0; i < read.num_detections.data[0]; i++) {
    const yxyx = Array.from(read.boxes.data.subarray(4 * i, 4 * i + 4));
    const box = boxToOriginal(yxyx, size, params, height, width);
    if (box[2] <= box[0] || box[3] <= box[1]) continue;  // outside the image
    const span = read.box_masks ? boxToOriginal(yxyx, size, params, height, width, false) : null;
    const grid = masks.data.subarray(i * rows * cols, (i + 1) * rows * cols);
    const classIndex = Number(read.classes.data[i]);
    detections.push({box, score: read.scores.data[i], classIndex,
                     label: names[classIndex] ?? String(classIndex),
                     mask: maskToOriginal(grid, rows, cols, box, span, params, height, width)});
  }
  return {inferenceMs, detections};
}
