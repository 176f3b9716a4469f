"""Old home of the Shapes scorer; it now lives in [`vidtok.shapes.scorer`][vidtok.shapes.scorer].

This module re-exports the names it used to define, so ``from vidtok.metrics.shapes import score_video`` keeps
working. New code imports from ``vidtok.shapes``.
"""

from __future__ import annotations

from vidtok.shapes.scorer import ATTRIBUTES, DetectedObject, ShapesScore, analyze_video, score_video, score_videos

__all__ = ["ATTRIBUTES", "DetectedObject", "ShapesScore", "analyze_video", "score_video", "score_videos"]
