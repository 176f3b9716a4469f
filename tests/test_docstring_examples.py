"""The ``>>>`` examples in the docstrings of the generation stack run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "vidtok.backbones.block_causal",
    "vidtok.backbones.hf_causal_lm",
    "vidtok.models.text_tokenizers",
    "vidtok.models.dicode_lm",
    "vidtok.models.generation",
    "vidtok.models.nova",
    "vidtok.pipelines.image_to_video",
    "vidtok.pipelines.text_to_video",
    "vidtok.recipes.base",
    "vidtok.tokenizers._resampler",
    "vidtok.tokenizers.continuous_vae",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
