// The task's evaluator, GPU MODE's interface: `<program> <test|benchmark|leaderboard|profile> <tests-file>`,
// key/value lines on the file descriptor POPCORN_FD, POPCORN_SEED mixed into every seed of a secret run.
// The harness builds it together with the submission (nvcc) and runs it in the sandbox.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include "reference.cuh"
#include "task.h"

namespace {

using Case = std::pair<std::string, std::map<std::string, long long>>;  // the line as given, its values

struct CudaError {
    std::string message;
};

void cuda_check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) throw CudaError{std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status)};
}

std::vector<Case> read_cases(const char* path) {
    std::vector<Case> cases;
    std::ifstream file(path);
    std::string line;
    while (std::getline(file, line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        std::map<std::string, long long> values;
        size_t start = 0;
        while (start < line.size()) {
            size_t end = line.find(';', start);
            std::string part = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
            size_t colon = part.find(':');
            if (colon != std::string::npos) {
                std::string key = part.substr(0, colon);
                key.erase(0, key.find_first_not_of(' '));
                key.erase(key.find_last_not_of(' ') + 1);
                values[key] = std::atoll(part.c_str() + colon + 1);
            }
            if (end == std::string::npos) break;
            start = end + 1;
        }
        cases.emplace_back(line, values);
    }
    return cases;
}

uint64_t seed_of(const Case& c) {
    uint64_t seed = static_cast<uint64_t>(c.second.at("seed"));
    if (const char* secret = std::getenv("POPCORN_SEED")) {
        uint64_t mixed = static_cast<uint64_t>(std::atoll(secret)) ^ (seed * 0x9E3779B97F4A7C15ull);
        seed = next_random(mixed);
    }
    return seed;
}

// Device copies of one input and room for the output.
struct DeviceCase {
    Input input;
    float *a = nullptr, *b = nullptr, *c = nullptr;
    int n = 0;

    explicit DeviceCase(const Case& c_) : input(generate_input(static_cast<int>(c_.second.at("size")), seed_of(c_))) {
        n = static_cast<int>(input.a.size());
        size_t bytes = sizeof(float) * std::max(n, 1);
        cuda_check(cudaMalloc(&a, bytes), "cudaMalloc");
        cuda_check(cudaMalloc(&b, bytes), "cudaMalloc");
        cuda_check(cudaMalloc(&c, bytes), "cudaMalloc");
        cuda_check(cudaMemcpy(a, input.a.data(), sizeof(float) * n, cudaMemcpyHostToDevice), "cudaMemcpy");
        cuda_check(cudaMemcpy(b, input.b.data(), sizeof(float) * n, cudaMemcpyHostToDevice), "cudaMemcpy");
    }
    ~DeviceCase() {
        cudaFree(a);
        cudaFree(b);
        cudaFree(c);
    }
    std::string run_and_check() {
        cuda_check(cudaMemset(c, 0xff, sizeof(float) * n), "cudaMemset");  // NaNs: nothing left from before
        custom_kernel(a, b, c, n);
        cuda_check(cudaGetLastError(), "custom_kernel's launch");
        cuda_check(cudaDeviceSynchronize(), "custom_kernel");
        std::vector<float> output(n);
        cuda_check(cudaMemcpy(output.data(), c, sizeof(float) * n, cudaMemcpyDeviceToHost), "cudaMemcpy");
        return check_implementation(input, output);
    }
};

struct Out {
    FILE* file;
    template <typename T>
    void operator()(const std::string& key, const T& value) {
        std::string text;
        if constexpr (std::is_arithmetic_v<T>) text = std::to_string(value);
        else text = value;
        for (char& ch : text) if (ch == '\n' || ch == '\r') ch = ' ';
        std::fprintf(file, "%s: %s\n", key.c_str(), text.c_str());
        std::fflush(file);
    }
};

bool test(Out& out, const std::vector<Case>& cases) {
    out("test-count", cases.size());
    bool passed = true;
    for (size_t i = 0; i < cases.size(); ++i) {
        std::string prefix = "test." + std::to_string(i) + ".";
        out(prefix + "spec", cases[i].first);
        std::string error;
        try {
            DeviceCase device(cases[i]);
            error = device.run_and_check();
        } catch (const CudaError& e) {
            error = e.message;
        }
        out(prefix + "status", error.empty() ? "pass" : "fail");
        if (!error.empty()) {
            out(prefix + "error", error);
            passed = false;
        }
    }
    return passed;
}

bool benchmark(Out& out, const std::vector<Case>& cases, double max_time_s) {
    out("benchmark-count", cases.size());
    bool passed = true;
    int l2 = 0;
    cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0);
    size_t flush_bytes = std::max<size_t>(2 * static_cast<size_t>(l2), 256u << 20);
    for (size_t i = 0; i < cases.size(); ++i) {
        std::string prefix = "benchmark." + std::to_string(i) + ".";
        out(prefix + "spec", cases[i].first);
        try {
            DeviceCase device(cases[i]);
            std::string error = device.run_and_check();  // correct first, and warm
            if (!error.empty()) throw CudaError{error};
            void* flush = nullptr;
            cuda_check(cudaMalloc(&flush, flush_bytes), "cudaMalloc");
            cudaEvent_t start, end;
            cuda_check(cudaEventCreate(&start), "cudaEventCreate");
            cuda_check(cudaEventCreate(&end), "cudaEventCreate");
            std::vector<double> samples;
            auto began = std::chrono::steady_clock::now();
            double mean = 0, std_dev = 0, err = 0;
            while (true) {
                cuda_check(cudaMemsetAsync(flush, 0, flush_bytes), "the L2 flush");  // outside the timed region
                cuda_check(cudaEventRecord(start), "cudaEventRecord");
                custom_kernel(device.a, device.b, device.c, device.n);
                cuda_check(cudaEventRecord(end), "cudaEventRecord");
                cuda_check(cudaDeviceSynchronize(), "custom_kernel");
                float ms = 0;
                cuda_check(cudaEventElapsedTime(&ms, start, end), "cudaEventElapsedTime");
                samples.push_back(ms * 1e6);
                size_t runs = samples.size();
                mean = 0;
                for (double s : samples) mean += s;
                mean /= runs;
                double var = 0;
                for (double s : samples) var += (s - mean) * (s - mean);
                std_dev = runs > 1 ? std::sqrt(var / (runs - 1)) : 0.0;
                err = std_dev / std::sqrt(static_cast<double>(runs));
                double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
                if (runs >= 1000 || elapsed > max_time_s || (runs >= 10 && err < 0.001 * mean)) break;
            }
            error = device.run_and_check();  // still correct after the timed calls
            cudaFree(flush);
            cudaEventDestroy(start);
            cudaEventDestroy(end);
            if (!error.empty()) throw CudaError{error};
            out(prefix + "runs", samples.size());
            out(prefix + "mean", mean);
            out(prefix + "std", std_dev);
            out(prefix + "err", err);
            out(prefix + "best", *std::min_element(samples.begin(), samples.end()));
            out(prefix + "worst", *std::max_element(samples.begin(), samples.end()));
        } catch (const CudaError& e) {
            out(prefix + "status", "fail");
            out(prefix + "error", e.message);
            passed = false;
        }
    }
    return passed;
}

}  // namespace

int main(int argc, char** argv) {
    const char* fd = std::getenv("POPCORN_FD");
    if (fd == nullptr || argc < 3) {
        std::fprintf(stderr, "usage: POPCORN_FD=<fd> %s <mode> <tests-file>\n", argv[0]);
        return 111;
    }
    Out out{fdopen(std::atoi(fd), "w")};
    if (out.file == nullptr) return 111;
    std::string mode = argv[1];
    std::vector<Case> cases = read_cases(argv[2]);
    bool passed;
    if (mode == "test") {
        passed = test(out, cases);
    } else if (mode == "benchmark" || mode == "leaderboard" || mode == "profile") {
        const char* limit = std::getenv("HARNESS_MAX_TIME_S");
        passed = benchmark(out, cases, limit ? std::atof(limit) : (mode == "leaderboard" ? 4.0 : 2.0));
    } else {
        std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
        return 113;
    }
    out("check", passed ? "pass" : "fail");
    std::fclose(out.file);
    return passed ? 0 : 112;
}
