// The task's reference: inputs made from a seed on the host, the expected output, and the check.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

struct Input {
    std::vector<float> a, b;
};

// splitmix64: the same inputs for the same seed on every machine
inline uint64_t next_random(uint64_t& state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

inline Input generate_input(int size, uint64_t seed) {
    Input input{std::vector<float>(size), std::vector<float>(size)};
    uint64_t state = seed;
    for (int i = 0; i < size; ++i) {
        input.a[i] = static_cast<float>(next_random(state) >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
        input.b[i] = static_cast<float>(next_random(state) >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
    }
    return input;
}

// An empty string when ``output`` matches the reference, else what is wrong, with the first mismatch.
inline std::string check_implementation(const Input& input, const std::vector<float>& output) {
    int mismatches = 0;
    std::string first;
    for (size_t i = 0; i < output.size(); ++i) {
        float expected = input.a[i] + input.b[i];
        if (!(std::fabs(output[i] - expected) <= 1e-6f + 1e-5f * std::fabs(expected))) {
            if (mismatches++ == 0) {
                first = "at index " + std::to_string(i) + ": expected " + std::to_string(expected) +
                        ", got " + std::to_string(output[i]);
            }
        }
    }
    if (mismatches == 0) return "";
    return "mismatch found: " + std::to_string(mismatches) + " of " + std::to_string(output.size()) +
           " values differ; first " + first;
}
