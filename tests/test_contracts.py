"""Contract tests over every registered component, plus a third-party plugin registered the documented way.

Each later issue's components are tested here automatically once registered: shapes/gradients through the
kind's probe (``contracts.PROBES``), save→load with no missing keys, config round trip, determinism.
"""

from __future__ import annotations

import contracts
import pytest
import torch
from diffusers.configuration_utils import register_to_config

import vidtok
from vidtok.modeling_utils import Component
from vidtok.registry import Registry

# ---------------------------------------------------------------------------------------------------------
# A plugin, registered exactly as third-party code would do it (own registry kind, own probe).
PLUGINS: Registry = Registry("plugin", base=Component)


@PLUGINS.register("toy_mlp")
class ToyMLP(Component):
    """A two-layer MLP used to exercise the generic contract checks (no paper)."""

    @register_to_config
    def __init__(self, *, dim: int = 8, hidden: int = 16):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, dim))

    @classmethod
    def tiny_config(cls):
        return {"dim": 4, "hidden": 8}

    def forward(self, x):
        return self.net(x)


@contracts.probe("plugin")
def _probe_plugin(model, generator):
    x = torch.randn(2, model.config["dim"], generator=generator)
    return model(x).square().mean()


# Every library registry (vidtok.REGISTRIES, one kind -> registry map) plus the test's own plugin kind.
REGISTRIES = {
    **{kind.removesuffix("s"): vidtok.REGISTRIES[kind] for kind in ("tokenizers", "heads", "backbones", "models")},
    "plugin": PLUGINS,
}


def _component_entries():
    entries = []
    for kind, registry in REGISTRIES.items():
        for name in registry.list():
            cls = registry.get(name)
            if isinstance(cls, type) and issubclass(cls, Component):
                entries.append(pytest.param(kind, cls, id=f"{kind}:{name}"))
    return entries


ENTRIES = _component_entries()


def test_every_component_kind_has_a_probe():
    kinds = {p.values[0] for p in ENTRIES}
    assert kinds <= set(contracts.PROBES), (
        f"kinds without a probe in tests/contracts.py: {kinds - set(contracts.PROBES)}"
    )


@pytest.mark.parametrize(("kind", "cls"), ENTRIES)
def test_tiny_build_and_config_roundtrip(kind, cls):
    model = contracts.build_tiny(cls)
    contracts.check_config_roundtrip(model)


@pytest.mark.parametrize(("kind", "cls"), ENTRIES)
def test_save_load_roundtrip(kind, cls, tmp_path):
    model = contracts.build_tiny(cls)
    loaded = contracts.check_save_load(model, tmp_path)
    with torch.no_grad():
        gen = torch.Generator
        model.eval()
        assert torch.equal(
            contracts.PROBES[kind](model, gen().manual_seed(1)), contracts.PROBES[kind](loaded, gen().manual_seed(1))
        )


@pytest.mark.parametrize(("kind", "cls"), ENTRIES)
def test_gradients_reach_every_parameter(kind, cls):
    contracts.check_gradients(contracts.build_tiny(cls), kind)


@pytest.mark.parametrize(("kind", "cls"), ENTRIES)
def test_determinism_with_a_seed(kind, cls):
    contracts.check_determinism(contracts.build_tiny(cls), kind)


def test_contract_checks_catch_a_dead_parameter():
    class Dead(ToyMLP):
        """MLP with a parameter the forward pass never uses."""

        @register_to_config
        def __init__(self, *, dim: int = 8, hidden: int = 16):
            super().__init__(dim=dim, hidden=hidden)
            self.unused = torch.nn.Parameter(torch.zeros(1))

    with pytest.raises(AssertionError, match="without gradient: \\['unused'\\]"):
        contracts.check_gradients(Dead(dim=4, hidden=8), "plugin")


def test_contract_checks_catch_a_lossy_save(tmp_path):
    class Lossy(ToyMLP):
        """Forgets to register a buffer as persistent: a real bug the round trip must catch."""

        @register_to_config
        def __init__(self, *, dim: int = 8, hidden: int = 16):
            super().__init__(dim=dim, hidden=hidden)
            self.register_buffer("stats", torch.zeros(dim), persistent=False)

        def forward(self, x):
            return super().forward(x) + self.stats

    model = Lossy(dim=4, hidden=8)
    model.stats.fill_(3.0)
    loaded = contracts.check_save_load(model, tmp_path)  # state_dict agrees, since the buffer is not saved...
    x = torch.randn(2, 4)
    assert not torch.equal(model(x), loaded(x))  # ...and that is why the contract also compares probe outputs
