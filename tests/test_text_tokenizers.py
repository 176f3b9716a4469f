"""Prompt tokenizers: the Shapes word vocabulary, GPT-2 BPE from local files, fixed-length prompt ids."""

from __future__ import annotations

import pytest

from vidtok.models.text_tokenizers import SHAPES_WORDS, UnknownWordsWarning, encode_prompts, load_text_tokenizer
from vidtok.shapes import COLORS, MOTIONS


def test_shapes_vocabulary_covers_the_caption_grammar():
    words = set(SHAPES_WORDS)
    assert set(COLORS) <= words and {"circle", "square", "triangle", "small", "large", "and"} <= words
    for phrase in MOTIONS.values():
        assert set(phrase.split()) <= words, phrase
    tok = load_text_tokenizer("shapes_words")
    ids = encode_prompts(tok, ["A Large RED circle moves right", ""], length=8)
    assert ids.shape == (2, 8) and (ids[1] == tok.pad_token_id).all()
    assert tok.unk_token_id not in ids[0].tolist()
    with pytest.warns(UnknownWordsWarning, match="purple"):
        assert encode_prompts(tok, ["a purple circle"], length=4)[0, 1] == tok.unk_token_id


def test_save_load_round_trip(tmp_path):
    tok = load_text_tokenizer("shapes_words")
    tok.save_pretrained(tmp_path)
    again = load_text_tokenizer(str(tmp_path))
    prompts = ["a small white triangle bounces", "a large cyan square stays still"]
    assert encode_prompts(tok, prompts, length=8).tolist() == encode_prompts(again, prompts, length=8).tolist()


def test_gpt2_bpe_from_the_local_wheel_files():
    tok = load_text_tokenizer("gpt2_bpe")
    assert len(tok) == 50257 and tok.pad_token_id == tok.eos_token_id == 50256
    assert encode_prompts(tok, ["Hello world"], length=4).tolist() == [[15496, 995, 50256, 50256]]


def test_errors_name_the_problem(tmp_path):
    tok = load_text_tokenizer("shapes_words")
    with pytest.raises(ValueError, match="more than the model's text length of 2"):
        encode_prompts(tok, ["a large red circle"], length=2)
    assert encode_prompts(tok, ["a large red circle"], length=2, truncate=True).shape == (1, 2)
    with pytest.raises(TypeError, match="prompt 0 must be a string"):
        encode_prompts(tok, [3], length=4)
    with pytest.raises(FileNotFoundError, match="no tokenizer folder"):
        load_text_tokenizer(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="non-empty string"):
        load_text_tokenizer("")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("tokenizer.json", None, r"tokenizer\.json: the tokenizer file is missing"),
        ("tokenizer.json", "{not json", r"tokenizer\.json: the tokenizer file is corrupt"),
        ("tokenizer.json", "[1, 2]", r"tokenizer\.json: the tokenizer file is corrupt"),
        ("tokenizer_config.json", "{not json", r"tokenizer_config\.json: tokenizer file is not valid JSON"),
        ("tokenizer_config.json", "[]", r"tokenizer_config\.json: tokenizer file must be a JSON object"),
    ],
)
def test_broken_tokenizer_folder_names_the_file(tmp_path, name, content, match):
    from vidtok.modeling_utils import LoadingError

    load_text_tokenizer("shapes_words").save_pretrained(tmp_path)
    if content is None:
        (tmp_path / name).unlink()
    else:
        (tmp_path / name).write_text(content)
    with pytest.raises(LoadingError, match=match):
        load_text_tokenizer(str(tmp_path))


def test_truncated_tokenizer_json_names_the_file(tmp_path):
    from vidtok.modeling_utils import LoadingError

    load_text_tokenizer("shapes_words").save_pretrained(tmp_path)
    text = (tmp_path / "tokenizer.json").read_text()
    (tmp_path / "tokenizer.json").write_text(text[: len(text) // 2])
    with pytest.raises(LoadingError, match=r"tokenizer\.json: the tokenizer file is corrupt"):
        load_text_tokenizer(str(tmp_path))
