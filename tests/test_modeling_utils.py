import json
from pathlib import Path

import pytest
import torch
from diffusers.configuration_utils import register_to_config

from vidtok.modeling_utils import Component, ConfigVersionError, LoadingError


class Affine(Component):
    """y = a * x + b on vectors (a test component)."""

    @register_to_config
    def __init__(self, *, dim: int = 4, bias: bool = True, name: str = "affine"):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(dim))
        self.shift = torch.nn.Parameter(torch.zeros(dim)) if bias else None

    @classmethod
    def tiny_config(cls):
        return {"dim": 3}

    def forward(self, x):
        return x * self.scale + (self.shift if self.shift is not None else 0)


class AffineV2(Affine):
    """Version 2 renamed ``dim`` to ``width``."""

    config_version = 2

    @register_to_config
    def __init__(self, *, width: int = 4, bias: bool = True, name: str = "affine"):
        Component.__init__(self)
        self.scale = torch.nn.Parameter(torch.ones(width))
        self.shift = torch.nn.Parameter(torch.zeros(width)) if bias else None

    @classmethod
    def migrate_config(cls, config, from_version):
        if from_version == 1:
            config["width"] = config.pop("dim", 4)
            return config
        return super().migrate_config(config, from_version)


def test_positional_init_is_refused_at_class_definition():
    with pytest.raises(TypeError, match="keyword-only"):

        class Bad(Component):
            @register_to_config
            def __init__(self, dim: int = 4):
                super().__init__()


def test_keyword_only_call_and_config():
    model = Affine(dim=5, name="x")
    assert model.config["dim"] == 5 and model.config["name"] == "x"
    with pytest.raises(TypeError):
        Affine(5)  # positional calls fail loudly instead of being silently reset later


def test_non_json_config_values_are_refused():
    with pytest.raises(TypeError, match="'name' must be JSON-serializable"):
        Affine(dim=2, name=torch.nn.Linear(2, 2))


def test_save_load_roundtrip_is_exact_and_versioned(tmp_path):
    torch.manual_seed(0)
    model = Affine(dim=3)
    with torch.no_grad():
        model.scale.normal_()
        model.shift.normal_()
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["_class_name"] == "Affine"
    assert config["_config_version"] == 1
    assert "_vidtok_version" in config
    loaded, info = Affine.from_pretrained(tmp_path / "m", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    x = torch.randn(2, 3)
    assert torch.equal(loaded(x), model(x))
    # no temporary folders left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_missing_keys_raise_naming_them(tmp_path):
    Affine(dim=3, bias=False).save_pretrained(tmp_path)
    with pytest.raises(LoadingError, match=r"missing keys .*\['shift'\]"):
        Affine.from_pretrained(tmp_path, bias=True)
    model = Affine.from_pretrained(tmp_path, bias=True, allow_missing_keys=True)
    assert model.shift is not None
    # The missing parameter keeps a real fresh initialisation (not a meta-device placeholder).
    assert model.shift.device.type == "cpu" and torch.isfinite(model.shift).all()


def test_unexpected_keys_raise_naming_them(tmp_path):
    Affine(dim=3, bias=True).save_pretrained(tmp_path)
    with pytest.raises(LoadingError, match=r"unexpected keys .*\['shift'\]"):
        Affine.from_pretrained(tmp_path, bias=False)
    assert Affine.from_pretrained(tmp_path, bias=False, allow_unexpected_keys=True).shift is None


def test_shape_mismatch_is_an_error(tmp_path):
    Affine(dim=3).save_pretrained(tmp_path)
    with pytest.raises((LoadingError, ValueError, RuntimeError), match="(?i)shape|size"):
        Affine.from_pretrained(tmp_path, dim=4)


def test_missing_folder_and_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        Affine.from_pretrained(tmp_path / "does_not_exist")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        Affine.from_pretrained("./relative/missing")
    # A Hub id is not mistaken for a missing folder: offline, the hub client says it cannot fetch it.
    with pytest.raises(OSError) as err:
        Affine.from_pretrained("someorg/somemodel")
    assert "no such folder" not in str(err.value) and "HF_HUB_OFFLINE" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoadingError, match="config.json"):
        Affine.from_pretrained(tmp_path / "empty")


def test_resave_into_existing_folder_keeps_other_files_and_replaces_weights(tmp_path):
    Affine(dim=3).save_pretrained(tmp_path)
    (tmp_path / "notes.txt").write_text("keep me")
    model = Affine(dim=3)
    with torch.no_grad():
        model.scale.fill_(7.0)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert torch.all(Affine.from_pretrained(tmp_path).scale == 7.0)
    assert not [p for p in tmp_path.parent.iterdir() if ".tmp-" in p.name]


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    Affine(dim=3).save_pretrained(tmp_path / "ckpt")
    before = {p.name: p.read_bytes() for p in (tmp_path / "ckpt").iterdir()}
    from diffusers import ModelMixin

    def broken_save(self, save_directory, **kwargs):
        (__import__("pathlib").Path(save_directory) / "diffusion_pytorch_model.safetensors").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ModelMixin, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        Affine(dim=3).save_pretrained(tmp_path / "ckpt")
    after = {p.name: p.read_bytes() for p in (tmp_path / "ckpt").iterdir()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_newer_config_version_raises_and_older_is_migrated(tmp_path):
    Affine(dim=3).save_pretrained(tmp_path)  # written as version 1
    migrated = AffineV2.from_pretrained(tmp_path)
    assert migrated.config["width"] == 3
    config = json.loads((tmp_path / "config.json").read_text())
    config["_config_version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigVersionError, match="_config_version=99"):
        Affine.from_pretrained(tmp_path)
    config["_config_version"] = 0
    with pytest.raises(ConfigVersionError, match="cannot migrate"):
        Affine.from_config(config)


def test_from_config_swap_idiom():
    model = Affine(dim=6, bias=False)
    other = AffineV2.from_config({"width": 6}, bias=True)
    assert other.config["width"] == 6 and other.shift is not None
    same = Affine.from_config(model.config, name="swapped")
    assert same.config["dim"] == 6 and same.config["bias"] is False and same.config["name"] == "swapped"


def test_tiny_config_must_be_defined():
    class NoTiny(Component):
        """No tiny config."""

        @register_to_config
        def __init__(self, *, dim: int = 2):
            super().__init__()

    with pytest.raises(NotImplementedError, match="NoTiny does not define tiny_config"):
        NoTiny.tiny_config()


# ---------------------------------------------------------------------------------------------- file checks
def _flip_byte(path, offset=-8):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_save_records_weight_digests_and_load_verifies_them(tmp_path, monkeypatch):
    Affine(dim=3).save_pretrained(tmp_path)
    digests = json.loads((tmp_path / "weights.sha256.json").read_text())
    assert list(digests["files"]) == ["diffusion_pytorch_model.safetensors"]
    assert "_weights_sha256" not in json.loads((tmp_path / "config.json").read_text())  # config stays diffusers'
    _flip_byte(tmp_path / "diffusion_pytorch_model.safetensors")  # inside a tensor: safetensors cannot notice
    with pytest.raises(LoadingError, match=r"diffusion_pytorch_model\.safetensors: weight file is corrupt"):
        Affine.from_pretrained(tmp_path)
    Affine.from_pretrained(tmp_path, verify=False)  # the opt-out, for speed or a deliberate edit
    monkeypatch.setenv("VIDTOK_VERIFY_WEIGHTS", "0")
    Affine.from_pretrained(tmp_path)
    monkeypatch.delenv("VIDTOK_VERIFY_WEIGHTS")
    (tmp_path / "weights.sha256.json").unlink()  # an older save: no digests, loads unchecked
    Affine.from_pretrained(tmp_path)


def test_truncated_or_missing_weights_name_the_file(tmp_path):
    Affine(dim=3).save_pretrained(tmp_path)
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-5])
    with pytest.raises(LoadingError, match=r"diffusion_pytorch_model\.safetensors: weight file is \d+ bytes"):
        Affine.from_pretrained(tmp_path)
    # Without digests the safetensors header check still catches it, before diffusers' deep error.
    with pytest.raises(LoadingError, match=r"diffusion_pytorch_model\.safetensors: not a readable safetensors"):
        Affine.from_pretrained(tmp_path, verify=False)
    weights.unlink()
    with pytest.raises(LoadingError, match=r"diffusion_pytorch_model\.safetensors: weight file is missing"):
        Affine.from_pretrained(tmp_path)
    (tmp_path / "weights.sha256.json").unlink()
    with pytest.raises(LoadingError, match="no weights file"):
        Affine.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[1, 2]", "must be a JSON object, got a JSON array"),
        ('"dim"', "must be a JSON object, got a JSON string"),
        ("{not json", "is not valid JSON"),
        ("", "is not valid JSON"),
    ],
)
def test_broken_config_json_names_the_file_not_the_hub(tmp_path, text, match):
    Affine(dim=3).save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(LoadingError, match=match) as err:
        Affine.from_pretrained(tmp_path)
    assert str(tmp_path / "config.json") in str(err.value) and "huggingface.co" not in str(err.value)


class Doubler(Component):
    """An unrelated component (for the class-name check)."""

    @register_to_config
    def __init__(self, *, dim: int = 3):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(dim))


def test_loading_a_folder_as_another_class_names_both(tmp_path):
    Doubler().save_pretrained(tmp_path)
    with pytest.raises(LoadingError, match=r"holds a Doubler .* cannot be loaded as Affine"):
        Affine.from_pretrained(tmp_path, allow_missing_keys=True)
    # A base class's folder loads into a subclass, and the other way round (plugins extend components).
    Affine(dim=3).save_pretrained(tmp_path / "base")
    assert type(AffineV2.from_pretrained(tmp_path / "base")) is AffineV2
    config = json.loads((tmp_path / "base" / "config.json").read_text())
    (tmp_path / "base" / "config.json").write_text(json.dumps({**config, "_class_name": "AffineV2"}))
    assert type(Affine.from_pretrained(tmp_path / "base")) is Affine


def test_an_alias_of_the_class_loads():
    # The shipped folder says "VideoLM", an alias of DiCoDeLM kept for old pipelines.
    from vidtok.assets import shipped_path
    from vidtok.models.dicode_lm import DiCoDeLM

    folder = Path(shipped_path("vidtok:dicode_shapes")) / "video_lm"
    assert json.loads((folder / "config.json").read_text())["_class_name"] == "VideoLM"
    assert type(DiCoDeLM.from_pretrained(folder)) is DiCoDeLM


def test_mis_shaped_key_is_a_loading_error_naming_it(tmp_path):
    from safetensors.torch import load_file, save_file

    Affine(dim=3).save_pretrained(tmp_path)
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state["shift"] = torch.zeros(5)
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(LoadingError, match=r"shape-mismatched keys: \['shift'\] \(checkpoint torch.Size\(\[5\]\)"):
        Affine.from_pretrained(tmp_path, verify=False)
