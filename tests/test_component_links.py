"""Linked pipeline components (``component_link.json``) and ``package:`` locations.

A saved pipeline may store a component once elsewhere — another shipped model, an installed package, a hub id —
instead of a copy; the link records the weights' digests, so it never loads other weights than were saved.
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch

import vidtok
from vidtok.assets import package_path, resolve_weights
from vidtok.modeling_utils import LoadingError
from vidtok.pipelines import TextToVideo
from vidtok.pipelines.pipeline_utils import LINK_NAME, link_component, linked_folder

KW = {"num_keyframes": 2, "guidance_scale": 2.0, "output_type": "latent", "progress": False}


def _bert(folder, seed: int) -> str:
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=64, hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(cfg).save_pretrained(folder)
    return str(folder)


@pytest.fixture()
def package(tmp_path, monkeypatch):
    """An installed package ``vidtok_fake_weights`` holding a tiny BERT in ``encoder/`` (never imported)."""
    root = tmp_path / "site"
    pkg = root / "vidtok_fake_weights"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('a package: location must not import the package')\n")
    _bert(pkg / "encoder", seed=0)
    monkeypatch.syspath_prepend(str(root))
    return pkg


@pytest.fixture()
def saved(tmp_path, package):
    """A nova pipeline reading the package's encoder states, saved with a full copy of every component."""
    kwargs = {"text_embed_dim": 24, "text_vocab_size": None}
    pipe = TextToVideo.from_recipe(
        vidtok.RECIPES.create("nova_tiny", tiny=True, text_encoder=str(package / "encoder"), model_kwargs=kwargs)
    )
    pipe.save_pretrained(tmp_path / "pipe")
    tokens = pipe("a red circle moves right", generator=torch.Generator().manual_seed(0), **KW).tokens
    return tmp_path / "pipe", pipe, tokens


def test_package_locations_resolve_without_importing_and_name_what_is_wrong(package):
    assert package_path("package:vidtok_fake_weights/encoder") == str(package / "encoder")
    assert resolve_weights("package:vidtok_fake_weights/encoder") == str(package / "encoder")
    assert "vidtok_fake_weights" not in sys.modules  # located, never imported
    with pytest.raises(FileNotFoundError, match="no installed Python package named 'vidtok_no_such_pkg'"):
        resolve_weights("package:vidtok_no_such_pkg/model")
    with pytest.raises(FileNotFoundError, match="has no 'weights'"):
        resolve_weights("package:vidtok_fake_weights/weights")
    for bad in ("package:/abs", "package:vidtok_fake_weights/../x", "package:not-a-module/x"):
        with pytest.raises(ValueError, match="expected package:<module>/<path>"):
            resolve_weights(bad)


def test_a_linked_pipeline_loads_the_same_components_and_generates_the_same(saved, package, tmp_path):
    folder, pipe, tokens = saved
    link = link_component(folder, "text_encoder", "package:vidtok_fake_weights/encoder")
    assert sorted(p.name for p in (folder / "text_encoder").iterdir()) == [LINK_NAME]
    assert link["location"] == "package:vidtok_fake_weights/encoder" and "model.safetensors" in link["files"]
    pipe.video_tokenizer.save_pretrained(tmp_path / "vae")
    link_component(folder, "video_tokenizer", str(tmp_path / "vae"))
    again = TextToVideo.from_pretrained(folder)
    for name in ("text_encoder", "video_tokenizer", "model", "backbone", "head"):
        mine, theirs = getattr(pipe, name).state_dict(), getattr(again, name).state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine), name
    out = again("a red circle moves right", generator=torch.Generator().manual_seed(0), **KW).tokens
    assert torch.equal(out, tokens)
    # Saving a loaded linked pipeline writes full copies again (a link is made on purpose only).
    again.save_pretrained(tmp_path / "copy")
    assert (tmp_path / "copy" / "text_encoder" / "model.safetensors").is_file()


def test_a_link_is_refused_unless_the_weights_and_config_are_the_same(saved, tmp_path):
    folder, _, _ = saved
    before = sorted(p.name for p in (folder / "text_encoder").iterdir())
    other = _bert(tmp_path / "other", seed=1)
    with pytest.raises(ValueError, match="tensors differ"):
        link_component(folder, "text_encoder", other)
    cfg = json.loads((tmp_path / "other" / "config.json").read_text())
    shutil.copy(folder / "text_encoder" / "model.safetensors", tmp_path / "other" / "model.safetensors")
    (tmp_path / "other" / "config.json").write_text(json.dumps({**cfg, "layer_norm_eps": 1e-3}))
    with pytest.raises(ValueError, match=r"configuration differs in \['layer_norm_eps'\]"):
        link_component(folder, "text_encoder", other)
    assert sorted(p.name for p in (folder / "text_encoder").iterdir()) == before  # nothing was replaced
    with pytest.raises(FileNotFoundError, match="no saved component 'scheduler'"):
        link_component(folder, "scheduler", other)


def test_a_link_to_changed_or_missing_weights_is_a_named_loading_error(saved, package):
    folder, _, _ = saved
    link_component(folder, "text_encoder", "package:vidtok_fake_weights/encoder", hint="pip install fake-weights")
    _bert(package / "encoder", seed=2)  # the package's weights are replaced after the link was made
    with pytest.raises(LoadingError, match=r"component_link\.json.*not the ones it was made with"):
        TextToVideo.from_pretrained(folder)
    assert TextToVideo.from_pretrained(folder, verify=False).text_encoder is not None  # checks off: loads
    path = folder / "text_encoder" / LINK_NAME
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "location": "package:vidtok_no_such_pkg/model"}))
    with pytest.raises(
        LoadingError, match=r"'package:vidtok_no_such_pkg/model' is not available.*\(pip install fake-weights\)"
    ):
        TextToVideo.from_pretrained(folder)
    path.write_text(json.dumps({**data, "location": 3}))
    with pytest.raises(LoadingError, match="'location' must be a non-empty string"):
        linked_folder(folder / "text_encoder")
    path.write_text(json.dumps({"location": data["location"]}))
    with pytest.raises(LoadingError, match="no 'files' object"):
        linked_folder(folder / "text_encoder")
