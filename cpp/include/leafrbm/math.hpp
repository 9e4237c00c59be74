// Elementwise math written so that GCC vectorises it without -ffast-math. The definitions live
// in elementwise.inc (one copy per instruction set, see simd.hpp); scalar callers use the
// baseline copy, row kernels go through the dispatching wrappers below.
#pragma once

#include <cmath>
#include <cstdint>

#include "simd.hpp"

namespace leafrbm {

using isa_baseline::exp_taylor13;
using isa_baseline::fast_exp;
using isa_baseline::sigmoid;

/// log(1 + exp(x)) without overflow, in double for sums that need it.
inline double softplus(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

/// x[j] = sigmoid(x[j] + bias[j]) for j < n.
template <class T>
inline void sigmoid_row(T* x, const T* bias, index_t n) {
  LEAFRBM_SIMD_CALL(sigmoid_row<T>(x, bias, n));
}

/// v[i] = observed[i] where mask[i] != 0, for i < n.
template <class T>
inline void clamp_row(T* v, const T* observed, const std::uint8_t* mask, index_t n) {
  LEAFRBM_SIMD_CALL(clamp_row<T>(v, observed, mask, n));
}

/// sum[i] += x[i] in double, for i < n.
template <class T>
inline void accumulate_row(double* sum, const T* x, index_t n) {
  LEAFRBM_SIMD_CALL(accumulate_row<T>(sum, x, n));
}

/// Σ_j softplus(scale · x_j) in double (see elementwise.inc).
template <class T>
inline double softplus_sum(const T* x, index_t n, double scale) {
  LEAFRBM_SIMD_CALL(softplus_sum<T>(x, n, scale));
}

}  // namespace leafrbm
