"""Multi-scale training through `train`: a size drawn per batch, one trace of the step."""

import math

from tfseg.train.fit import train


def test_multi_scale_trains_every_size_in_one_trace(shapes_root, tmp_path, make_config,
                                                     run_config, monkeypatch):
    from tfseg.model.yolo_seg import YoloSeg

    traced_shapes = []
    real_loss = YoloSeg.compute_loss

    def recording_loss(self, x=None, *args, **kwargs):
        traced_shapes.append(x.shape.as_list())
        return real_loss(self, x, *args, **kwargs)

    monkeypatch.setattr(YoloSeg, "compute_loss", recording_loss)
    cfg = run_config(make_config(shapes_root, **{
        "augment.multi_scale": 0.5, "train.epochs": 1, "train.steps_per_epoch": 6}))
    summary = train(cfg, tmp_path / "run", verbose=0)

    assert summary["stopped"] == "completed" and summary["batches"] == 6
    # One trace for every size the batches are drawn at (32, 64 or 96 px).
    assert traced_shapes == [[8, None, None, 3]]
    metrics = summary["metrics"]
    assert all(math.isfinite(metrics[k]) and metrics[k] > 0
               for k in ("box_loss", "seg_loss", "cls_loss", "dfl_loss"))
    assert metrics["val_mask_mAP50-95"] >= 0  # evaluated at the model's own 64 px
