"""Captioned images as 1-frame videos, for image-text pre-training and image/video mixing.

DiCoDe pre-trains its AR model on image-text pairs and then trains on a 1:1 mix of images and videos
(DiCoDe §4.1 and supplementary §6); an image is a video with ``T == 1`` (ARCHITECTURE §4), so image samples have
the same format as [`VideoDataset`][vidtok.data.video.VideoDataset]'s: ``{"video": (3, 1, H, W) float32 in
[-1, 1], "caption": str, ...}``. Sources, filters, determinism and skipping of unreadable files work as for videos
(see [`vidtok.data.video`][vidtok.data.video]).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from vidtok.data.transforms import center_crop
from vidtok.data.video import FileDataset, MissingCaption
from vidtok.io import IMAGE_EXTENSIONS, frames_to_tensor, read_video, read_video_info

__all__ = ["ImageTextDataset"]


class ImageTextDataset(FileDataset):
    """Captioned images from a CSV/JSONL list or a folder with sidecar ``.txt`` captions, as 1-frame videos.

    Images are resized to cover ``size`` (keeping the aspect ratio) and center-cropped, as DiCoDe's videos
    (supplementary §6). Images with a shorter side below ``min_resolution`` or an aspect ratio (shorter side /
    longer side) below ``min_aspect_ratio`` are dropped when the dataset is built, from the image headers.

    Args:
        source: CSV/JSONL/JSON list file, folder with sidecar ``.txt`` captions, or an iterable of dicts.
        size: Output ``(height, width)`` or an int for square images; ``None`` keeps the source size.
        min_resolution: Drop images whose shorter side is below this.
        min_aspect_ratio: Drop images whose shorter side / longer side is below this.
        root: Folder that relative paths in a list file are resolved against.
        path_column: Column of the list file holding paths.
        caption_column: Column of the list file holding captions.
        missing_caption: ``"error"``, ``"empty"`` or ``"drop"`` for images without a caption.
        extensions: File extensions collected from folders (default: ``vidtok.io.IMAGE_EXTENSIONS``).
        seed: Base seed (images draw nothing random today; kept for a uniform interface).
        max_retries: How many following samples to try when files are unreadable before raising.

    Samples are dicts with ``"video"`` (``(3, 1, H, W)`` float32 in ``[-1, 1]``), ``"caption"``, ``"path"``,
    ``"index"``, ``"frame_stride"`` (1), ``"fps"`` (0.0) and ``"skipped"``.

    Example:
        >>> import tempfile, numpy as np
        >>> from pathlib import Path
        >>> from vidtok.io import save_video
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = save_video(np.zeros((1, 40, 60, 3), np.uint8), d / "img.png")
        >>> _ = (d / "img.txt").write_text("a black image")
        >>> item = ImageTextDataset(d, size=32)[0]
        >>> tuple(item["video"].shape), item["caption"]
        ((3, 1, 32, 32), 'a black image')
    """

    _default_extensions = IMAGE_EXTENSIONS
    _metadata_keys = ("height", "width")

    def __init__(
        self,
        source: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
        *,
        size: int | Sequence[int] | None = 256,
        min_resolution: int | None = None,
        min_aspect_ratio: float | None = None,
        root: str | os.PathLike[str] | None = None,
        path_column: str = "path",
        caption_column: str = "caption",
        missing_caption: MissingCaption = "error",
        extensions: Sequence[str] | None = None,
        seed: int = 0,
        max_retries: int = 16,
    ) -> None:
        super().__init__(
            source,
            size=size,
            min_resolution=min_resolution,
            min_aspect_ratio=min_aspect_ratio,
            root=root,
            path_column=path_column,
            caption_column=caption_column,
            missing_caption=missing_caption,
            extensions=extensions,
            seed=seed,
            max_retries=max_retries,
        )

    def _load(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        info = read_video_info(record["path"])
        plan = self._plan(info.height, info.width)
        # A single frame: a GIF or video given here contributes its first frame.
        frames = read_video(record["path"], num_frames=1, size=None if plan is None else plan.resize)
        if plan is not None:
            frames = center_crop(frames, plan.size)
        return {
            "video": frames_to_tensor(np.ascontiguousarray(frames)),
            "caption": record["caption"],
            "frame_stride": 1,
            "fps": 0.0,
        }
