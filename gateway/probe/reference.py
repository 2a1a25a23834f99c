"""Reference of the site check's probe: double a vector, on the GPU when torch sees one."""

import torch


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def ref_kernel(data: torch.Tensor) -> torch.Tensor:
    return data * 2


def generate_input(size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator(device=_device())
    gen.manual_seed(seed)
    return torch.randn(size, device=_device(), dtype=torch.float32, generator=gen)


def check_implementation(data: torch.Tensor, output: torch.Tensor) -> tuple[bool, str]:
    expected = ref_kernel(data)
    if not isinstance(output, torch.Tensor) or output.shape != expected.shape:
        return False, "the probe's output has the wrong shape"
    return bool(torch.allclose(output, expected)), "the probe's output differs from the reference"
