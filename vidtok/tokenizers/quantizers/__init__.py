"""Binary (lookup-free) quantizers, one per file, registered in :data:`QUANTIZERS` under their file's name.

* ``lfq`` — :class:`LFQ`, MAGVIT-v2's lookup-free quantization (HiTVideo §3.2's per-layer quantizer);
* ``bsq`` — :class:`BSQ`, binary spherical quantization.

Both take the same keyword arguments and return a :class:`QuantizerOutput` ``(quantized, indices, aux_losses)``,
so they swap by constructor. Their entropy penalty is exact and never materializes ``tokens × 2^d``
(:mod:`vidtok.tokenizers.quantizers.entropy`).
"""

from vidtok.tokenizers.quantizers.base import (
    LOSS_KEYS,
    QUANTIZERS,
    Quantizer,
    QuantizerOutput,
    bits_to_indices,
    indices_to_bits,
)
from vidtok.tokenizers.quantizers.bsq import BSQ
from vidtok.tokenizers.quantizers.entropy import (
    EntropyTerms,
    binary_entropy_with_logits,
    factorized_entropy,
    mean_code_distribution,
)
from vidtok.tokenizers.quantizers.lfq import LFQ

__all__ = [
    "BSQ",
    "LFQ",
    "LOSS_KEYS",
    "QUANTIZERS",
    "EntropyTerms",
    "Quantizer",
    "QuantizerOutput",
    "binary_entropy_with_logits",
    "bits_to_indices",
    "factorized_entropy",
    "indices_to_bits",
    "mean_code_distribution",
]
