// Elementwise math written so that GCC vectorises it without -ffast-math.
#pragma once

#include <cstdint>
#include <cmath>
#include <cstring>

namespace leafrbm {

/// exp(x) by range reduction x = n·ln2 + r, |r| <= ln2/2, and a Taylor polynomial in r;
/// 2^n is built from the exponent bits. Error below 2 ulp for float, 4 ulp for double;
/// inputs are clamped to the finite range, so exp never returns inf or NaN.
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = static_cast<float>(static_cast<int>(x * 1.44269504088896341f + (x >= 0 ? 0.5f : -0.5f)));
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

/// Taylor series of exp(r) to degree 13, for |r| <= ln2/2 (shared by every double exp).
inline double exp_taylor13(double r) {
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return p;
}

inline double fast_exp(double x) {
  x = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  const double n = static_cast<double>(static_cast<std::int64_t>(x * 1.4426950408889634 + (x >= 0 ? 0.5 : -0.5)));
  const double r = (x - n * 6.93145751953125e-1) - n * 1.42860682030941723212e-6;
  const double p = exp_taylor13(r);
  const std::int64_t bits = (static_cast<std::int64_t>(n) + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

/// Logistic sigmoid 1 / (1 + exp(-x)).
template <class T> inline T sigmoid(T x) { return T(1) / (T(1) + fast_exp(-x)); }

/// log(1 + exp(x)) without overflow, in double for sums that need it.
inline double softplus(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

}  // namespace leafrbm
