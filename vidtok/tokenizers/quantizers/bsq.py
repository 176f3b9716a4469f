"""Binary spherical quantization (BSQ): LFQ on the unit sphere, with the same exact entropy penalty."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vidtok.tokenizers.quantizers.base import QUANTIZERS, Quantizer

__all__ = ["BSQ"]


@QUANTIZERS.register("bsq")
class BSQ(Quantizer):
    """Binary spherical quantization (BSQ), the quantizer of InfinityStar.

    Zhao et al. 2024, "Image and Video Tokenization with Binary Spherical Quantization" (arXiv:2406.07548) §3.
    The input is projected to the unit sphere, ``u = z / ‖z‖``, and each channel quantized by its sign to the
    corners ``{−1/√d, +1/√d}^d`` (unit vectors themselves, so the quantization error is bounded; an exact ``0``
    goes to ``+1/√d``). Indices, straight-through gradients (to ``u``, hence through the normalization to ``z``)
    and the return structure are :class:`~vidtok.tokenizers.quantizers.LFQ`'s: the two swap by constructor.

    Entropy penalty. The soft assignment is ``q(c | u) ∝ exp(−inv_temperature · ‖u − c‖²)`` over the corners.
    With ``‖u‖ = ‖c‖ = 1`` this is ``exp(2 · inv_temperature · u·c)`` — BSQ-ViT's ``softmax(−distance ·
    inv_temperature)`` with ``distance = −2 u·c`` — and, as for LFQ, it factorizes over bits:
    ``q_i(+1/√d | u_i) = σ(ℓ_i)`` with log-odds ``ℓ_i = inv_temperature·((u_i + 1/√d)² − (u_i − 1/√d)²)
    = 4 · inv_temperature · u_i / √d`` (BSQ-ViT's "analytical" per-sample entropy uses this sigmoid). Unlike
    BSQ-ViT, which approximates the codebook entropy by the sum of the entropies of 9-bit groups (an upper
    bound), the batch entropy here is the exact entropy over all ``2^d`` codes
    (:func:`~vidtok.tokenizers.quantizers.entropy.factorized_entropy`). The commitment loss is
    ``mean (u − sg(q))²`` over tokens and channels (BSQ-ViT sums over channels: ``d`` times this).

    Defaults follow the official BSQ-ViT code and configs: ``inv_temperature=1`` (the per-bit log-odds of a unit
    vector are then ``O(4/d)``: soft, as there), ``diversity_gamma=1`` (``gamma0 = gamma = 1``),
    ``entropy_loss_weight=0.1`` (``codebook_weight``) and ``commitment_loss_weight=0`` (``beta = 0``: the
    quantization error on the sphere is bounded).

    Args:
        num_bits: Code width ``d`` (``2^d`` codes), ``<= 24``.
        entropy_loss_weight: Weight of the entropy penalty.
        commitment_loss_weight: Weight of the commitment loss.
        diversity_gamma: ``γ``, the weight of the batch (codebook) entropy in the penalty.
        inv_temperature: Inverse temperature of the soft assignment (BSQ-ViT's ``inv_temperature``).
        channel_dim: The channel dimension: ``-1`` for channels-last ``(..., d)`` (default), ``1`` for
            ``(B, d, T, H, W)``.

    Example:
        >>> import torch
        >>> from vidtok.tokenizers.quantizers import BSQ
        >>> bsq = BSQ(num_bits=4).train()
        >>> out = bsq(torch.tensor([[3.0, -1.0, 0.5, -2.0]]))
        >>> out.quantized.tolist(), out.indices.tolist()  # ±1/√4 -> 0b1010
        ([[0.5, -0.5, 0.5, -0.5]], [10])
    """

    def __init__(
        self,
        *,
        num_bits: int = 18,
        entropy_loss_weight: float = 0.1,
        commitment_loss_weight: float = 0.0,
        diversity_gamma: float = 1.0,
        inv_temperature: float = 1.0,
        channel_dim: int = -1,
    ) -> None:
        super().__init__(
            num_bits=num_bits,
            entropy_loss_weight=entropy_loss_weight,
            commitment_loss_weight=commitment_loss_weight,
            diversity_gamma=diversity_gamma,
            inv_temperature=inv_temperature,
            channel_dim=channel_dim,
        )

    @property
    def code_scale(self) -> float:
        """``1/√d``: the codes ``{−1/√d, +1/√d}^d`` are unit vectors."""
        return 1.0 / math.sqrt(self.num_bits)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``x / ‖x‖`` over the channels (a zero vector stays zero and quantizes to the all-``+`` code)."""
        return F.normalize(x, dim=-1)
