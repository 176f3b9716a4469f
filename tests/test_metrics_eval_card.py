"""Eval cards: values travel with their protocol; comparisons across protocols are refused unless asked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidtok.metrics.eval_card import (
    EvalCard,
    ProtocolMismatchError,
    SmallSampleWarning,
    check_sample_count,
    compare_cards,
    file_digest,
)

FVD = {"feature_network": "i3d", "weights_sha256": "ab12", "num_real": 2048, "num_fake": 2048, "resize": "squash"}


def test_save_load_round_trip(tmp_path):
    card = EvalCard(
        metric="fvd",
        value=np.float64(310.5),
        protocol=dict(FVD),
        model="runs/x",
        seed=0,
        details={"per_frame": np.arange(3)},
    )
    path = card.save(tmp_path / "sub" / "card.json")
    again = EvalCard.load(path)
    assert again == card and again.value == 310.5 and again.details["per_frame"] == [0, 1, 2]
    assert again.vidtok_version and again.created
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.startswith(".eval-card-")]


def test_compare_same_protocol():
    a, b = EvalCard(metric="fvd", value=300.0, protocol=FVD), EvalCard(metric="fvd", value=280.0, protocol=FVD)
    out = compare_cards(a, b)
    assert out["difference"] == -20.0 and out["protocol_differences"] == {}


def test_compare_refuses_other_protocols_and_names_every_field():
    a = EvalCard(metric="fvd", value=300.0, protocol=FVD)
    b = EvalCard(metric="fvd", value=90.0, protocol={**FVD, "num_fake": 16, "resize": "center_crop", "split": "test"})
    with pytest.raises(ProtocolMismatchError) as err:
        compare_cards(a, b)
    for field in ("num_fake", "resize", "split"):
        assert field in str(err.value)
    out = compare_cards(a, b, allow_protocol_mismatch=True)
    assert out["difference"] == -210.0 and set(out["protocol_differences"]) == {"num_fake", "resize", "split"}
    with pytest.raises(ProtocolMismatchError, match="different metrics"):
        compare_cards(a, EvalCard(metric="clipsim", value=0.3, protocol=FVD), allow_protocol_mismatch=True)


def test_small_samples_warn():
    with pytest.warns(SmallSampleWarning, match="16 samples"):
        assert not check_sample_count("fvd", 16)
    assert check_sample_count("fvd", 2048)
    assert check_sample_count("psnr", 1)  # no minimum known


def test_bad_cards_are_named(tmp_path):
    with pytest.raises(TypeError, match="protocol.weights"):
        EvalCard(metric="fvd", value=1.0, protocol={"weights": object()})
    with pytest.raises(ValueError, match="metric"):
        EvalCard(metric="", value=1.0)
    (tmp_path / "x.json").write_text(json.dumps({"value": 1}))
    with pytest.raises(ValueError, match="not an eval card"):
        EvalCard.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        EvalCard.load(tmp_path / "y.json")


def test_file_digest(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"abc")
    assert file_digest(tmp_path / "w.bin") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
