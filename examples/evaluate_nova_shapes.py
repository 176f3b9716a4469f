"""Score a NOVA Shapes pipeline on the held-out protocol, image-to-video and extrapolation (NOVA §4.2).

* **Text to video**: the held-out prompts of unseen (color, shape) pairs (the DiCoDe default's protocol), seeds
  ``--seeds``, ``--keyframes`` latent frames; and the diversity of ``"a red shape"`` over 8 seeds.
* **Image to video**: the first frame of held-out clips prefilled as latent frame 0 (``ImageToVideo``); the
  fraction of later frames that keep the object's color, and its color and shape (target: ≥ 90 %); and the
  same fractions on the VAE's reconstructions of those clips (``tokenizer_ceiling``: what the pipeline can reach
  through its VAE).
* **Extrapolation**: ``--extrapolate`` × the keyframes (default 2×), the fraction of videos whose object is
  still there, frame by frame (reported per half).
* **Reconstruction by length**: the VAE alone on held-out clips of ``--recon-frames`` frames (PSNR/SSIM, the
  Shapes scores of the reconstructions, the last frame's PSNR): a causal VAE trained on short clips loses the
  object past its training length. ``--tokenizer FOLDER`` (without ``--model``) reports only this, for a
  tokenizer folder.

Prints one JSON document (also written to ``--out``)::

    python examples/evaluate_nova_shapes.py --model runs/nova_tiny/pipeline --guidance-scale 3 --out nova.json
    python examples/evaluate_nova_shapes.py --tokenizer runs/nova_vae/best --recon-frames 9,17,33
"""

from __future__ import annotations

import argparse
import json

import torch

from vidtok.metrics.shapes_evaluation import (
    diversity,
    evaluate_reconstruction,
    evaluate_text_to_video,
    frame_consistency,
    heldout_prompts,
    image_to_video_consistency,
    presence_per_frame,
    render_clips,
    to_model_video,
)
from vidtok.metrics.video_quality import psnr
from vidtok.pipelines import ImageToVideo, TextToVideo


def reconstruction_by_length(tokenizer, lengths: list[int], clips: int) -> dict[str, dict[str, float]]:
    """Held-out reconstruction of ``clips`` clips at each length, and the last frame's PSNR."""
    size = tokenizer.sample_size or (32, 32)
    report = {}
    for frames in lengths:
        videos, captions = render_clips("heldout", clips, 1, resolution=size[0], num_frames=frames)
        video = to_model_video(videos)
        row = evaluate_reconstruction(tokenizer, video, captions)
        with torch.no_grad():
            last = tokenizer.decode(tokenizer.encode(video), num_frames=frames)[:, :, -1:].clamp(-1, 1)
        row["psnr_last_frame"] = float(psnr(last, video[:, :, -1:]))
        report[str(frames)] = {k: v for k, v in row.items() if not k.endswith("_original")}
    return report


def _reconstruct(tokenizer, clips):
    """``uint8`` reconstructions ``(n, T, H, W, 3)`` of ``uint8`` clips by the tokenizer."""
    with torch.no_grad():
        video = to_model_video(clips)
        out = tokenizer.decode(tokenizer.encode(video), num_frames=video.shape[2]).clamp(-1, 1)
    return out.add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a TextToVideo folder or vidtok:<name>")
    parser.add_argument("--tokenizer", default=None, help="only the reconstruction report, for this VAE folder")
    parser.add_argument("--recon-frames", default="9,17,33", help="clip lengths of the reconstruction report")
    parser.add_argument("--recon-clips", type=int, default=32)
    parser.add_argument("--keyframes", type=int, default=5, help="latent frames per video (5: 17 frames)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--prompts", type=int, default=None, help="first N held-out prompts (default: all)")
    parser.add_argument(
        "--guidance-scale", type=float, default=None, help="classifier-free guidance (default: the model's own, else 1)"
    )
    parser.add_argument("--set-steps", type=int, default=None, help="set-by-set steps per frame (model default)")
    parser.add_argument("--head-steps", type=int, default=None, help="the head's sampling steps (its default)")
    parser.add_argument(
        "--i2v-clips", type=int, default=32, help="held-out clips of the image-to-video report (0: no such report)"
    )
    parser.add_argument(
        "--extrapolate", type=float, default=2.0, help="length of the extrapolation videos, x keyframes (0: none)"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if (args.model is None) == (args.tokenizer is None):
        parser.error("give exactly one of --model and --tokenizer")
    if args.i2v_clips < 0 or args.extrapolate < 0:
        parser.error(f"--i2v-clips and --extrapolate must be >= 0, got {args.i2v_clips} and {args.extrapolate}")
    lengths = [int(n) for n in args.recon_frames.split(",") if n]
    if args.tokenizer:
        from vidtok.tokenizers.continuous_vae import ContinuousVAETokenizer

        tokenizer = ContinuousVAETokenizer.from_pretrained(args.tokenizer).float().eval()
        report = {
            "tokenizer": args.tokenizer,
            "reconstruction": reconstruction_by_length(tokenizer, lengths, args.recon_clips),
        }
        _write(report, args.out)
        return
    pipe = TextToVideo.from_pretrained(args.model)
    i2v = ImageToVideo(**pipe.components)
    guidance = pipe.model.default_guidance_scale if args.guidance_scale is None else args.guidance_scale
    sampling = {"guidance_scale": guidance}
    if args.set_steps:
        sampling["model_kwargs"] = {"set_steps": args.set_steps}
    if args.head_steps:
        sampling["head_kwargs"] = {"num_inference_steps": args.head_steps}
    seeds = [int(s) for s in args.seeds.split(",")]
    prompts = heldout_prompts(args.prompts)
    report = {"model": args.model, "keyframes": args.keyframes, "sampling": sampling}
    report["text_to_video"] = evaluate_text_to_video(pipe, prompts, seeds=seeds, keyframes=args.keyframes, **sampling)
    report["diversity"] = diversity(pipe, keyframes=args.keyframes, **sampling)
    frames = pipe.video_tokenizer.num_frames_for(args.keyframes)
    size = pipe.video_tokenizer.sample_size or (32, 32)
    if args.i2v_clips:
        clips, captions = render_clips("heldout", args.i2v_clips, 1, resolution=size[0], num_frames=frames)
        single = [i for i, c in enumerate(captions) if " and " not in c]  # one object: the one the image shows
        if not single:
            parser.error(f"the first {args.i2v_clips} held-out clips have no single-object clip: give more")
        kept_captions = [captions[i] for i in single]
        report["image_to_video"] = image_to_video_consistency(
            i2v, clips[single], kept_captions, keyframes=args.keyframes, **sampling
        )
        # The same measure on the VAE's reconstructions of those clips: what image-to-video can reach through it.
        report["image_to_video"]["tokenizer_ceiling"] = frame_consistency(
            _reconstruct(pipe.video_tokenizer, clips[single]), kept_captions
        )
    if args.extrapolate:
        long = max(args.keyframes + 1, round(args.keyframes * args.extrapolate))
        report["extrapolation"] = {
            "keyframes": long,
            **presence_per_frame(pipe, prompts, keyframes=long, seeds=seeds[:1], **sampling),
        }
    if lengths:
        report["reconstruction"] = reconstruction_by_length(pipe.video_tokenizer, lengths, args.recon_clips)
    _write(report, args.out)


def _write(report: dict, out: str | None) -> None:
    text = json.dumps(report, indent=1)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
