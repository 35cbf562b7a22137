"""Arithmetic precision of the runtime's forward passes: float32, or bfloat16 autocast.

Under ``bf16`` the convs, matrix products and the linear head run in bfloat16 (torch's
autocast), while parameters, their gradients, the optimiser state, BN statistics and the
loss stay float32. No loss scaling is needed: bfloat16 has float32's exponent range.

``auto`` picks ``bf16`` only where the hardware does bfloat16 arithmetic natively (CPUs
with AVX512-BF16 or AMX, CUDA devices that support it): elsewhere bfloat16 is emulated and
slower than float32. A run resolves ``auto`` once and writes the result into its
``config.json``; ``--resume`` takes it from there, so a resumed run computes as it began,
even on another machine.
"""

from __future__ import annotations

import contextlib

import torch

CHOICES = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` does bfloat16 arithmetic in hardware."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve(name: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for ``device``; a concrete name is checked."""
    if name not in CHOICES:  # the command line only offers CHOICES
        raise ValueError(f"precision {name!r}: expected one of {', '.join(CHOICES)}")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return name


def autocast(name: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a forward pass in precision ``name`` on ``device`` runs in."""
    if resolve(name, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
