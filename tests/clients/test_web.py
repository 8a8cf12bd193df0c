"""The web example (examples/web) in a real headless Chromium, against tfseg's own predict.

The page is served as the README says (a static folder), the end-to-end float32 .tflite
and a shapes val image are picked through its file inputs, and LiteRT.js runs the file in
the browser. What the page computed (window.tfsegResult: boxes in original pixels, masks
as run lengths of their crops) must match the same file run by ai-edge-litert on the
library's letterbox, placed with tfseg.postprocess.host.to_original: the same detections,
boxes within 2 px, masks with IoU above 0.95; again after moving the score slider. Both mask
outputs are covered: prototype-grid masks (the default) and box-aligned uint8 masks.

Needs Debian's chromium and chromium-driver and examples/web/node_modules
(.ci/install-browser installs them): skipped without them, failed when CI is set.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from shared_exports import CLASS_NAMES, CONF, IOU, SIZE

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "examples" / "web"
CHROMIUM = Path("/usr/lib/chromium/chromium")  # the binary behind Debian's wrapper script

pytestmark = pytest.mark.slow  # a browser, and the export tests' files (made once per run)


def _require(present: bool, what: str) -> None:
    if present:
        return
    message = f"{what} missing (.ci/install-browser installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    _require(CHROMIUM.is_file() and shutil.which("chromedriver") is not None,
             "Debian's chromium and chromium-driver")
    _require((WEB / "node_modules" / "@litertjs" / "core" / "wasm").is_dir(),
             "examples/web/node_modules (npm ci)")
    webdriver = pytest.importorskip("selenium.webdriver")

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     # Chromium's own test camera (a moving pattern), allowed without asking
                     "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page_url():
    """examples/web served as a static folder, like the README's http.server line."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(WEB)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def png_image(tmp_path_factory) -> Path:
    """A shapes val image in PNG: decoded bit-exactly by Chromium and TensorFlow alike."""
    from tfseg.data.shapes import write_shapes

    shapes = write_shapes(str(tmp_path_factory.mktemp("shapes")), num_train=4, num_val=4,
                          min_size=64, max_size=200, num_classes=len(CLASS_NAMES), seed=3)
    return next(p for p in sorted(Path(shapes["val_images"]).iterdir()) if p.suffix == ".png")


@pytest.fixture(scope="module", params=["everything", "box-masks-uint8"],
                ids=["prototype_masks", "box_masks_uint8"])
def model_file(request, tmp_path_factory) -> Path:
    """The end-to-end float32 .tflite of the export tests' detecting network: the default
    file (masks on the prototype grid), and one with uint8 box-aligned masks; the export
    tests' own files, made once per run (tests/shared_exports.py)."""
    from shared_exports import detecting_network, shared_export

    return shared_export(tmp_path_factory, request.param, detecting_network())["tflite_float32"]


def _library_detections(model_file: Path, image: Path, score: float = -1):
    """tfseg's own predict on the file: TF decode + letterbox, ai-edge-litert, to_original."""
    import tensorflow as tf

    from tfseg.ops.letterbox import letterbox_image
    from tfseg.postprocess.host import to_original
    from tfseg.predict.backends import TFLiteBackend

    rgb = tf.io.decode_image(image.read_bytes(), channels=3, expand_animations=False)
    boxed, info = letterbox_image(rgb, SIZE)
    pixels = tf.cast(tf.clip_by_value(tf.round(boxed), 0, 255), tf.uint8).numpy()
    backend = TFLiteBackend(model_file, thresholds={"score_threshold": score})
    return to_original(backend.detect(pixels[None]), info.numpy()[None])[0]


def _page_mask(mask: dict, height: int, width: int) -> np.ndarray:
    """A page mask (crop origin, size, row-major run lengths from zeros) -> [H, W] bool."""
    values = np.repeat(np.arange(len(mask["runs"])) % 2, mask["runs"]).astype(bool)
    full = np.zeros((height, width), bool)
    x0, y0, w, h = mask["x0"], mask["y0"], mask["width"], mask["height"]
    full[y0:y0 + h, x0:x0 + w] = values.reshape(h, w)
    return full


def _box_iou(a, b) -> float:
    inter = (max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
             * max(0.0, min(a[3], b[3]) - max(a[1], b[1])))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _wait_for_result(driver) -> dict:
    from selenium.webdriver.support.ui import WebDriverWait

    outcome = WebDriverWait(driver, 180).until(lambda d: d.execute_script(
        "return window.tfsegError ? {error: window.tfsegError}"
        " : (window.tfsegResult ? {result: window.tfsegResult} : null)"))
    if "error" in outcome:
        logs = "\n".join(entry["message"] for entry in driver.get_log("browser"))
        pytest.fail(f"the page failed: {outcome['error']}\n{logs}")
    return outcome["result"]


def _compare(page: dict, library, label: str) -> None:
    """Same detections (matched by class and box), boxes within 2 px, mask IoU > 0.95."""
    assert (page["height"], page["width"]) == (library.height, library.width)
    assert len(page["detections"]) == len(library), (
        f"{label}: the page found {len(page['detections'])}, tfseg {len(library)}")
    unmatched = list(page["detections"])
    worst_box, worst_iou = 0.0, 1.0
    for i in range(len(library)):
        want = library.boxes[i]
        same_class = [d for d in unmatched if d["classIndex"] == int(library.classes[i])]
        assert same_class, f"{label}: no page detection of class {library.classes[i]}"
        got = max(same_class, key=lambda d: _box_iou(d["box"], want))
        unmatched.remove(got)
        assert got["label"] == CLASS_NAMES[got["classIndex"]]
        assert abs(got["score"] - float(library.scores[i])) < 1e-3
        worst_box = max(worst_box, float(np.abs(np.array(got["box"]) - want).max()))
        mask, wanted = _page_mask(got["mask"], page["height"], page["width"]), library.full_mask(i)
        union = np.logical_or(mask, wanted).sum()
        iou = np.logical_and(mask, wanted).sum() / union if union else 1.0
        worst_iou = min(worst_iou, float(iou))
    print(f"{label}: {len(library)} detections, page inference {page['inferenceMs']:.1f} ms, "
          f"largest box difference {worst_box:.3f} px, lowest mask IoU {worst_iou:.4f}")
    assert worst_box <= 2.0
    assert worst_iou > 0.95


def _open_with_model(driver, page_url: str, model_file: Path) -> None:
    """Load the page and pick the model through its file input."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page_url)
    driver.find_element(By.ID, "model-file").send_keys(str(model_file))
    ready = WebDriverWait(driver, 120).until(lambda d: d.execute_script(
        "return window.tfsegModelReady ? 'ready' : window.tfsegError"))
    assert ready == "ready", ready


def test_page_matches_tfseg_predict(browser, page_url, model_file, png_image, request):
    from selenium.webdriver.common.by import By

    _open_with_model(browser, page_url, model_file)
    browser.find_element(By.ID, "image-file").send_keys(str(png_image))
    page = _wait_for_result(browser)
    assert page["thresholds"] == {"score": CONF, "iou": IOU}  # from the file's metadata
    library = _library_detections(model_file, png_image)
    assert len(library) >= 2, "the fixture network should find several shapes"
    label = request.node.callspec.id
    _compare(page, library, f"{label}, export thresholds")

    # The score slider is a run-time input of the file: fewer detections above 0.5.
    browser.execute_script(
        "window.tfsegResult = null; const s = document.getElementById('score');"
        "s.value = '0.5'; s.dispatchEvent(new Event('input'));")
    page = _wait_for_result(browser)
    library = _library_detections(model_file, png_image, score=0.5)
    _compare(page, library, f"{label}, score 0.5")


def test_webcam_frames_are_segmented(browser, page_url, model_file):
    """The webcam button runs the model on live frames (Chromium's fake camera here)."""
    from selenium.webdriver.common.by import By

    _open_with_model(browser, page_url, model_file)
    browser.find_element(By.ID, "webcam").click()
    first = _wait_for_result(browser)
    browser.execute_script("window.tfsegResult = null;")
    second = _wait_for_result(browser)  # the loop goes on to the next frames
    for result in (first, second):
        assert result["width"] > 0 and result["height"] > 0
        for detection in result["detections"]:
            x1, y1, x2, y2 = detection["box"]
            assert 0 <= x1 < x2 <= result["width"] and 0 <= y1 < y2 <= result["height"]
    print(f"webcam {first['width']} x {first['height']}: {len(first['detections'])} "
          f"detections, page inference {first['inferenceMs']:.1f} ms")
