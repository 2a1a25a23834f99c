// The interface between the evaluator (eval.cu) and a submission (submission.cu).
#pragma once

// c[i] = a[i] + b[i] for i < n. a, b and c are device arrays of n floats; launch on the default stream.
// The evaluator synchronizes the device after the call: the work must be done by then.
void custom_kernel(const float* a, const float* b, float* c, int n);
