import torch
from task import input_t, output_t
from utils import DEVICE, make_generator, match_reference


def ref_kernel(data: input_t) -> output_t:
    a, b = data
    return a + b


def generate_input(size: int, seed: int) -> input_t:
    gen = make_generator(seed)
    a = torch.randn(size, device=DEVICE, dtype=torch.float32, generator=gen)
    b = torch.randn(size, device=DEVICE, dtype=torch.float32, generator=gen)
    return a, b


def check_implementation(data: input_t, output: output_t) -> tuple[bool, str]:
    return match_reference(output, ref_kernel(data))
