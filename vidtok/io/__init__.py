"""Reading and writing videos: files, GIFs, images and folders of frames; frame <-> tensor conversion.

Conventions used across vidtok:

* **Model layout** -- inside models a video is a float tensor `(B, C, T, H, W)` (or unbatched
  `(C, T, H, W)`) with values in `[-1, 1]`.
* **Frames** -- the user-facing form (like diffusers' `output_type="np"`) is channels-last
  `(T, H, W, C)`: `uint8` in `[0, 255]` or float in `[0, 1]`. A batch `(1, T, H, W, C)`,
  a torch tensor, or a list of PIL images is accepted wherever frames are expected.

[`read_video`][vidtok.io.read_video] returns `uint8` frames `(T, H, W, 3)` (`output_type="np"`) or a
model-layout tensor `(C, T, H, W)` in `[-1, 1]` (`output_type="pt"`). [`save_video`][vidtok.io.save_video]
accepts any of the forms above and picks the writer from the file extension: H.264 `.mp4` for viewing
(`lossless=True` for bit-exact round trips), `.gif` for previews in docs, `.png`/`.jpg` for a single frame.
[`frames_to_tensor`][vidtok.io.frames_to_tensor] and [`tensor_to_frames`][vidtok.io.tensor_to_frames]
convert between the two conventions; [`as_model_video`][vidtok.io.as_model_video] and
[`to_output`][vidtok.io.to_output] are the pipelines' way in and out.

=========================  ===============================================================================
module                     what it holds
=========================  ===============================================================================
``vidtok.io.files``        `read_video`, `read_video_info`, `save_video` (dispatch on the extension)
``vidtok.io.video``        container files (`.mp4`, `.mkv`, `.webm`, ...) with PyAV
``vidtok.io.gif``          GIFs with Pillow
``vidtok.io.images``       single images and folders of images
``vidtok.io.frames``       frames <-> tensors: layout, value range, resize, validation
``vidtok.io.base``         extensions, `VideoInfo`, `VideoReadError`, frame selection
=========================  ===============================================================================

This package is a lower layer: it imports nothing from other vidtok packages. Importing it does not import
torch; torch is imported only by the functions that return or receive tensors.
"""

from __future__ import annotations

from vidtok.io.base import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VideoInfo, VideoReadError
from vidtok.io.files import read_video, read_video_info, save_video
from vidtok.io.frames import (
    as_model_video,
    center_resize,
    check_video,
    frames_to_tensor,
    letterbox_resize,
    resize_frames,
    tensor_to_frames,
    to_output,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "VideoReadError",
    "as_model_video",
    "center_resize",
    "check_video",
    "frames_to_tensor",
    "letterbox_resize",
    "read_video",
    "read_video_info",
    "resize_frames",
    "save_video",
    "tensor_to_frames",
    "to_output",
]
