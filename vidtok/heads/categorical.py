"""The categorical head: a softmax over discrete codes, optionally factorized over the bits of an LFQ code."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' pipeline loader looks it up in this module)
from diffusers.configuration_utils import register_to_config

from vidtok.heads._layers import (
    build_trunk,
    check_config_int,
    check_generator,
    check_guidance,
    check_guidance_scale,
    check_temperature,
    fp32_island,
    init_linear_,
)
from vidtok.heads.base import HEADS, TokenHead
from vidtok.noise import gumbel

__all__ = ["CategoricalHead"]


@HEADS.register("categorical")
class CategoricalHead(TokenHead):
    """Cross-entropy over integer codes, the discrete-token baseline of DiCoDe §3.4 (and of HiTVideo/LFQ).

    DiCoDe §3.4 contrasts continuous heads with "the discrete scenario where the target is a categorical
    distribution"; this is that head. Two modes:

    * **Flat** (``vocab_size=V``): one ``V``-way softmax; targets are codes in ``[0, V)``.
    * **Factorized** (``num_bits=B``, ``bits_per_group=g``): for lookup-free quantization codebooks of
      ``2^B`` entries (MAGVIT-v2, arXiv:2310.05737 §3.1). A code is split into ``B / g`` groups of ``g``
      bits, predicted as independent ``2^g``-way softmaxes, so a ``2^18`` codebook needs ``18`` two-way
      (``g = 1``) or ``2`` 512-way (``g = 9``) softmaxes instead of one ``262144``-way softmax. Targets are
      still code indices in ``[0, 2^B)``; group ``j`` is digit ``j`` of the code in base ``2^g``, most
      significant first (so bit ``i`` is LFQ channel ``i`` with MSB-first bit weights, the
      vector-quantize-pytorch convention). The density is the product over groups.

    With ``sequential_groups=True`` the groups are no longer independent: group ``j`` is predicted from the
    hidden state plus a learned embedding of the digits of groups ``< j`` (the chain rule inside one code, as
    Open-MAGVIT2's AR model predicts its second sub-token after the first), so sampling cannot mix the groups
    of two different likely codes. The embeddings start at zero: a head with the option switched on starts as
    exactly the independent head, so a trained independent head can be fine-tuned into it (``init_fresh``).
    Sampling then draws the groups one after another (``temperature=0``: the most likely digit of each group
    given the ones before, greedy rather than the joint argmax). With ``num_codes`` each group's conditional is
    restricted to its allowed digits and renormalized, in :meth:`nll` and :meth:`sample` alike (a distribution
    over the allowed codes, though not the joint conditioned on them, whose normalizer would need every prefix).

    ``loss`` is the cross-entropy and ``nll`` the same value (nats per token, summed over groups in the
    factorized mode), both fp32. ``sample`` supports ``temperature`` (0 → argmax) and ``top_k`` (applied
    per group in the factorized mode) and returns ``int64`` codes.

    ``token_dim`` is accepted and ignored so that the keyword arguments shared by all heads
    (``hidden_size``, ``token_dim``) can be passed to every head: a discrete token is one code.

    Args:
        hidden_size: Size of the backbone hidden state.
        vocab_size: Codebook size for the flat mode.
        num_bits: Bits per code for the factorized mode (exclusive with ``vocab_size``).
        bits_per_group: Bits predicted jointly per softmax in the factorized mode; must divide ``num_bits``.
        token_dim: Ignored (accepted for swap compatibility).
        mlp_width: Width of the MLP's hidden layers (default ``hidden_size``).
        mlp_layers: Linear layers, the output projection included (1 = a plain linear LM head).
        sequential_groups: Predict each group conditioned on the groups before it (factorized mode only).

    Example:
        >>> import torch
        >>> from vidtok.heads import CategoricalHead
        >>> head = CategoricalHead(hidden_size=16, num_bits=18, bits_per_group=6)
        >>> head.proj.out_features  # 3 groups x 64 logits instead of 262144
        192
        >>> hidden = torch.randn(2, 3, 16)
        >>> codes = head.sample(hidden, generator=torch.Generator().manual_seed(0), top_k=8)
        >>> codes.shape, codes.dtype, bool(codes.max() < 2**18)
        (torch.Size([2, 3]), torch.int64, True)
        >>> head.nll(hidden, codes).shape
        torch.Size([2, 3])
    """

    is_discrete = True

    @register_to_config
    def __init__(
        self,
        *,
        hidden_size: int,
        vocab_size: int | None = None,
        num_bits: int | None = None,
        bits_per_group: int = 1,
        token_dim: int | None = None,
        mlp_width: int | None = None,
        mlp_layers: int = 1,
        sequential_groups: bool = False,
    ):
        super().__init__()
        if (vocab_size is None) == (num_bits is None):
            raise ValueError("CategoricalHead needs exactly one of vocab_size (flat) or num_bits (factorized)")
        owner = "CategoricalHead"
        check_config_int(owner, "hidden_size", hidden_size)
        check_config_int(owner, "mlp_layers", mlp_layers)
        check_config_int(owner, "mlp_width", mlp_width, optional=True)
        # Ignored, but a non-positive or non-integer token_dim is a mistake in the caller's shared kwargs.
        check_config_int(owner, "token_dim", token_dim, optional=True)
        check_config_int(owner, "bits_per_group", bits_per_group)
        if vocab_size is not None:
            check_config_int(owner, "vocab_size", vocab_size, minimum=2)
            self.num_groups, self.group_size = 1, int(vocab_size)
        else:
            check_config_int(owner, "num_bits", num_bits)
            if not 1 <= num_bits <= 62:
                raise ValueError(f"num_bits must be in [1, 62] (int64 code indices), got {num_bits}")
            if bits_per_group < 1 or num_bits % bits_per_group:
                raise ValueError(f"bits_per_group must be >= 1 and divide num_bits={num_bits}, got {bits_per_group}")
            if bits_per_group > 20:
                raise ValueError(f"bits_per_group={bits_per_group} means a 2^{bits_per_group}-way softmax; use <= 20")
            self.num_groups, self.group_size = num_bits // bits_per_group, 2**bits_per_group
        if not isinstance(sequential_groups, bool):
            raise TypeError(f"sequential_groups must be a bool, got {type(sequential_groups).__name__}")
        if sequential_groups and vocab_size is not None:
            raise ValueError("sequential_groups needs the factorized mode (num_bits), not vocab_size")
        self.trunk, features = build_trunk(hidden_size, mlp_width or hidden_size, mlp_layers)
        self.proj = torch.nn.Linear(features, self.num_groups * self.group_size)
        init_linear_(self)
        self.group_embed = None
        if sequential_groups and self.num_groups > 1:
            # Row i * group_size + d embeds "group i drew digit d"; the last group conditions nothing.
            self.group_embed = torch.nn.Embedding((self.num_groups - 1) * self.group_size, hidden_size)
            torch.nn.init.zeros_(self.group_embed.weight)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A factorized head over 6-bit codes in 3 groups of 2 bits."""
        return {"hidden_size": 16, "num_bits": 6, "bits_per_group": 2}

    @property
    def num_codes(self) -> int:
        """Size of the code space (``vocab_size`` or ``2^num_bits``)."""
        return self.group_size**self.num_groups

    def forward(self, hidden: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(..., num_groups, group_size)`` (``num_groups = 1`` in the flat mode), in fp32.

        Args:
            hidden: ``(..., hidden_size)``.
            codes: ``(...)`` codes to condition on; required with ``sequential_groups`` (group ``j``'s logits
                given the codes' groups ``< j``), ignored otherwise.
        """
        self.check_inputs(hidden)
        if self.group_embed is None:
            return self._logits(hidden)
        if codes is None:
            raise ValueError("CategoricalHead(sequential_groups=True).forward needs codes: logits are conditional")
        self.check_inputs(hidden, codes)
        return self._logits(hidden, self._digits(codes.long()))

    def _logits(self, hidden: torch.Tensor, digits: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(..., num_groups, group_size)``; with ``sequential_groups``, teacher-forced on ``digits``.

        In the sequential mode group ``j``'s logits see the embeddings of ``digits[..., :j]``, so only the first
        ``k`` groups' logits are meaningful when only ``k`` digits are known (:meth:`sample` fills them in).
        """
        # Unchecked forward; outside autocast (see fp32_island) so fp16 logits cannot overflow.
        with fp32_island(hidden.device):
            x = hidden.to(self.proj.weight.dtype)
            if self.group_embed is None:
                logits = self.proj(self.trunk(x)).float()
                return logits.unflatten(-1, (self.num_groups, self.group_size))
            if digits is None:
                raise ValueError("CategoricalHead(sequential_groups=True) needs the codes to give logits")
            offsets = torch.arange(self.num_groups - 1, device=digits.device) * self.group_size
            emb = self.group_embed(digits[..., :-1] + offsets).to(x.dtype)  # (..., G - 1, H)
            # Group j sees the sum of the embeddings of groups < j: an exclusive prefix sum.
            prefix = torch.cat([torch.zeros_like(emb[..., :1, :]), emb.cumsum(-2)], dim=-2)
            features = self.trunk(x.unsqueeze(-2) + prefix)  # (..., G, F)
            weight = self.proj.weight.unflatten(0, (self.num_groups, self.group_size))  # (G, S, F)
            bias = self.proj.bias.unflatten(0, (self.num_groups, self.group_size))
            # Each group's features meet only its own rows of the projection.
            return (torch.einsum("...gf,gsf->...gs", features, weight) + bias).float()

    def _digits(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(...)`` → per-group indices ``(..., num_groups)``, most significant group first."""
        if self.num_groups == 1:
            return codes.unsqueeze(-1)
        bits = self.config["bits_per_group"]
        shifts = torch.arange(self.num_groups - 1, -1, -1, device=codes.device) * bits
        return (codes.unsqueeze(-1) >> shifts) & (self.group_size - 1)

    def _compose(self, digits: torch.Tensor) -> torch.Tensor:
        """Per-group indices ``(..., num_groups)`` → codes ``(...)``."""
        if self.num_groups == 1:
            return digits.squeeze(-1)
        bits = self.config["bits_per_group"]
        shifts = torch.arange(self.num_groups - 1, -1, -1, device=digits.device) * bits
        return (digits << shifts).sum(-1)

    def _support(self, num_codes: int | None, device: torch.device) -> torch.Tensor | None:
        """Allowed entries ``(num_groups, group_size)`` bool when codes are restricted to ``[0, num_codes)``.

        In the factorized mode ``num_codes`` must be ``2^b``: a code below it has its leading
        ``num_bits − b`` bits zero, so every group's allowed digits are a prefix ``[0, 2^k)`` — the restriction
        factorizes like the distribution does.
        """
        if num_codes is None or num_codes == self.num_codes:
            return None
        owner = type(self).__name__
        if isinstance(num_codes, bool) or not isinstance(num_codes, int) or not 1 <= num_codes <= self.num_codes:
            raise ValueError(f"{owner}: num_codes must be an int in [1, {self.num_codes}], got {num_codes!r}")
        if self.num_groups == 1:
            limits = [num_codes]
        else:
            bits = num_codes.bit_length() - 1
            if num_codes != 1 << bits:
                raise ValueError(
                    f"{owner}: a factorized head restricts codes to a power of two (the low bits), got {num_codes}"
                )
            g, total = self.config["bits_per_group"], self.config["num_bits"]
            # Group j (most significant first) holds bits [total - (j + 1) g, total - j g) counted from the LSB.
            limits = [1 << max(0, min(g, bits - (total - (j + 1) * g))) for j in range(self.num_groups)]
        digits = torch.arange(self.group_size, device=device)
        return digits[None] < torch.tensor(limits, device=device)[:, None]

    def nll(self, hidden: torch.Tensor, target: torch.Tensor, *, num_codes: int | None = None) -> torch.Tensor:
        """Negative log-probability of the codes, fp32 nats per token ``(...)`` (summed over groups).

        Args:
            hidden: ``(..., hidden_size)``.
            target: Codes ``(...)``.
            num_codes: Restrict the distribution to codes ``[0, num_codes)`` (renormalized; a power of two in
                the factorized mode): one head serves codebooks of several sizes, e.g. HiTVideo's levels of
                4, 8 and 12 bits under a 12-bit head (``hitvideo_lm``). ``None``: every code.

        Raises:
            ValueError: If a code is outside ``[0, num_codes)``.
        """
        self.check_inputs(hidden, target)
        target = target.long()
        limit = self.num_codes if num_codes is None else num_codes
        support = self._support(num_codes, hidden.device)
        if target.numel() and (bool(target.min() < 0) or bool(target.max() >= limit)):
            raise ValueError(
                f"{type(self).__name__}: codes must lie in [0, {limit}), got values in "
                f"[{int(target.min())}, {int(target.max())}]"
            )
        digits = self._digits(target)
        logits = self._logits(hidden, digits)
        if support is not None:
            logits = logits.masked_fill(~support, float("-inf"))
        log_probs = torch.log_softmax(logits, dim=-1)
        picked = log_probs.gather(-1, digits.unsqueeze(-1)).squeeze(-1)
        return -picked.sum(-1)

    def loss(
        self,
        hidden: torch.Tensor,
        target: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        num_codes: int | None = None,
    ) -> torch.Tensor:
        """Cross-entropy per token, fp32 ``(...)``; equal to :meth:`nll` (``num_codes`` as there)."""
        return self.nll(hidden, target, num_codes=num_codes)

    def sample(
        self,
        hidden: torch.Tensor,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        guidance_scale: float = 1.0,
        uncond_hidden: torch.Tensor | None = None,
        top_k: int | None = None,
        num_codes: int | None = None,
    ) -> torch.Tensor:
        """Sample codes ``(...)`` (``int64``).

        Args:
            hidden: ``(..., hidden_size)``.
            temperature: Divides the logits; ``0`` returns the most likely code (per group).
            generator: Source of randomness.
            guidance_scale: Classifier-free guidance ``s`` in logit space, ``l_u + s (l_c − l_u)`` (per group in
                the factorized mode), before temperature and ``top_k``; ``1`` disables it. (Guiding integer
                codes themselves would be meaningless: the mix of two code indices is not a code.)
            uncond_hidden: The null prompt's hidden states (``hidden``'s shape); needed when guiding.
            top_k: Keep only the ``top_k`` most likely entries of each softmax (per group when factorized).
            num_codes: Draw only codes in ``[0, num_codes)`` (see :meth:`nll`); ``None``: every code.
        """
        temperature = check_temperature(temperature)
        guidance_scale = check_guidance_scale(guidance_scale)
        check_generator(generator)
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, int):
                raise TypeError(f"top_k must be an int or None, got {type(top_k).__name__} {top_k!r}")
            if top_k < 1:
                raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.check_inputs(hidden)
        guided = check_guidance("CategoricalHead.sample", hidden, uncond_hidden, guidance_scale)
        if guided:
            self.check_inputs(uncond_hidden, name="uncond_hidden")
        support = self._support(num_codes, hidden.device)
        if self.group_embed is not None:
            return self._sample_sequential(
                hidden, uncond_hidden if guided else None, guidance_scale, temperature, top_k, support, generator
            )
        with torch.no_grad():
            logits = self._logits(hidden)
            if guided:
                uncond = self._logits(uncond_hidden)
                logits = uncond + guidance_scale * (logits - uncond)
            if support is not None:
                logits = logits.masked_fill(~support, float("-inf"))
            return self._compose(self._draw(logits, temperature, top_k, generator))

    def _draw(
        self, logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Digits from (guided, restricted) logits ``(..., group_size)``: argmax at 0, else tempered Gumbel-max."""
        if temperature == 0:
            return logits.argmax(-1)
        logits = logits / temperature
        if top_k is not None and top_k < self.group_size:
            kth = logits.topk(top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        noise = gumbel(tuple(logits.shape), generator, logits.device)
        return (logits + noise).argmax(-1)

    @torch.no_grad()
    def _sample_sequential(
        self,
        hidden: torch.Tensor,
        uncond_hidden: torch.Tensor | None,
        guidance_scale: float,
        temperature: float,
        top_k: int | None,
        support: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Draw the groups one by one, each given the digits already drawn (``sequential_groups``).

        Only the group being drawn is computed: its features are the hidden state plus the running sum of the
        drawn digits' embeddings (the prefix sum :meth:`_logits` forms for all groups at once in training).
        """
        rows = [hidden] if uncond_hidden is None else [hidden, uncond_hidden]
        with fp32_island(hidden.device):
            states = [r.to(self.proj.weight.dtype) for r in rows]
            weight = self.proj.weight.unflatten(0, (self.num_groups, self.group_size))
            bias = self.proj.bias.unflatten(0, (self.num_groups, self.group_size))
            digits = []
            for j in range(self.num_groups):
                logits = [torch.nn.functional.linear(self.trunk(x), weight[j], bias[j]).float() for x in states]
                if uncond_hidden is not None:
                    logits[0] = logits[1] + guidance_scale * (logits[0] - logits[1])
                if support is not None:
                    logits[0] = logits[0].masked_fill(~support[j], float("-inf"))
                digit = self._draw(logits[0], temperature, top_k, generator)
                digits.append(digit)
                if j + 1 < self.num_groups:  # both branches continue from the same drawn digit
                    step = self.group_embed(digit + j * self.group_size).to(states[0].dtype)
                    states = [x + step for x in states]
        return self._compose(torch.stack(digits, dim=-1))
