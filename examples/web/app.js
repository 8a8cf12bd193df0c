// The page: pick a model and an image (or the webcam), run, draw masks, boxes and labels.
// The last result is also left on window.tfsegResult as plain JSON (boxes in original
// pixels, each mask as row-major run lengths of its crop, zeros first).

import {loadLiteRt} from '@litertjs/core';

import {detect, loadModel} from './tfseg.js';

const COLOURS = [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
                 [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128]];

const page = {
  status: document.getElementById('status'),
  view: document.getElementById('view'),
  camera: document.getElementById('camera'),
  modelFile: document.getElementById('model-file'),
  imageFile: document.getElementById('image-file'),
  webcam: document.getElementById('webcam'),
  score: document.getElementById('score'),
  iou: document.getElementById('iou'),
};
let model = null;
let frame = null;      // {rgba, height, width, bitmap} of the image shown
let cameraOn = false;
let liteRt = null;     // the promise of LiteRT.js's wasm runtime

function say(text) {
  page.status.textContent = text;
}

function thresholds() {
  return {score: Number(page.score.value), iou: Number(page.iou.value)};
}

function showThresholds() {
  document.getElementById('score-value').textContent = page.score.value;
  document.getElementById('iou-value').textContent = page.iou.value;
}

function runLengths(mask) {
  // Row-major run lengths of a crop's bits, starting with a run of zeros.
  const runs = [];
  let current = 0, length = 0;
  for (const bit of mask.bits) {
    if (bit === current) {
      length++;
    } else {
      runs.push(length);
      current = bit;
      length = 1;
    }
  }
  runs.push(length);
  return runs;
}

function pixelsOf(source, width, height) {
  // RGBA pixels of an ImageBitmap or a video frame, as decoded (no colour conversion).
  const scratch = new OffscreenCanvas(width, height);
  const context = scratch.getContext('2d', {willReadFrequently: true});
  context.drawImage(source, 0, 0);
  return context.getImageData(0, 0, width, height).data;
}

function draw(source, result) {
  const {width, height} = frame;
  page.view.width = width;
  page.view.height = height;
  const context = page.view.getContext('2d');
  context.drawImage(source, 0, 0);
  const shown = context.getImageData(0, 0, width, height);
  for (const detection of result.detections) {  // masks: half the class colour
    const colour = COLOURS[detection.classIndex % COLOURS.length];
    const {x0, y0, width: w, height: h, bits} = detection.mask;
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        if (!bits[r * w + c]) continue;
        const at = ((y0 + r) * width + x0 + c) * 4;
        for (let k = 0; k < 3; k++) shown.data[at + k] = (shown.data[at + k] + colour[k]) / 2;
      }
    }
  }
  context.putImageData(shown, 0, 0);
  context.font = '12px sans-serif';
  context.lineWidth = 2;
  for (const detection of result.detections) {
    const [x1, y1, x2, y2] = detection.box;
    const colour = `rgb(${COLOURS[detection.classIndex % COLOURS.length].join(',')})`;
    const text = `${detection.label} ${detection.score.toFixed(2)}`;
    context.strokeStyle = colour;
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const textWidth = context.measureText(text).width + 4;
    const top = y1 >= 14 ? y1 - 14 : y1;
    context.fillStyle = colour;
    context.fillRect(x1, top, textWidth, 14);
    context.fillStyle = 'white';
    context.fillText(text, x1 + 2, top + 11);
  }
}

async function runOnFrame(source) {
  const result = await detect(model, frame.rgba, frame.height, frame.width, thresholds());
  draw(source, result);
  window.tfsegResult = {
    width: frame.width, height: frame.height, inferenceMs: result.inferenceMs,
    thresholds: thresholds(),
    detections: result.detections.map((d) => ({
      box: d.box, score: d.score, classIndex: d.classIndex, label: d.label,
      mask: {x0: d.mask.x0, y0: d.mask.y0, width: d.mask.width, height: d.mask.height,
             runs: runLengths(d.mask)}})),
  };
  say(`${result.detections.length} detections in ${result.inferenceMs.toFixed(1)} ms ` +
      `(${frame.width} x ${frame.height}, input ${model.size} x ${model.size})`);
}

async function guarded(action) {
  try {
    await action();
  } catch (error) {
    window.tfsegError = String(error?.stack ?? error);
    say(`Error: ${error?.message ?? error}`);
    throw error;
  }
}

async function useModel(bytes, name) {
  say(`Loading ${name}...`);
  await liteRt;
  model = await loadModel(bytes);
  const defaults = model.metadata?.thresholds;
  if (defaults) {  // the export's own values as the sliders' starting points
    page.score.value = defaults.score;
    page.iou.value = defaults.iou;
    showThresholds();
  }
  page.imageFile.disabled = false;
  page.webcam.disabled = !navigator.mediaDevices?.getUserMedia;
  const classes = model.metadata?.class_names?.length ?? '?';
  say(`${name}: ${model.metadata?.model_name ?? 'model'}, ${classes} classes, ` +
      `input ${model.size} x ${model.size}. Pick an image.`);
  window.tfsegModelReady = true;
}

async function useImage(file) {
  cameraOn = false;
  window.tfsegResult = null;
  const bitmap = await createImageBitmap(file, {colorSpaceConversion: 'none',
                                                premultiplyAlpha: 'none'});
  frame = {bitmap, width: bitmap.width, height: bitmap.height,
           rgba: pixelsOf(bitmap, bitmap.width, bitmap.height)};
  await runOnFrame(bitmap);
}

async function startCamera() {
  const stream = await navigator.mediaDevices.getUserMedia({video: true});
  page.camera.srcObject = stream;
  await page.camera.play();
  cameraOn = true;
  const step = async () => {
    if (!cameraOn) {
      stream.getTracks().forEach((track) => track.stop());
      return;
    }
    const {videoWidth: width, videoHeight: height} = page.camera;
    if (width && height) {  // zero until the first frame arrives
      frame = {bitmap: null, width, height, rgba: pixelsOf(page.camera, width, height)};
      await runOnFrame(page.camera);
    }
    requestAnimationFrame(() => guarded(step));
  };
  await step();
}

async function main() {
  showThresholds();
  // The wasm runtime loads while the user picks files: loadModel waits for it.
  liteRt = loadLiteRt(new URL('node_modules/@litertjs/core/wasm/', location.href).href);
  page.modelFile.addEventListener('change', () => guarded(async () => {
    const file = page.modelFile.files[0];
    await useModel(new Uint8Array(await file.arrayBuffer()), file.name);
  }));
  page.imageFile.addEventListener('change', () => guarded(() => useImage(page.imageFile.files[0])));
  page.webcam.addEventListener('click', () => guarded(startCamera));
  for (const slider of [page.score, page.iou]) {
    slider.addEventListener('input', () => guarded(async () => {
      showThresholds();
      if (frame?.bitmap && model) await runOnFrame(frame.bitmap);
    }));
  }
  const modelUrl = new URLSearchParams(location.search).get('model');
  if (modelUrl) {  // ?model=path/to/model.tflite, served beside the page
    const response = await fetch(modelUrl);
    if (!response.ok) throw new Error(`${modelUrl}: HTTP ${response.status}`);
    await useModel(new Uint8Array(await response.arrayBuffer()), modelUrl);
  } else {
    await liteRt;
    say('LiteRT.js ready. Pick an end-to-end .tflite (tfseg export).');
  }
}

guarded(main);
