"""Metrics. ``vidtok.metrics.shapes`` scores a video against a Shapes caption from pixels alone."""

from vidtok.metrics.shapes import ATTRIBUTES, DetectedObject, ShapesScore, analyze_video, score_video, score_videos

__all__ = ["ATTRIBUTES", "DetectedObject", "ShapesScore", "analyze_video", "score_video", "score_videos"]
