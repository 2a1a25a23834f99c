# Correct, but adds in 256-element chunks from a Python loop: many tiny kernel launches.
import torch
from task import input_t, output_t


def custom_kernel(data: input_t) -> output_t:
    a, b = data
    out = torch.empty_like(a)
    for start in range(0, a.numel(), 256):
        out[start : start + 256] = a[start : start + 256] + b[start : start + 256]
    return out
