"""Where a config's dataset lives on disk, and writing the built-in ``shapes`` and ``cocolike``
sets on first use."""

from __future__ import annotations

from tfseg.config.paths import DatasetPaths, dataset_paths
from tfseg.config.schema import DataConfig
from tfseg.errors import ConfigError


def ensure_dataset(data: DataConfig, quiet: bool = False, generate: bool = False) -> DatasetPaths:
    """The dataset's paths, writing ``shapes`` first when it is the dataset and is missing
    from its default folder (or anywhere, with ``generate``: ``tfseg data shapes --output``).

    Raises:
        ConfigError: a dataset other than shapes whose annotation files are missing.
    """
    paths = dataset_paths(data)
    complete = paths.train_annotations.is_file() and paths.val_annotations.is_file()
    if not complete and data.name == "shapes" and (generate or not data.root):
        from tfseg.data.shapes import write_shapes

        if not quiet:
            print(f"writing the built-in 'shapes' dataset ({data.shapes_train} train, "
                  f"{data.shapes_val} val images) to {paths.root}")
        write_shapes(str(paths.root), num_train=data.shapes_train, num_val=data.shapes_val,
                     seed=data.shapes_seed, min_size=data.shapes_min_size,
                     max_size=data.shapes_max_size, num_classes=data.shapes_num_classes,
                     objects=data.shapes_objects)
    elif not complete and data.name == "cocolike" and (generate or not data.root):
        from tfseg.data.cocolike import write_cocolike

        if not quiet:
            print(f"writing the built-in 'cocolike' dataset (300 train, 80 val images, "
                  f"480-640 px) to {paths.root}")
        write_cocolike(str(paths.root))
    for path in (paths.train_annotations, paths.val_annotations):
        if not path.is_file():
            raise ConfigError(f"dataset '{data.name}': annotation file not found: {path} "
                              f"(set data.root or data.*_annotations)")
    return paths


def ensure_records(data: DataConfig, paths: DatasetPaths, verbose: bool = True) -> dict:
    """Prepare the dataset's TFDS records unless they exist and match their sources (see
    ``tfseg.data.fingerprint``); returns prepare()'s summary.

    Both splits (train and val) are prepared together, so their class maps agree. Format
    yolo: the splits are converted to ``paths.train_annotations``/``val_annotations`` first.
    """
    from tfseg.data.prepare import prepare
    from tfseg.data.yolo import prepare_yolo

    workers = None if data.prepare_workers < 0 else data.prepare_workers
    options = dict(num_workers=workers, strict=data.strict, beam_options=data.beam_options or None,
                   overwrite=data.overwrite, verbose=verbose)
    if data.format == "yolo":
        return prepare_yolo(str(paths.data_yaml), str(paths.records), **options)
    return prepare([str(paths.train_images), str(paths.val_images)],
                   [str(paths.train_annotations), str(paths.val_annotations)],
                   str(paths.records), splits=["train", "val"], **options)
