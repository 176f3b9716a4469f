"""Prompts as users write them: case and punctuation are normalized as the training captions were written, and
words the model cannot read are named in a warning instead of silently becoming the unknown token."""

from __future__ import annotations

import warnings

import pytest
import torch

from vidtok.models.text_tokenizers import UnknownWordsWarning, encode_prompts, shapes_word_tokenizer, unknown_words
from vidtok.pipelines.text_to_video import load_default


@pytest.fixture(scope="module")
def pipe():
    return load_default()


def test_case_and_punctuation_read_like_the_training_captions(pipe):
    clean, messy = "a large red circle moves right", "A Large RED Circle moves right."
    kw = {"num_keyframes": 3, "output_type": "latent", "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownWordsWarning)  # nothing unknown in the messy spelling
        a = pipe(clean, generator=torch.Generator().manual_seed(0), **kw).tokens
        b = pipe(messy, generator=torch.Generator().manual_seed(0), **kw).tokens
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("prompt", "unknown"),
    [
        ("a large purple circle moves right", ["purple"]),
        ("a dog running on a beach", ["dog", "running", "on", "beach"]),
        ("a red circle moves diagonally!", ["diagonally"]),
    ],
)
def test_unknown_words_are_named_in_a_warning(pipe, prompt, unknown):
    assert unknown_words(pipe.text_tokenizer, prompt) == unknown
    with pytest.warns(UnknownWordsWarning, match=str(unknown).replace("[", r"\[").replace("]", r"\]")):
        pipe(prompt, num_keyframes=2, output_type="latent", progress=False)


def test_known_words_never_warn():
    tok = shapes_word_tokenizer()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownWordsWarning)
        encode_prompts(tok, ["a small green triangle bounces and a white square stays still", ""], length=16)


def test_byte_level_bpe_has_no_unknown_words():
    from vidtok.models.text_tokenizers import gpt2_bpe_tokenizer

    assert unknown_words(gpt2_bpe_tokenizer(), "a dog running on a beach, in Zürich!") == []
