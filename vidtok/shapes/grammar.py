"""The Shapes grammar: colors, shapes, sizes, motions, captions and the held-out pairs.

**Scene.** A black background with one or more objects. Each object has a color (see
[`COLORS`][vidtok.shapes.grammar.COLORS]), a shape (``circle``, ``square``, ``triangle``), a size (``small``,
``large``) and a motion (``moves left|right|up|down``, ``stays still``, ``bounces``). Objects in one scene
always have different colors (the scorer finds objects by color).

**Caption grammar.** One object is ``a [small|large] <color> <shape> [<motion>]``; several objects are
joined with ``" and "``, e.g. ``"a large red circle moves left and a small blue square stays still"``.
[`caption`][vidtok.shapes.grammar.caption] writes it and [`parse_caption`][vidtok.shapes.grammar.parse_caption]
reads it back (case-insensitive, extra whitespace ignored, anything else raises ``ValueError`` naming the
offending word). Both the size and the motion word may be left out:

- generated captions always name the size; a caption without a size, when rendered
  ([`render_video`][vidtok.shapes.render.render_video]), gets a random (seeded) size, and when scored, its
  size is not scored;
- image captions (``mode="image"``) have no motion phrase (``"a large red circle"``); a caption without a
  motion is rendered still and its motion is not scored.

**Vocabulary.** [`vocabulary`][vidtok.shapes.grammar.vocabulary] lists every word the grammar uses (plus
``shape`` for under-specified prompts such as ``"a red shape"``); the word-level text tokenizer of the tiny
recipes numbers its tokens in that order, so the order is part of every shipped model.

**Held-out split.** The (color, shape) pairs in
[`HELDOUT_COMBINATIONS`][vidtok.shapes.grammar.HELDOUT_COMBINATIONS] (blue triangle, yellow circle, magenta
square: 3 of the 21 pairs, 14 % of all single-object combinations) never appear in ``split="train"``;
every color, every shape, every size and every motion still does (see
[`ShapesDataset`][vidtok.shapes.dataset.ShapesDataset]).

This module is pure Python (no NumPy), so text tokenizers can import it cheaply.

Example:
    >>> from vidtok.shapes.grammar import caption, parse_caption
    >>> objs = parse_caption("a large red circle moves right and a small blue square stays still")
    >>> objs[0]
    ShapeObject(color='red', shape='circle', size='large', motion='right')
    >>> caption(objs)
    'a large red circle moves right and a small blue square stays still'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "COLORS",
    "HELDOUT_COMBINATIONS",
    "LINEAR_MOTIONS",
    "MOTIONS",
    "SHAPES",
    "SHAPES_WORDS",
    "SIZES",
    "ShapeObject",
    "caption",
    "is_heldout",
    "parse_caption",
    "vocabulary",
]

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 30),
    "blue": (40, 80, 255),
    "yellow": (240, 220, 30),
    "magenta": (220, 40, 220),
    "cyan": (30, 210, 220),
    "white": (240, 240, 240),
}
"""Object colors by name (RGB, 0-255). The background is black."""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
"""Object shapes."""

SIZES: tuple[str, ...] = ("small", "large")
"""Object sizes."""

MOTIONS: dict[str, str] = {
    "left": "moves left",
    "right": "moves right",
    "up": "moves up",
    "down": "moves down",
    "still": "stays still",
    "bounces": "bounces",
}
"""Motion keys (used in [`ShapeObject`][vidtok.shapes.grammar.ShapeObject]) and their caption phrases."""

LINEAR_MOTIONS: tuple[str, ...] = ("left", "right", "up", "down")
"""The motions that move in a straight line at constant speed."""

HELDOUT_COMBINATIONS: tuple[tuple[str, str], ...] = (
    ("blue", "triangle"),
    ("yellow", "circle"),
    ("magenta", "square"),
)
"""(color, shape) pairs that never appear in the ``train`` split (any size, any motion)."""

_PHRASE_TO_MOTION = {phrase: key for key, phrase in MOTIONS.items()}

# Function words of the grammar, and the placeholder shape of under-specified prompts ("a red shape").
_ARTICLE = "a"
_JOIN = "and"
_ANY_SHAPE = "shape"


def vocabulary() -> tuple[str, ...]:
    """Every word of the Shapes grammar, in the fixed order of the word-level text tokenizer.

    The order is: the article and the conjunction, the sizes, the colors, the shapes, the placeholder
    ``shape``, then the words of the motion phrases in first-use order. Token ids of the shipped models'
    ``"shapes_words"`` tokenizer follow it (after ``[PAD]``, ``[UNK]``, ``[SEP]``), so appending a new
    word is safe and reordering is not.

    Returns:
        The words, without repeats.

    Example:
        >>> vocabulary()[:6]
        ('a', 'and', 'small', 'large', 'red', 'green')
    """
    words = [_ARTICLE, _JOIN, *SIZES, *COLORS, *SHAPES, _ANY_SHAPE]
    for phrase in MOTIONS.values():
        words += [w for w in phrase.split() if w not in words]
    return tuple(words)


SHAPES_WORDS: tuple[str, ...] = vocabulary()
"""The Shapes vocabulary, ``vocabulary()`` (the ``"shapes_words"`` text tokenizer's words after its special tokens)."""


# ----------------------------------------------------------------------------------------------------------
# objects and captions


@dataclass(frozen=True)
class ShapeObject:
    """One object of a Shapes scene: color, shape, and optionally size and motion.

    Args:
        color: A key of [`COLORS`][vidtok.shapes.grammar.COLORS].
        shape: One of [`SHAPES`][vidtok.shapes.grammar.SHAPES].
        size: One of [`SIZES`][vidtok.shapes.grammar.SIZES], or ``None`` (unspecified: random when
            rendered, not scored).
        motion: A key of [`MOTIONS`][vidtok.shapes.grammar.MOTIONS] (``"left"``, ..., ``"still"``,
            ``"bounces"``); the caption phrase (``"moves left"``) is accepted and normalized to its key.
            ``None`` means unspecified (rendered still, not scored), as in image captions.

    Raises:
        ValueError: If an attribute is not one of the allowed values.

    Example:
        >>> ShapeObject("red", "circle", "large", "moves left").phrase
        'a large red circle moves left'
    """

    color: str
    shape: str
    size: str | None = None
    motion: str | None = None

    def __post_init__(self) -> None:
        if self.color not in COLORS:
            raise ValueError(f"unknown color {self.color!r}; expected one of {list(COLORS)}")
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; expected one of {list(SHAPES)}")
        if self.size is not None and self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; expected one of {list(SIZES)} or None")
        if self.motion is not None and self.motion not in MOTIONS:
            if self.motion not in _PHRASE_TO_MOTION:
                raise ValueError(f"unknown motion {self.motion!r}; expected one of {list(MOTIONS)} or None")
            object.__setattr__(self, "motion", _PHRASE_TO_MOTION[self.motion])

    @property
    def phrase(self) -> str:
        """This object's caption phrase, e.g. ``"a large red circle moves left"``."""
        words = [_ARTICLE]
        if self.size is not None:
            words.append(self.size)
        words += [self.color, self.shape]
        if self.motion is not None:
            words.append(MOTIONS[self.motion])
        return " ".join(words)


def caption(objects: ShapeObject | Iterable[ShapeObject]) -> str:
    """Write the caption of a scene.

    Args:
        objects: One object or several; their phrases are joined with ``" and "``.

    Returns:
        The caption, e.g. ``"a large red circle moves left and a small blue square stays still"``.

    Raises:
        ValueError: If ``objects`` is empty.

    Example:
        >>> caption([ShapeObject("red", "circle", "large"), ShapeObject("blue", "square", None, "up")])
        'a large red circle and a blue square moves up'
    """
    if isinstance(objects, ShapeObject):
        objects = [objects]
    phrases = [obj.phrase for obj in objects]
    if not phrases:
        raise ValueError("a caption needs at least one object")
    return f" {_JOIN} ".join(phrases)


def _expected(word: str | None, position: int, text: str, what: str) -> ValueError:
    found = "end of caption" if word is None else f"word {word!r} (word {position + 1})"
    return ValueError(f"bad caption {text!r}: unexpected {found}; expected {what}")


def parse_caption(text: str) -> list[ShapeObject]:
    """Parse a caption written in the Shapes grammar.

    The grammar is ``a [small|large] <color> <shape> [moves left|right|up|down | stays still | bounces]``,
    objects joined with ``and``. Matching ignores case and repeated whitespace; nothing else is
    tolerated.

    Args:
        text: The caption.

    Returns:
        The objects in caption order; ``size``/``motion`` are ``None`` where the caption leaves them out.

    Raises:
        ValueError: If the caption does not follow the grammar; the message names the first bad word.

    Example:
        >>> parse_caption("a red circle moves up")
        [ShapeObject(color='red', shape='circle', size=None, motion='up')]
    """
    if not isinstance(text, str):
        raise TypeError(f"caption must be a str, got {type(text).__name__}")
    words = text.lower().split()
    n = len(words)
    i = 0
    objects: list[ShapeObject] = []

    def word(k: int) -> str | None:
        return words[k] if k < n else None

    while True:
        if word(i) != _ARTICLE:
            raise _expected(word(i), i, text, f"{_ARTICLE!r}")
        i += 1
        size = None
        if word(i) in SIZES:
            size = words[i]
            i += 1
        if word(i) not in COLORS:
            raise _expected(word(i), i, text, f"a size or a color ({', '.join([*SIZES, *COLORS])})")
        color = words[i]
        i += 1
        if word(i) not in SHAPES:
            raise _expected(word(i), i, text, f"a shape ({', '.join(SHAPES)})")
        shape = words[i]
        i += 1
        motion = None
        if word(i) == "moves":
            if word(i + 1) not in LINEAR_MOTIONS:
                raise _expected(word(i + 1), i + 1, text, f"a direction after 'moves' ({', '.join(LINEAR_MOTIONS)})")
            motion = words[i + 1]
            i += 2
        elif word(i) == "stays":
            if word(i + 1) != "still":
                raise _expected(word(i + 1), i + 1, text, "'still' after 'stays'")
            motion = "still"
            i += 2
        elif word(i) == "bounces":
            motion = "bounces"
            i += 1
        objects.append(ShapeObject(color, shape, size, motion))
        if word(i) is None:
            return objects
        if word(i) != _JOIN:
            raise _expected(word(i), i, text, "a motion ('moves ...', 'stays still', 'bounces'), 'and' or the end")
        i += 1


def is_heldout(obj: ShapeObject | tuple[str, str]) -> bool:
    """Whether an object belongs to the held-out combinations.

    Args:
        obj: A [`ShapeObject`][vidtok.shapes.grammar.ShapeObject] or a ``(color, shape)`` pair.

    Returns:
        ``True`` if its (color, shape) pair is in
        [`HELDOUT_COMBINATIONS`][vidtok.shapes.grammar.HELDOUT_COMBINATIONS].

    Example:
        >>> is_heldout(ShapeObject("blue", "triangle", "small", "left")), is_heldout(("blue", "circle"))
        (True, False)
    """
    pair = (obj.color, obj.shape) if isinstance(obj, ShapeObject) else tuple(obj)
    return pair in HELDOUT_COMBINATIONS
