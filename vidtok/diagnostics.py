"""Old home of the deep-token diagnostics, kept as a re-export.

They now live next to the tokenizer, in
[`vidtok.tokenizers.deep_tokens_diagnostics`][vidtok.tokenizers.deep_tokens_diagnostics].
This module re-exports them so ``from vidtok.diagnostics import zero_out_tokens`` keeps working.
"""

from __future__ import annotations

from vidtok.tokenizers.deep_tokens_diagnostics import token_zeroing_grid, zero_out_tokens

__all__ = ["token_zeroing_grid", "zero_out_tokens"]
