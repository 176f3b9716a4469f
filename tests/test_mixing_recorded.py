"""Weighted mixing has one implementation (vidtok.data.mixing.MixingPlan) behind WeightedMixture and the trainer's
samplers; the sequences they draw for fixed seeds were recorded from the two separate implementations before they
were merged (tests/data/mixing_recorded.json) and must not change, or resumed runs and recorded experiments would
read different data.
"""

from __future__ import annotations

import json
from pathlib import Path

from vidtok.data.mixing import MixingPlan, WeightedMixture
from vidtok.training.sampling import ShardedBatchSampler, ShardedStream

RECORDED = Path(__file__).parent / "data" / "mixing_recorded.json"


class DS:
    def __init__(self, n, name):
        self.n, self.name = n, name

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"i": int(i)}


def record() -> dict:
    """Draw every recorded sequence with the current code."""
    out = {}
    for cfg in [
        dict(w={"a": 1, "b": 1}, lens={"a": 7, "b": 13}, bs=4, length=64, seed=0, shuffle=True),
        dict(w={"a": 3, "b": 1, "c": 0.5}, lens={"a": 5, "b": 9, "c": 3}, bs=3, length=90, seed=5, shuffle=True),
        dict(w={"a": 1, "b": 2}, lens={"a": 4, "b": 6}, bs=2, length=40, seed=1, shuffle=False),
        dict(w={"a": 0, "b": 2}, lens={"a": 4, "b": 6}, bs=2, length=20, seed=2, shuffle=True),
    ]:
        m = WeightedMixture(
            {k: DS(n, k) for k, n in cfg["lens"].items()},
            cfg["w"],
            batch_size=cfg["bs"],
            length=cfg["length"],
            seed=cfg["seed"],
            shuffle=cfg["shuffle"],
        )
        seqs = []
        for epoch in range(3):
            m.set_epoch(epoch)
            seqs.append([list(m.locate(i)) for i in range(len(m))])
        out.setdefault("mixture", []).append(seqs)
    for cfg in [
        dict(lengths=[7, 13], weights=None, bs=3, npr=2, seed=0, stream=0, shuffle=True, mix="batch"),
        dict(lengths=[5, 9, 3], weights=[3, 1, 0.5], bs=2, npr=1, seed=4, stream=2, shuffle=True, mix="sample"),
        dict(lengths=[4, 6], weights=[0, 1], bs=2, npr=1, seed=1, stream=0, shuffle=True, mix="batch"),
        dict(lengths=[10], weights=None, bs=4, npr=1, seed=3, stream=1, shuffle=False, mix="batch"),
        dict(lengths=[2**24 + 5, 11], weights=[1, 1], bs=2, npr=1, seed=7, stream=0, shuffle=True, mix="sample"),
    ]:
        seqs = []
        for rank in range(cfg["npr"]):
            s = ShardedBatchSampler(
                cfg["lengths"],
                cfg["weights"],
                batch_size=cfg["bs"],
                num_processes=cfg["npr"],
                process_index=rank,
                seed=cfg["seed"],
                stream=cfg["stream"],
                shuffle=cfg["shuffle"],
                mix=cfg["mix"],
            )
            it = iter(s)
            seqs.append([[list(k) for k in next(it)] for _ in range(25)])
        out.setdefault("sharded", []).append(seqs)

    # ShardedStream: source per slot
    class Stream:
        def __init__(self, tag, n):
            self.tag, self.n, self.epoch = tag, n, 0

        def set_epoch(self, e):
            self.epoch = e

        def __iter__(self):
            return iter([(self.tag, self.epoch, i) for i in range(self.n)])

    for cfg in [dict(w=[1, 2], bs=3, mix="batch", seed=0), dict(w=[1, 1, 1], bs=2, mix="sample", seed=9)]:
        st = ShardedStream(
            [Stream(k, 5) for k in range(len(cfg["w"]))],
            cfg["w"],
            batch_size=cfg["bs"],
            seed=cfg["seed"],
            mix=cfg["mix"],
        )
        it = iter(st)
        out.setdefault("stream", []).append([list(next(it)) for _ in range(40)])
    return out


def test_sampling_sequences_match_the_recording():
    recorded = json.loads(RECORDED.read_text())
    current = json.loads(json.dumps(record()))
    for kind in ("mixture", "sharded", "stream"):
        assert current[kind] == recorded[kind], kind


def test_the_samplers_share_one_plan():
    mixture = WeightedMixture({"a": list(range(4)), "b": list(range(6))}, batch_size=2)
    sampler = ShardedBatchSampler([4, 6], batch_size=2)
    assert isinstance(mixture._mixing, MixingPlan) and isinstance(sampler.plan.mixing, MixingPlan)
