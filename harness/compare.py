"""Strict comparison of a submission's output with the reference's, with a summary a competitor can act on.

NaN and inf are compared strictly: a NaN is only accepted where the reference has a NaN, an inf only where
the reference has the same inf. Shapes, dtypes and devices must match exactly.
"""

from __future__ import annotations

from typing import Any

MAX_INDICES = 3


def describe(value: Any) -> str:
    """A short description of a value for error messages: type, and for a tensor shape/dtype/device."""
    import torch

    if isinstance(value, torch.Tensor):
        return (
            f"{type(value).__name__}(shape={tuple(value.shape)}, dtype={value.dtype}, device={value.device})"
        )
    if isinstance(value, tuple | list):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def compare_tensors(received: Any, expected: Any, rtol: float, atol: float) -> tuple[bool, str]:
    """(ok, message): ``message`` names the max abs/rel error, the mismatch count and the first indices."""
    import torch

    if not isinstance(received, torch.Tensor):
        return False, f"expected a torch.Tensor, got {describe(received)}"
    if received.shape != expected.shape:
        return False, f"shape mismatch: got {tuple(received.shape)}, expected {tuple(expected.shape)}"
    if received.dtype != expected.dtype:
        return False, f"dtype mismatch: got {received.dtype}, expected {expected.dtype}"
    if received.device.type != expected.device.type:
        return False, f"device mismatch: got {received.device}, expected {expected.device}"
    if expected.numel() == 0:
        return True, ""
    got = received.detach().to(torch.float64) if received.is_floating_point() else received.detach()
    want = expected.detach().to(torch.float64) if expected.is_floating_point() else expected.detach()
    if got.is_floating_point() or got.is_complex():
        close = torch.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
        # isclose treats inf == inf of the same sign as close and, with equal_nan, NaN == NaN; anything
        # else non-finite on either side is a mismatch
        finite = torch.isfinite(got) & torch.isfinite(want)
        same_special = (torch.isnan(got) & torch.isnan(want)) | (torch.isinf(want) & (got == want))
        ok_mask = torch.where(finite, close, same_special)
    else:
        ok_mask = got == want
    bad = ~ok_mask
    count = int(bad.sum().item())
    if count == 0:
        return True, ""
    diff = (
        (got.to(torch.float64) - want.to(torch.float64)).abs() if not got.is_complex() else (got - want).abs()
    )
    finite_diff = diff[torch.isfinite(diff)]
    max_abs = float(finite_diff.max().item()) if finite_diff.numel() else float("nan")
    rel = diff / want.abs().to(diff.dtype).clamp_min(1e-30)
    finite_rel = rel[torch.isfinite(rel)]
    max_rel = float(finite_rel.max().item()) if finite_rel.numel() else float("nan")
    nan_count = int(torch.isnan(got).sum().item()) if got.is_floating_point() else 0
    inf_count = int(torch.isinf(got).sum().item()) if got.is_floating_point() else 0
    parts = [
        f"mismatch found! {count} of {expected.numel()} elements differ (rtol={rtol}, atol={atol})",
        f"max abs error {max_abs:.4g}, max rel error {max_rel:.4g}",
    ]
    if nan_count or inf_count:
        parts.append(f"output has {nan_count} NaN and {inf_count} inf")
    for index in bad.nonzero()[:MAX_INDICES].tolist():
        at = tuple(index)
        parts.append(f"at {at}: got {got[at].item():.6g}, expected {want[at].item():.6g}")
    return False, "; ".join(parts)
