import pytest
import yaml

from tfseg.config import dump_config, load_config, resolve_key
from tfseg.config.schema import RunConfig
from tfseg.errors import ConfigError


def test_defaults_file_and_overrides_layer_in_order(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("train:\n  epochs: 7\n  optimizer: sgd\n  lr0: 0.02\nmodel:\n  name: yolo11-seg-s\n")
    cfg = load_config([f"cfg={user}", "epochs=3", "imgsz=320"])
    assert cfg.train.epochs == 3  # command line beats the user file
    assert cfg.train.lr0 == 0.02  # user file beats the default
    assert cfg.model.name == "yolo11-seg-s"
    assert cfg.model.image_size == 320
    assert cfg.train.warmup_epochs == 3.0  # the schema's default
    assert isinstance(cfg.train.lr0, float)


def test_bare_keys_resolve_in_the_verbs_section_first():
    assert resolve_key("conf", "predict") == "predict.conf"
    assert resolve_key("conf", "eval") == "eval.conf"
    assert resolve_key("epochs") == "train.epochs"
    assert resolve_key("imgsz") == "model.image_size"
    with pytest.raises(ConfigError, match="ambiguous.*eval.conf"):
        resolve_key("conf")


@pytest.mark.parametrize("override, message", [
    ("epoch=3", "unknown config key 'epoch'; did you mean epochs"),
    ("imgsz=big", "'model.image_size' must be int, got 'big'"),
    ("imgsz=330", "multiple of 32"),
    ("ema=maybe", "'train.ema' must be bool"),
    ("model=yolov9-seg-n", "not a known model"),
    ("mosaic=1.5", "probability"),
    ("weights=/no/such/file.keras", "path does not exist: /no/such/file.keras"),
    ("novalue", "expected key=value"),
    ("data=/no/such/data.yaml", "dataset config not found"),
])
def test_bad_values_raise_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config([override])


def test_unknown_key_in_a_yaml_file_names_the_file_and_close_matches(tmp_path):
    user = tmp_path / "bad.yaml"
    user.write_text("train:\n  epohcs: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'epohcs' in section 'train'; did you mean epochs"):
        load_config([f"cfg={user}"])


def test_type_conversion_of_command_line_strings():
    cfg = load_config(["ema=false", "optimizer=adamw", "lr0=1e-3", "epochs=4", "cosine=yes"])
    assert cfg.train.ema is False and cfg.train.cosine is True
    assert cfg.train.lr0 == pytest.approx(1e-3)
    assert cfg.train.epochs == 4 and isinstance(cfg.train.epochs, int)


def test_dump_round_trips_through_yaml(tmp_path):
    cfg = load_config(["epochs=5", "model=yolo11-seg-n", "fliplr=0.25"])
    saved = tmp_path / "used.yaml"
    saved.write_text(dump_config(cfg))
    assert yaml.safe_load(saved.read_text())["train"]["epochs"] == 5
    again = load_config([f"cfg={saved}"])
    assert again == cfg
    assert again != RunConfig()
