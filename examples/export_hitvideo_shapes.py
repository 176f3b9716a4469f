"""Assemble the shipped HiTVideo Shapes pipeline (``vidtok:hitvideo_shapes``) from a training run.

The language model is trained by ``vidtok train examples/configs/hitvideo_tiny.yaml`` (its best export is the
``pipeline`` folder of the run) on the codes of a tokenizer trained by ``examples/train_hitvideo_tokenizer_shapes.py``.
A tokenizer whose decoder was fine-tuned afterwards with ``--decoder-only`` makes the same codes, so it can
replace the pipeline's tokenizer without retraining the language model; this script checks that it does
(every weight outside ``decode_only_modules`` equal, the same codes on held-out clips) before it swaps it in.

The folder is written in fp32 beside ``--out`` and renamed into place only when complete, with the local paths
that ``from_pretrained`` records (``_name_or_path``) removed from every config::

    python examples/export_hitvideo_shapes.py --pipeline runs/hitvideo_tiny/pipeline \\
        --base-tokenizer runs/hitvideo_tok/best --tokenizer runs/hitvideo_dec/best \\
        --out vidtok/assets/hitvideo_shapes
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from vidtok.assets import publish_folder
from vidtok.metrics.shapes_evaluation import render_clips, to_model_video
from vidtok.pipelines.text_to_video import TextToVideo
from vidtok.tokenizers.hierarchical_lfq import HierarchicalLFQTokenizer


def _token_weights(tokenizer: HierarchicalLFQTokenizer) -> dict[str, torch.Tensor]:
    return {k: v for k, v in tokenizer.state_dict().items() if not k.startswith(tokenizer.decode_only_modules)}


def check_same_codes(
    base: HierarchicalLFQTokenizer, new: HierarchicalLFQTokenizer, shipped: HierarchicalLFQTokenizer, videos: int
) -> None:
    """Raise ``SystemExit`` unless ``new`` makes ``base``'s codes and ``shipped`` is ``base`` as exported.

    ``base`` made the language model's training codes; ``shipped`` is the pipeline's copy of it, whose weights
    the training export may have stored in fp16 (``export_fp16_tokenizer``).
    """
    base_w, new_w, shipped_w = _token_weights(base), _token_weights(new), _token_weights(shipped)
    differ = [k for k, v in base_w.items() if k not in new_w or not torch.equal(v, new_w[k])]
    if differ or set(new_w) != set(base_w):
        raise SystemExit(f"--tokenizer changes weights that make the tokens: {(differ or sorted(new_w))[:5]}")
    stale = [
        k
        for k, v in base_w.items()
        if k not in shipped_w or not (torch.equal(v, shipped_w[k]) or torch.equal(v.half().float(), shipped_w[k]))
    ]
    if stale:
        raise SystemExit(f"the pipeline was not trained on --base-tokenizer: {stale[:5]} differ")
    keys = (set(base.config) | set(new.config)) - set(base.decode_only_config)
    changed = sorted(k for k in keys if not k.startswith("_") and base.config.get(k) != new.config.get(k))
    if changed:
        raise SystemExit(f"--tokenizer changes token-making config keys: {changed}")
    clips, _ = render_clips("heldout", videos, 1, None, resolution=32, num_frames=17, fps=8.0)
    video = to_model_video(clips)
    with torch.no_grad():
        a, b = base.eval().encode(video).indices, new.eval().encode(video).indices
    if not all(torch.equal(x, y) for x, y in zip(a, b, strict=True)):
        raise SystemExit("--tokenizer makes other codes than --base-tokenizer on held-out clips")
    print(f"--tokenizer makes --base-tokenizer's codes ({videos} held-out 17-frame clips)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", required=True, help="TextToVideo folder exported by the AR training run")
    parser.add_argument("--tokenizer", default=None, help="a decoder-only fine-tune of --base-tokenizer")
    parser.add_argument("--base-tokenizer", default=None, help="the tokenizer folder the language model trained on")
    parser.add_argument("--out", required=True, help="the folder to write (replaced when complete)")
    parser.add_argument("--check-videos", type=int, default=32, help="held-out clips whose codes must match")
    args = parser.parse_args()

    pipe = TextToVideo.from_pretrained(args.pipeline)
    if args.tokenizer:
        if not args.base_tokenizer:
            raise SystemExit("--tokenizer needs --base-tokenizer (the tokenizer of the language model's codes)")
        base = HierarchicalLFQTokenizer.from_pretrained(args.base_tokenizer).float()
        new = HierarchicalLFQTokenizer.from_pretrained(args.tokenizer).float()
        check_same_codes(base, new, pipe.video_tokenizer, args.check_videos)
        pipe = TextToVideo(**{**pipe.components, "video_tokenizer": new.eval()})
    out = Path(args.out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    # Saved as loaded, in fp32 — the tokenizer too, where the training export stores it in fp16: rounding the
    # encoder could change the codes the language model was trained on.
    pipe.save_pretrained(tmp)
    size = publish_folder(tmp, out)
    print(f"wrote {out} ({size / 1e6:.1f} MB)", flush=True)


if __name__ == "__main__":
    main()
