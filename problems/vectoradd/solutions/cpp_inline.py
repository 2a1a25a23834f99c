"""C++ on the CPU through torch.utils.cpp_extension.load_inline. It compiles when the module is imported,
before any call is timed, and once per run: the harness keeps torch's extension cache for the run's
processes (TORCH_EXTENSIONS_DIR)."""

import torch
from task import input_t, output_t
from torch.utils.cpp_extension import load_inline

CPP_SOURCE = """
torch::Tensor vector_add(torch::Tensor a, torch::Tensor b) {
    TORCH_CHECK(a.is_cpu() && a.scalar_type() == torch::kFloat32, "a float32 CPU tensor is expected");
    auto a_c = a.contiguous();
    auto b_c = b.contiguous();
    auto out = torch::empty_like(a_c);
    const float* x = a_c.data_ptr<float>();
    const float* y = b_c.data_ptr<float>();
    float* z = out.data_ptr<float>();
    const int64_t n = a_c.numel();
    for (int64_t i = 0; i < n; ++i) {
        z[i] = x[i] + y[i];
    }
    return out;
}
"""

module = load_inline("vectoradd_cpp", cpp_sources=CPP_SOURCE, functions=["vector_add"], extra_cflags=["-O3"])


def custom_kernel(data: input_t) -> output_t:
    a, b = data
    return module.vector_add(a, b)
