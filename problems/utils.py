"""Helpers shared by the example problems (copied into each run's task folder as utils.py)."""

import torch

from harness.compare import compare_tensors

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_generator(seed: int) -> torch.Generator:
    gen = torch.Generator(device=DEVICE)
    gen.manual_seed(seed)
    return gen


def set_seed(seed: int) -> None:
    """reference-kernels' eval.py calls this with POPCORN_SEED."""
    torch.manual_seed(seed)


def match_reference(
    received: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6
) -> tuple[bool, str]:
    """Strict comparison (shape, dtype, device, NaN/inf) with max abs/rel error and the first mismatches."""
    return compare_tensors(received, expected, rtol, atol)
