"""The binary quantizer interface, its output, the code ↔ index conversions and the ``QUANTIZERS`` registry.

Quantizers swap by constructor (ARCHITECTURE §8, as in vector-quantize-pytorch): every class takes the same
keyword arguments and returns the same :class:`QuantizerOutput`, so a tokenizer builds one from a registry name
and a kwargs dict, ``QUANTIZERS.create("bsq", **kwargs)``.

**Code index order (big-endian, MSB first).** Channel ``i`` of a ``d``-bit code is bit ``i`` counted from the
most significant end: ``index = Σ_i b_i 2^{d−1−i}`` with ``b_i = 1`` where the code is positive. This is the
order of the factorized :class:`~vidtok.heads.CategoricalHead` (group ``j`` is base-``2^g`` digit ``j``, most
significant first, so with ``g = 1`` its group ``i`` is channel ``i``), of vector-quantize-pytorch, Cosmos and
BSQ-ViT. Open-MAGVIT2 uses the reverse (little-endian) order: its indices need ``flip`` of the bits.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vidtok.registry import Registry
from vidtok.tokenizers.quantizers.entropy import MAX_ENTROPY_BITS, factorized_entropy
from vidtok.validation import check_count, check_number

__all__ = [
    "LOSS_KEYS",
    "QUANTIZERS",
    "Quantizer",
    "QuantizerOutput",
    "bits_to_indices",
    "indices_to_bits",
]

#: The ``aux_losses`` entries that are (already weighted) training losses; :attr:`QuantizerOutput.loss` sums them.
LOSS_KEYS = ("commitment", "entropy")


class QuantizerOutput(NamedTuple):
    """What a quantizer returns; unpacks like vector-quantize-pytorch's ``(quantized, indices, aux)``.

    Attributes:
        quantized: The codes with straight-through gradients, the input's shape and dtype.
        indices: ``int64`` code indices (big-endian, see the module docstring), the input's shape without the
            channel dimension.
        aux_losses: Scalars. ``"commitment"`` and ``"entropy"`` are the weighted training losses (their sum is
            :attr:`loss`); ``"per_sample_entropy"`` and ``"batch_entropy"`` are the unweighted entropies (nats)
            inside ``"entropy"``, for logging — do not add them to the loss again.
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    aux_losses: dict[str, torch.Tensor]

    @property
    def loss(self) -> torch.Tensor:
        """The quantizer's total training loss: ``aux_losses["commitment"] + aux_losses["entropy"]``."""
        return self.aux_losses["commitment"] + self.aux_losses["entropy"]


def bits_to_indices(bits: torch.Tensor) -> torch.Tensor:
    """Bits ``(..., d)`` (bool or 0/1, most significant first) → ``int64`` indices ``(...)``.

    Example:
        >>> import torch
        >>> int(bits_to_indices(torch.tensor([True, False, True, True])))  # 0b1011
        11
    """
    num_bits = bits.shape[-1]
    if not 1 <= num_bits <= 62:
        raise ValueError(f"bits must have 1..62 bits in the last dimension (int64 indices), got shape {bits.shape}")
    shifts = torch.arange(num_bits - 1, -1, -1, device=bits.device)
    return (bits.long() << shifts).sum(-1)


def indices_to_bits(indices: torch.Tensor, num_bits: int) -> torch.Tensor:
    """``int64`` indices ``(...)`` → bool bits ``(..., num_bits)``, most significant first.

    Raises:
        ValueError: If ``num_bits`` is outside ``[1, 62]`` or an index is outside ``[0, 2^num_bits)``.

    Example:
        >>> import torch
        >>> indices_to_bits(torch.tensor(11), 4).int().tolist()
        [1, 0, 1, 1]
    """
    check_count("num_bits", num_bits)
    if num_bits > 62:
        raise ValueError(f"num_bits must be <= 62 (int64 indices), got {num_bits}")
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise TypeError(f"indices must be an integer tensor, got {indices.dtype}")
    indices = indices.long()
    if indices.numel() and (bool(indices.min() < 0) or bool(indices.max() >= 2**num_bits)):
        raise ValueError(
            f"indices must lie in [0, 2^{num_bits}), got values in [{int(indices.min())}, {int(indices.max())}]"
        )
    shifts = torch.arange(num_bits - 1, -1, -1, device=indices.device)
    return ((indices.unsqueeze(-1) >> shifts) & 1).bool()


class Quantizer(nn.Module):
    """Base class of the binary (lookup-free) quantizers.

    Sign quantization of a projected input to scaled hypercube corners, straight-through gradients, a
    commitment loss and the exact MAGVIT-v2 entropy penalty. A subclass fixes two things: :meth:`project` (the
    map applied before quantization: identity for LFQ, the unit sphere for BSQ) and :meth:`code_scale` (corners
    ``{−s, +s}^d``). Everything else is shared:

    * quantization: ``b_i = [u_i >= 0]`` (an exact ``0`` gives the ``+s`` corner), codes ``±s``;
    * straight-through output ``codes + (u − sg(u))``: the forward value is *exactly* the code (no rounding of
      ``u + sg(codes − u)``) and the gradient to ``u`` is the identity;
    * commitment loss ``mean ‖u − sg(codes)‖² / d`` (mean over tokens and channels);
    * entropy penalty (MAGVIT-v2 §3.1, Eq. 5) ``H_sample − γ·H_batch`` of the soft assignment
      ``q(c | u) ∝ exp(−inv_temperature · ‖u − c‖²)`` over the ``2^d`` corners. It factorizes into bits with
      log-odds ``ℓ_i = 4 · inv_temperature · s · u_i`` and is computed exactly by
      :func:`~vidtok.tokenizers.quantizers.entropy.factorized_entropy`, never materializing ``tokens × 2^d``.

    Args:
        num_bits: Code width ``d`` (``2^d`` codes), at most 24 (the exact batch entropy holds ``2^d`` numbers).
        entropy_loss_weight: Weight of the entropy penalty.
        commitment_loss_weight: Weight of the commitment loss.
        diversity_gamma: ``γ``, the weight of the batch entropy inside the penalty.
        inv_temperature: ``1/τ`` of the soft assignment (larger is sharper).
        channel_dim: Dimension of the input holding the ``d`` channels: ``-1`` for channels-last ``(..., d)``,
            ``1`` for convolution layouts ``(B, d, T, H, W)``.
    """

    def __init__(
        self,
        *,
        num_bits: int,
        entropy_loss_weight: float,
        commitment_loss_weight: float,
        diversity_gamma: float,
        inv_temperature: float,
        channel_dim: int = -1,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        check_count(f"{owner}: num_bits", num_bits)
        if num_bits > MAX_ENTROPY_BITS:
            raise ValueError(
                f"{owner}: num_bits must be <= {MAX_ENTROPY_BITS} (the exact batch entropy holds 2^num_bits "
                f"probabilities), got {num_bits}"
            )
        self.num_bits = num_bits
        self.entropy_loss_weight = check_number(f"{owner}: entropy_loss_weight", entropy_loss_weight)
        self.commitment_loss_weight = check_number(f"{owner}: commitment_loss_weight", commitment_loss_weight)
        self.diversity_gamma = check_number(f"{owner}: diversity_gamma", diversity_gamma)
        self.inv_temperature = check_number(f"{owner}: inv_temperature", inv_temperature)
        if self.inv_temperature <= 0:
            raise ValueError(f"{owner}: inv_temperature must be > 0, got {inv_temperature}")
        if isinstance(channel_dim, bool) or not isinstance(channel_dim, int):
            raise TypeError(f"{owner}: channel_dim must be an int, got {type(channel_dim).__name__} {channel_dim!r}")
        self.channel_dim = channel_dim

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """Keyword arguments of a small quantizer for unit tests (6 bits, 64 codes)."""
        return {"num_bits": 6}

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON values): ``type(q)(**q.config)`` or another quantizer's."""
        return {
            "num_bits": self.num_bits,
            "entropy_loss_weight": self.entropy_loss_weight,
            "commitment_loss_weight": self.commitment_loss_weight,
            "diversity_gamma": self.diversity_gamma,
            "inv_temperature": self.inv_temperature,
            "channel_dim": self.channel_dim,
        }

    @property
    def codebook_size(self) -> int:
        """Number of codes, ``2^num_bits``."""
        return 2**self.num_bits

    @property
    def code_scale(self) -> float:
        """``s``: the codes are the corners ``{−s, +s}^d``."""
        raise NotImplementedError(f"{type(self).__name__} must define code_scale (a Quantizer subclass sets it)")

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The map applied to channels-last inputs ``(..., d)`` before quantization and in the losses."""
        raise NotImplementedError(f"{type(self).__name__} must define project (a Quantizer subclass sets it)")

    def extra_repr(self) -> str:
        """The constructor's keyword arguments, for ``repr``."""
        return ", ".join(f"{key}={value}" for key, value in self.config.items())

    # ------------------------------------------------------------------ layout helpers
    def _channel_dim(self, ndim: int, name: str) -> int:
        if not -ndim <= self.channel_dim < ndim:
            raise ValueError(
                f"{type(self).__name__}: channel_dim={self.channel_dim} is out of range for {name} with {ndim} dims"
            )
        return self.channel_dim % ndim

    def _check_input(self, z: Any) -> int:
        owner = type(self).__name__
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"{owner}: z must be a tensor, got {type(z).__name__}")
        if not z.is_floating_point():
            raise TypeError(f"{owner}: z must be a floating-point tensor, got {z.dtype}")
        if z.ndim == 0:
            raise ValueError(f"{owner}: z must have a channel dimension of size {self.num_bits}, got a scalar")
        dim = self._channel_dim(z.ndim, "z")
        if z.shape[dim] != self.num_bits:
            raise ValueError(
                f"{owner}: z must have num_bits={self.num_bits} channels at channel_dim={self.channel_dim}, "
                f"got shape {tuple(z.shape)}"
            )
        return dim

    # ------------------------------------------------------------------ codes and indices
    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (channels at ``channel_dim``) → ``int64`` indices.

        The sign decides, so unquantized inputs map to the index :meth:`forward` gives them (``0`` is positive).
        """
        dim = self._check_input(codes)
        return bits_to_indices(codes.movedim(dim, -1) >= 0)

    def indices_to_codes(self, indices: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``int64`` indices → codes ``±code_scale`` with the channels inserted at ``channel_dim``.

        Raises:
            ValueError: If an index is outside ``[0, codebook_size)``.
        """
        bits = indices_to_bits(indices, self.num_bits)
        scale = torch.tensor(self.code_scale, dtype=dtype, device=bits.device)
        codes = torch.where(bits, scale, -scale)
        return codes.movedim(-1, self._channel_dim(codes.ndim, "the codes"))

    # ------------------------------------------------------------------ forward
    def forward(
        self, z: torch.Tensor, mask: torch.Tensor | None = None, *, compute_losses: bool | None = None
    ) -> QuantizerOutput:
        """Quantize ``z`` and compute the auxiliary losses.

        Half-precision inputs are quantized and regularized in float32 (as vector-quantize-pytorch's
        ``force_quantization_f32``); the output is cast back to the input dtype.

        Args:
            z: Input with ``num_bits`` channels at ``channel_dim`` (channels-last ``(..., d)`` by default).
            mask: Optional bool tensor of ``z``'s shape without the channel dimension, ``True`` for the tokens
                that take part in the losses (vector-quantize-pytorch's convention). Tokens with ``False`` (e.g.
                HiTVideo's masked, redundant tokens) are quantized but excluded from both entropies and the
                commitment loss, which then do not depend on them at all.
            compute_losses: Compute the losses (default: in training mode only). When off, every ``aux_losses``
                entry is a zero scalar, so the output's structure never changes.

        Returns:
            :class:`QuantizerOutput` ``(quantized, indices, aux_losses)``.

        Raises:
            TypeError: If ``z`` is not a floating-point tensor or ``mask`` is not a bool tensor.
            ValueError: If ``z`` has no ``num_bits`` channels at ``channel_dim`` or ``mask`` has the wrong shape.
        """
        dim = self._check_input(z)
        x = z.movedim(dim, -1)
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        u = self.project(x)
        bits = u >= 0
        scale = self.code_scale
        corner = torch.tensor(scale, dtype=u.dtype, device=u.device)
        codes = torch.where(bits, corner, -corner)
        # Straight-through written as codes + (u - sg(u)): the value is exactly the code, the gradient is 1.
        quantized = (codes + (u - u.detach())).to(z.dtype).movedim(-1, dim)
        indices = bits_to_indices(bits)

        if compute_losses is None:
            compute_losses = self.training
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
                raise TypeError(f"{type(self).__name__}: mask must be a bool tensor, got {got}")
            if mask.shape != indices.shape:
                raise ValueError(
                    f"{type(self).__name__}: mask must have z's shape without the channel dimension, "
                    f"{tuple(indices.shape)}, got {tuple(mask.shape)}"
                )
        if not compute_losses:
            zero = u.new_zeros(())
            keys = (*LOSS_KEYS, "per_sample_entropy", "batch_entropy")
            return QuantizerOutput(quantized, indices, {key: zero for key in keys})

        tokens, token_codes = u.reshape(-1, self.num_bits), codes.reshape(-1, self.num_bits)
        if mask is not None:
            keep = mask.reshape(-1)
            tokens, token_codes = tokens[keep], token_codes[keep]
        # With every token masked out the losses are zeros that still backpropagate (zero gradients).
        commitment = F.mse_loss(tokens, token_codes.detach()) if tokens.shape[0] else tokens.sum() * 0.0
        # Log-odds of each bit under q(c | u) ∝ exp(-inv_temperature ||u - c||^2) with c in {-s, +s}^d.
        bit_logits = (4.0 * self.inv_temperature * scale) * tokens
        terms = factorized_entropy(bit_logits)
        penalty = terms.per_sample - self.diversity_gamma * terms.batch
        aux_losses = {
            "commitment": self.commitment_loss_weight * commitment,
            "entropy": self.entropy_loss_weight * penalty,
            "per_sample_entropy": terms.per_sample,
            "batch_entropy": terms.batch,
        }
        return QuantizerOutput(quantized, indices, aux_losses)


QUANTIZERS: Registry = Registry("quantizer", base=Quantizer, package="vidtok.tokenizers.quantizers")
"""Binary quantizers by name (``lfq``, ``bsq``); they share constructor arguments and outputs."""
