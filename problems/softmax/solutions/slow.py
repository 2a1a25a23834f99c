# Correct, but one row at a time from a Python loop.
import torch
from task import input_t, output_t


def custom_kernel(data: input_t) -> output_t:
    out = torch.empty_like(data)
    for i in range(data.shape[0]):
        row = data[i]
        e = torch.exp(row - row.max())
        out[i] = e / e.sum()
    return out
