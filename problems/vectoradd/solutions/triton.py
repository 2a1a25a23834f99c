"""A Triton kernel (a GPU is needed). Triton compiles it at its first call, which the harness never times
(each case is checked once before its timed calls); its cache is the run's own (TRITON_CACHE_DIR)."""

import torch
import triton
import triton.language as tl
from task import input_t, output_t

BLOCK = 1024


@triton.jit
def add_kernel(a_ptr, b_ptr, c_ptr, n, BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n
    a = tl.load(a_ptr + offsets, mask=mask)
    b = tl.load(b_ptr + offsets, mask=mask)
    tl.store(c_ptr + offsets, a + b, mask=mask)


def custom_kernel(data: input_t) -> output_t:
    a, b = data
    c = torch.empty_like(a)
    n = a.numel()
    add_kernel[(triton.cdiv(n, BLOCK),)](a, b, c, n, BLOCK_SIZE=BLOCK)
    return c
