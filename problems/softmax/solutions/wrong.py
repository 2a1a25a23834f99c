# Wrong: forgets to subtract the row maximum, so exp() overflows to inf and the result has NaNs.
import torch
from task import input_t, output_t


def custom_kernel(data: input_t) -> output_t:
    e = torch.exp(data)
    return e / e.sum(dim=-1, keepdim=True)
