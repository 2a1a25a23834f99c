from typing import TypedDict, TypeVar

import torch

# (this rank's vector, the case's seed, the number of ranks)
input_t = TypeVar("input_t", bound=tuple[torch.Tensor, int, int])
output_t = TypeVar("output_t", bound=torch.Tensor)


class TestSpec(TypedDict):
    size: int
    seed: int
