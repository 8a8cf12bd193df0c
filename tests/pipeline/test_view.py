"""view: the drawn picture shows the box outline and the tinted mask where the targets say."""

import cv2
import numpy as np
import tensorflow as tf

from tfseg.pipeline.view import PALETTE, draw_sample, write_grid


def test_draw_sample_marks_box_and_mask():
    image = np.zeros([32, 32, 3], np.float32)
    boxes = np.array([[8, 8, 24, 20], [0, 0, 0, 0]], np.float32)
    masks = np.zeros([2, 8, 8], np.uint8)
    masks[0, 3:4, 3:5] = 1  # input pixels rows 12..15, cols 12..19
    picture = draw_sample(image, boxes, np.array([1, -1]), masks)
    colour = PALETTE[1]
    np.testing.assert_allclose(picture[14, 14], np.round(0.5 * colour), atol=1)  # tinted mask
    np.testing.assert_allclose(picture[8, 16], colour, atol=1)  # top edge of the box
    np.testing.assert_allclose(picture[19, 23], colour, atol=1)  # bottom-right corner (inclusive)
    assert picture[26, 26].sum() == 0  # outside: untouched


def test_write_grid(tmp_path):
    images = tf.zeros([3, 32, 32, 3])
    targets = {"boxes": tf.zeros([3, 2, 4]), "classes": -tf.ones([3, 2], tf.int32),
               "masks": tf.zeros([3, 2, 8, 8], tf.uint8)}
    dataset = tf.data.Dataset.from_tensors((images, targets)).repeat(2)
    path = write_grid(dataset, str(tmp_path / "view" / "grid.png"), num_batches=2, columns=4)
    grid = cv2.imread(path)
    assert grid.shape == (64, 128, 3)  # 6 pictures in 2 rows of 4
    assert grid[:32, :96].sum() == 0 and np.all(grid[32:, 64:] == 255)  # blanks are white
