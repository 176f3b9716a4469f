"""The exact entropy penalty of binary (lookup-free) quantizers, without a ``tokens × 2^d`` tensor.

MAGVIT-v2 (Yu et al. 2024, arXiv:2310.05737, §3.1, Eq. 5) regularizes lookup-free quantization (LFQ) with

    L_ent = E_n[ H(q(· | z_n)) ] − γ · H( E_n[ q(· | z_n) ] ),

the mean *per-sample* entropy of a soft assignment ``q(c | z) ∝ exp(−‖z − c‖² / τ)`` over all ``2^d`` codes
(kept low: confident codes) minus ``γ`` times the entropy of the *batch-average* assignment (kept high: every
code used). Every public implementation (vector-quantize-pytorch, Open-MAGVIT2, Cosmos) builds the
``N × 2^d`` probability matrix for it: 1 GiB per tensor at ``N = 1024`` tokens and ``d = 18``, about 6 GiB and
~100 s of CPU time for one forward + backward (``shared/research/video-tokenizers.md`` §2.4).

Both terms are exact and cheap because the codebook is a product set. For corners ``c ∈ {−s, +s}^d`` the
squared distance is ``‖z − c‖² = ‖z‖² − 2 z·c + d s²``, so ``−‖z − c‖²/τ = Σ_i 2 z_i c_i / τ + const`` is a
sum over bits and the softmax over the ``2^d`` corners factorizes into independent bits:

    q(c | z) = Π_i q_i(c_i | z_i),   q_i(+s | z_i) = σ(ℓ_i),   ℓ_i = 4 s z_i / τ

(``ℓ_i`` is the log-odds ``(−(z_i − s)² + (z_i + s)²) / τ``; LFQ has ``s = 1``, so ``ℓ_i = 4 z_i / τ``). Hence:

* per-sample entropy: the entropy of a product distribution is the sum of its factors' entropies,
  ``H(q(· | z)) = Σ_i H_b(σ(ℓ_i))`` — O(N·d);
* batch entropy: split the bits into a most-significant group ``A`` (``d_A = ⌈d/2⌉`` bits) and the rest ``B``.
  Each token's distribution over a group is the outer product of its bits' distributions,
  ``P_A[n, a] = Π_{i∈A} q_i(a_i | z_n)`` (``N × 2^{d_A}``, likewise ``P_B``), and
  ``p̄[a, b] = (1/N) Σ_n P_A[n, a] P_B[n, b] = (P_Aᵀ P_B)[a, b] / N`` — one GEMM whose ``2^{d_A} × 2^{d_B}``
  result *is* the whole ``2^d``-entry average distribution, exactly; then ``H = −Σ p̄ log p̄``. Memory
  ``O(N · 2^{d/2} + 2^d)``: at ``d = 18``, two ``N × 512`` tables and a ``512 × 512`` matrix.

``p̄`` is laid out in the library's code order: row ``a`` holds the most significant ``d_A`` bits, so
``p̄.flatten()[k]`` is the probability of code index ``k = Σ_i b_i 2^{d−1−i}`` (bit 0 most significant, ``b_i = 1``
for ``+s``), the order of :func:`vidtok.tokenizers.quantizers.bits_to_indices` and of the factorized
:class:`~vidtok.heads.CategoricalHead`.

Exactness matters for the gradient, not only the value: when tokens sit on distinct codes the batch entropy is
``log N`` plus the mean per-sample entropy, so with ``γ = 1`` the gradients of the two terms cancel. The
``log(clamp(p, 1e-5))`` of the public implementations breaks that cancellation and adds a spurious gradient
(~1e-2 at ``d = 18``, ``benchmarks/lfq.py``); the values here match a float64 brute force to ~1e-8.

The tables, the GEMM and the entropies run in float64 by default (float32 on MPS, which has no float64): ``p̄``
has ``2^d`` entries of size ~``1/N`` and smaller, and the GEMM sums ``N`` products per entry.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "MAX_ENTROPY_BITS",
    "EntropyTerms",
    "binary_entropy_with_logits",
    "factorized_entropy",
    "group_code_probabilities",
    "mean_code_distribution",
]

#: Largest code width the exact batch entropy accepts: ``p̄`` has ``2^d`` entries (128 MiB in float64 at 24).
MAX_ENTROPY_BITS = 24


class EntropyTerms(NamedTuple):
    """The two entropies of the MAGVIT-v2 penalty, in nats (scalars).

    Attributes:
        per_sample: Mean over tokens of the entropy of each token's soft code assignment.
        batch: Entropy of the token-averaged soft code assignment (the codebook usage entropy).
    """

    per_sample: torch.Tensor
    batch: torch.Tensor


def binary_entropy_with_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy ``H_b(σ(ℓ))`` in nats of a Bernoulli with log-odds ``ℓ``, elementwise and overflow-free.

    With ``p = σ(ℓ)``: ``log p = −softplus(−ℓ)`` and ``log(1 − p) = −softplus(ℓ)``, so
    ``H = p·softplus(−ℓ) + (1 − p)·softplus(ℓ) = softplus(ℓ) − p·ℓ`` — finite for every finite ``ℓ``.

    Example:
        >>> import torch
        >>> round(float(binary_entropy_with_logits(torch.tensor(0.0))), 6)  # log 2
        0.693147
    """
    return F.softplus(logits) - torch.sigmoid(logits) * logits


def _compute_dtype(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is not None:
        return dtype
    return torch.float32 if tensor.device.type == "mps" else torch.float64


def _check_bit_logits(bit_logits: torch.Tensor) -> None:
    if not isinstance(bit_logits, torch.Tensor):
        raise TypeError(f"bit_logits must be a tensor, got {type(bit_logits).__name__}")
    if bit_logits.ndim != 2 or bit_logits.shape[1] < 1:
        raise ValueError(f"bit_logits must be (tokens, bits) with bits >= 1, got shape {tuple(bit_logits.shape)}")
    if not bit_logits.is_floating_point():
        raise TypeError(f"bit_logits must be a floating-point tensor, got {bit_logits.dtype}")
    if bit_logits.shape[1] > MAX_ENTROPY_BITS:
        raise ValueError(
            f"bit_logits has {bit_logits.shape[1]} bits: the exact batch entropy holds 2^bits probabilities, "
            f"at most {MAX_ENTROPY_BITS} bits are supported"
        )


def _msb_first_bits(num_bits: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(2^num_bits, num_bits)`` 0/1 table: row ``k`` holds the bits of ``k``, most significant first."""
    shifts = torch.arange(num_bits - 1, -1, -1, device=device)
    codes = torch.arange(2**num_bits, device=device)
    return ((codes.unsqueeze(-1) >> shifts) & 1).to(dtype)


def group_code_probabilities(bit_logits: torch.Tensor) -> torch.Tensor:
    """Each token's distribution over all codes of a group of bits: the outer product of its bits' Bernoullis.

    Computed in log space as one small GEMM, ``log P = log σ(ℓ) · bitsᵀ + log σ(−ℓ) · (1 − bits)ᵀ``, so no
    running product can lose precision.

    Args:
        bit_logits: ``(N, g)`` log-odds of each bit being ``1`` (the ``+s`` corner), in the dtype to compute in.

    Returns:
        ``(N, 2^g)``: entry ``[n, k]`` is the probability of the ``g``-bit code ``k`` (MSB-first) for token ``n``.
        ``g = 0`` gives ``(N, 1)`` ones.
    """
    bits = _msb_first_bits(bit_logits.shape[-1], bit_logits.device, bit_logits.dtype)
    log_p = F.logsigmoid(bit_logits) @ bits.T + F.logsigmoid(-bit_logits) @ (1.0 - bits).T
    return log_p.exp()


def mean_code_distribution(bit_logits: torch.Tensor, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The exact token-averaged soft code assignment ``p̄`` over all ``2^d`` codes, as a ``2^{d_A} × 2^{d_B}`` matrix.

    ``p̄ = P_Aᵀ P_B / N`` with ``A`` the ``d_A = ⌈d/2⌉`` most significant bits (module docstring), so
    ``p̄.flatten()`` is indexed by the code index ``Σ_i b_i 2^{d−1−i}``.

    Args:
        bit_logits: ``(N, d)`` per-bit log-odds, ``N >= 1``.
        dtype: Compute dtype (default float64; float32 on MPS).

    Returns:
        ``(2^{⌈d/2⌉}, 2^{⌊d/2⌋})`` probabilities summing to 1, in ``dtype``.

    Example:
        >>> import torch
        >>> p = mean_code_distribution(torch.tensor([[50.0, -50.0, 50.0]]))  # confidently code 0b101
        >>> p.shape, int(p.flatten().argmax())
        (torch.Size([4, 2]), 5)
    """
    _check_bit_logits(bit_logits)
    if bit_logits.shape[0] == 0:
        raise ValueError("bit_logits has no tokens: the mean code distribution of an empty batch is undefined")
    logits = bit_logits.to(_compute_dtype(bit_logits, dtype))
    split = logits.shape[1] - logits.shape[1] // 2
    table_a = group_code_probabilities(logits[:, :split])
    table_b = group_code_probabilities(logits[:, split:])
    return table_a.T @ table_b / logits.shape[0]


def factorized_entropy(
    bit_logits: torch.Tensor, mask: torch.Tensor | None = None, *, dtype: torch.dtype | None = None
) -> EntropyTerms:
    """The two entropies of MAGVIT-v2's penalty (§3.1, Eq. 5), exactly, from per-bit log-odds.

    For a binary quantizer whose soft assignment factorizes over bits (module docstring):
    ``per_sample = mean_n Σ_i H_b(σ(ℓ_{n,i}))`` and ``batch = H(p̄)`` with ``p̄`` from
    :func:`mean_code_distribution`. Differentiable; memory ``O(N · 2^{d/2} + 2^d)``, never ``N × 2^d``.

    Args:
        bit_logits: ``(N, d)`` log-odds of each bit being ``1``, ``d <= MAX_ENTROPY_BITS``.
        mask: Optional ``(N,)`` bool, ``True`` for the tokens that count; the others are left out of both terms
            (they get exactly zero gradient).
        dtype: Compute dtype (default float64; float32 on MPS). The results are cast back to ``bit_logits``'s
            dtype.

    Returns:
        :class:`EntropyTerms` ``(per_sample, batch)``, scalars in nats. With no token counted both are ``0``
        (still attached to the graph, so a backward pass works and gives zero gradients).

    Example:
        >>> import torch
        >>> terms = factorized_entropy(torch.zeros(4, 18))  # every code equally likely for every token
        >>> round(float(terms.per_sample), 4), round(float(terms.batch), 4)  # both 18 log 2
        (12.4766, 12.4766)
    """
    _check_bit_logits(bit_logits)
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != bit_logits.shape[:1]:
            got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"mask must be a bool tensor of shape {tuple(bit_logits.shape[:1])}, got {got}")
        bit_logits = bit_logits[mask]
    if bit_logits.shape[0] == 0:
        zero = bit_logits.sum() * 0.0
        return EntropyTerms(zero, zero.clone())
    logits = bit_logits.to(_compute_dtype(bit_logits, dtype))
    per_sample = binary_entropy_with_logits(logits).sum(-1).mean()
    mean = mean_code_distribution(logits, dtype=logits.dtype)
    # p̄ log p̄ → 0 as p̄ → 0; the clamp only keeps the log (and its gradient) finite where p̄ underflowed to 0.
    batch = -(mean * mean.clamp_min(torch.finfo(mean.dtype).tiny).log()).sum()
    return EntropyTerms(per_sample.to(bit_logits.dtype), batch.to(bit_logits.dtype))
