"""Helpers shared by the example problems (copied into each run's task folder as utils.py)."""

import torch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_generator(seed: int) -> torch.Generator:
    gen = torch.Generator(device=DEVICE)
    gen.manual_seed(seed)
    return gen


def verbose_allclose(
    received: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float, max_print: int = 3
) -> list[str]:
    """Why ``received`` is not close to ``expected`` (empty when it is)."""
    if not isinstance(received, torch.Tensor):
        return [f"expected a tensor, got {type(received).__name__}"]
    if received.shape != expected.shape:
        return [f"shape mismatch: got {tuple(received.shape)}, expected {tuple(expected.shape)}"]
    if received.dtype != expected.dtype:
        return [f"dtype mismatch: got {received.dtype}, expected {expected.dtype}"]
    bad = ~torch.isclose(received, expected, rtol=rtol, atol=atol, equal_nan=False)
    count = int(bad.sum().item())
    if count == 0:
        return []
    lines = [f"mismatch found! {count} of {expected.numel()} elements differ (rtol={rtol}, atol={atol})"]
    for index in bad.nonzero()[:max_print].tolist():
        at = tuple(index)
        lines.append(f"at {at}: got {received[at].item():.6g}, expected {expected[at].item():.6g}")
    return lines


def match_reference(
    received: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6
) -> tuple[bool, str]:
    reasons = verbose_allclose(received, expected, rtol, atol)
    return (not reasons), "; ".join(reasons)
