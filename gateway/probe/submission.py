"""The probe's submission: the correct kernel, so a failed probe means the site, not the code."""

import torch


def custom_kernel(data: torch.Tensor) -> torch.Tensor:
    return data + data
