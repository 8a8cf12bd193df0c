"""Config sections -> the plain keyword arguments of the library's functions.

Deep code takes numbers, not the config tree; these are the only places that know both.
"""

from __future__ import annotations

from tfseg.config.schema import RunConfig


def augment_arguments(cfg: RunConfig) -> dict:
    """Keyword arguments of tfseg.pipeline.dataset.build_dataset for training augmentation."""
    aug = cfg.augment
    return dict(mosaic_p=aug.mosaic, degrees=aug.degrees, translate=aug.translate,
                scale=aug.scale, shear=aug.shear, fliplr=aug.fliplr, hsv_h=aug.hsv_h,
                hsv_s=aug.hsv_s, hsv_v=aug.hsv_v, min_area=aug.min_area)
