"""CUDA through torch.utils.cpp_extension.load_inline (a GPU is needed). It compiles with the node's nvcc
when the module is imported, before any call is timed, once per run (the harness keeps torch's extension
cache for the run's processes)."""

import torch
from task import input_t, output_t
from torch.utils.cpp_extension import load_inline

CUDA_SOURCE = """
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

__global__ void add_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
                           int64_t n) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) {
        c[i] = a[i] + b[i];
    }
}

torch::Tensor vector_add(torch::Tensor a, torch::Tensor b) {
    TORCH_CHECK(a.is_cuda() && a.scalar_type() == torch::kFloat32, "a float32 CUDA tensor is expected");
    auto a_c = a.contiguous();
    auto b_c = b.contiguous();
    auto c = torch::empty_like(a_c);
    const int64_t n = a_c.numel();
    const int threads = 256;
    if (n > 0) {
        const int64_t blocks = (n + threads - 1) / threads;
        add_kernel<<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(
            a_c.data_ptr<float>(), b_c.data_ptr<float>(), c.data_ptr<float>(), n);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    return c;
}
"""
CPP_SOURCE = "torch::Tensor vector_add(torch::Tensor a, torch::Tensor b);"

module = load_inline(
    "vectoradd_cuda",
    cpp_sources=CPP_SOURCE,
    cuda_sources=CUDA_SOURCE,
    functions=["vector_add"],
    extra_cuda_cflags=["-O3"],
)


def custom_kernel(data: input_t) -> output_t:
    a, b = data
    return module.vector_add(a, b)
