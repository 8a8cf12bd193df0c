"""The constant-velocity Kalman filter against values worked out by hand."""

import numpy as np
import pytest

from tfseg.track import kalman

# A box centred at (100, 50), 10 wide and 20 high: x, y, a, h = 100, 50, 0.5, 20.
# With h = 20: position std = 20 / 20 = 1, velocity std = 20 / 160 = 0.125.
BOX = np.array([[95.0, 40.0, 105.0, 60.0]])


def test_box_conversions_round_trip():
    xyah = kalman.boxes_to_xyah(BOX)
    np.testing.assert_allclose(xyah, [[100, 50, 0.5, 20]])
    np.testing.assert_allclose(kalman.xyah_to_boxes(xyah), BOX)


def test_initiate_has_zero_velocity_and_the_wide_prior():
    mean, cov = kalman.initiate(kalman.boxes_to_xyah(BOX))
    np.testing.assert_allclose(mean, [[100, 50, 0.5, 20, 0, 0, 0, 0]])
    # (2 * 1)^2 for x, y, h; (2 * 0.01)^2 for a; (10 * 0.125)^2 for the velocities, (10 * 1e-5)^2 for a's
    np.testing.assert_allclose(np.diag(cov[0]), [4, 4, 4e-4, 4, 1.5625, 1.5625, 1e-8, 1.5625])
    assert np.count_nonzero(cov[0] - np.diag(np.diag(cov[0]))) == 0


def test_predict_moves_by_the_velocity_and_grows_the_covariance():
    mean, cov = kalman.initiate(kalman.boxes_to_xyah(BOX))
    mean[0, 4:6] = [3.0, -2.0]  # moving right and up
    mean, cov = kalman.predict(mean, cov)
    np.testing.assert_allclose(mean[0, :4], [103, 48, 0.5, 20])
    # P_xx = 4 + 1.5625 (velocity) + 1 (process noise); P_xv = 1.5625; P_vv = 1.5625 + 0.125^2
    assert cov[0, 0, 0] == pytest.approx(6.5625)
    assert cov[0, 0, 4] == pytest.approx(1.5625) and cov[0, 4, 0] == pytest.approx(1.5625)
    assert cov[0, 4, 4] == pytest.approx(1.578125)


def test_update_pulls_towards_the_measurement_by_the_hand_computed_gain():
    mean, cov = kalman.predict(*kalman.initiate(kalman.boxes_to_xyah(BOX)))
    measured = np.array([[102.0, 50.0, 0.5, 20.0]])  # 2 px to the right
    new_mean, new_cov = kalman.update(mean, cov, measured)
    # S_xx = 6.5625 + 1 (measurement noise); K_x = 6.5625 / 7.5625; K_vx = 1.5625 / 7.5625
    assert new_mean[0, 0] == pytest.approx(100 + 2 * 6.5625 / 7.5625)
    assert new_mean[0, 4] == pytest.approx(2 * 1.5625 / 7.5625)
    np.testing.assert_allclose(new_mean[0, [1, 2, 3, 5, 6, 7]], [50, 0.5, 20, 0, 0, 0], atol=1e-12)
    # P_xx after = P_xx - K_x^2 S = 6.5625 * 1 / 7.5625
    assert new_cov[0, 0, 0] == pytest.approx(6.5625 / 7.5625)


def test_a_steady_motion_is_learned():
    mean, cov = kalman.initiate(kalman.boxes_to_xyah(BOX))
    for step in range(1, 30):
        mean, cov = kalman.predict(mean, cov)
        mean, cov = kalman.update(mean, cov, kalman.boxes_to_xyah(BOX + [4 * step, 0, 4 * step, 0]))
    assert mean[0, 4] == pytest.approx(4.0, abs=0.05)
    predicted, _ = kalman.predict(mean, cov)
    assert predicted[0, 0] == pytest.approx(100 + 4 * 30, abs=0.2)


def test_tracks_are_filtered_independently_in_one_batch():
    boxes = np.array([[95.0, 40.0, 105.0, 60.0], [0.0, 0.0, 40.0, 80.0]])
    mean, cov = kalman.predict(*kalman.initiate(kalman.boxes_to_xyah(boxes)))
    batch, _ = kalman.update(mean, cov, kalman.boxes_to_xyah(boxes + 3))
    one, _ = kalman.update(mean[1:], cov[1:], kalman.boxes_to_xyah(boxes[1:] + 3))
    np.testing.assert_allclose(batch[1], one[0])
