"""Metrics: the Shapes scorer (from pixels alone) and per-frame video quality (PSNR, SSIM)."""

from vidtok.metrics.video_quality import psnr, psnr_per_frame, ssim, ssim_per_frame
from vidtok.shapes.scorer import ATTRIBUTES, DetectedObject, ShapesScore, analyze_video, score_video, score_videos

__all__ = [
    "ATTRIBUTES",
    "DetectedObject",
    "ShapesScore",
    "analyze_video",
    "psnr",
    "psnr_per_frame",
    "score_video",
    "score_videos",
    "ssim",
    "ssim_per_frame",
]
