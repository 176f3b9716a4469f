"""DeepTokenizer with the released DiCoDe decoder (``denoiser_type="dicode_unet"``) and saved sampler settings."""

from __future__ import annotations

import pytest
import torch

from vidtok.pipelines.pipeline_utils import sampler_settings
from vidtok.tokenizers import DeepTokenizer
from vidtok.tokenizers._dicode_unet import DiCoDeUNet


def _config(**extra):
    unet = {k: v for k, v in DiCoDeUNet.tiny_config().items() if k not in ("context_dim",)}
    return {**DeepTokenizer.tiny_config(), "denoiser_type": "dicode_unet", "denoiser_kwargs": unet, **extra}


@pytest.fixture(scope="module")
def tok():
    torch.manual_seed(0)
    return DeepTokenizer(**_config())


def test_training_step_reaches_the_unet_and_the_encoder():
    tok = DeepTokenizer(**_config()).train()
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    loss = tok.training_step(video, generator=torch.Generator().manual_seed(0))
    loss["loss"].backward()
    assert torch.isfinite(loss["loss"])
    grads = {n for n, p in tok.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("denoiser.out.") for n in grads)  # the zero-initialized output layer learns first
    # Once the zero-initialized output layers have moved (as after a few steps), the loss reaches the tokens.
    with torch.no_grad():
        for p in tok.denoiser.parameters():
            if not p.any():
                p.normal_(std=0.02)
    tok.zero_grad(set_to_none=True)
    tok.training_step(video, generator=torch.Generator().manual_seed(0))["loss"].backward()
    grads = {n for n, p in tok.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("resampler.") for n in grads) and any(n.startswith("frame_encoder.") for n in grads)
    assert any("to_k_ip" in n for n in grads) and any("temporal_conv" in n for n in grads)


def test_save_load_round_trip_is_exact(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    again = DeepTokenizer.from_pretrained(tmp_path)
    a, b = tok.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "denoiser.text_context" in a and again.config.denoiser_type == "dicode_unet"
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    tokens = tok.encode(video).tokens
    out = tok.decode(tokens, num_inference_steps=2, generator=g(), progress=False)
    assert out.shape == (1, 3, 5, 16, 16)
    assert torch.equal(out, again.decode(tokens, num_inference_steps=2, generator=g(), progress=False))


def test_decode_defaults_and_the_release_sampler_spacing():
    tok = DeepTokenizer(
        **_config(
            scheduler_kwargs={"timestep_spacing": "leading", "steps_offset": 1, "set_alpha_to_one": False},
            decode_defaults={"num_inference_steps": 3, "guidance_scale": 2.0, "guidance_rescale": 0.5, "eta": 1.0},
        )
    ).eval()
    sched = tok._make_scheduler("ddim")
    sched.set_timesteps(50)
    assert sched.timesteps[:2].tolist() == [981, 961] and sched.timesteps[-1].item() == 1  # DiCoDe's "uniform"
    assert sched.final_alpha_cumprod == sched.alphas_cumprod[0]  # last step to alphas_cumprod[0], as released
    seen = []
    tok.denoiser.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    tokens = torch.randn(1, 2, 4, 16)
    tok.decode(tokens, generator=torch.Generator().manual_seed(0), progress=False)
    assert seen == [2, 2, 2]  # 3 saved steps, each with the unconditional branch (guidance 2)
    seen.clear()
    tok.decode(tokens, num_inference_steps=1, guidance_scale=1.0, generator=torch.Generator().manual_seed(0))
    assert seen == [1]  # the caller's settings win
    assert sampler_settings(tok, {"eta": 0.0, "num_inference_steps": 10}, eta=None, num_inference_steps=None) == {
        "eta": 1.0,
        "num_inference_steps": 3,
    }


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="denoiser_type"):
        DeepTokenizer(**_config(denoiser_type="unet3d"))
    with pytest.raises(ValueError, match="scheduler_kwargs.*beta_start"):
        DeepTokenizer(**_config(scheduler_kwargs={"beta_start": 0.1}))
    with pytest.raises(ValueError, match="decode_defaults.*steps"):
        DeepTokenizer(**_config(decode_defaults={"steps": 3}))


def test_official_config_builds_the_released_decoder_on_meta():
    with torch.device("meta"):
        tok = DeepTokenizer(**DeepTokenizer.official_config())
    assert isinstance(tok.denoiser, DiCoDeUNet)
    assert sum(p.numel() for p in tok.denoiser.parameters()) == 1_438_843_476
    assert tok.decode_defaults == {
        "num_inference_steps": 50,
        "guidance_scale": 7.5,
        "guidance_rescale": 0.7,
        "eta": 1.0,
    }
    assert tok.denoiser.fs == 6 and tuple(tok.denoiser.text_context.shape) == (77, 1024)
