"""Session fixtures of tests/data: one small shapes dataset on disk, prepared once."""

import pytest

from tfseg.data.shapes import write_shapes


@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory):
    """A shapes dataset: 16 train and 6 val images (crowds, holes, empty images)."""
    return write_shapes(str(tmp_path_factory.mktemp("shapes_ds")), num_train=16, num_val=6, seed=11)


@pytest.fixture(scope="session")
def prepared_shapes(shapes_dataset, tmp_path_factory):
    """(summary, records dir) of shapes_dataset prepared in process (train and val)."""
    from tfseg.data.prepare import prepare

    out = str(tmp_path_factory.mktemp("shapes_records"))
    summary = prepare([shapes_dataset["train_images"], shapes_dataset["val_images"]],
                      [shapes_dataset["train_annotations"], shapes_dataset["val_annotations"]],
                      out, num_workers=0, verbose=False)
    return summary, out
