// Products with weights that stay constant over many calls: the Gibbs chains of inpainting and
// dreaming, and the temperatures of AIS. A BLAS GEMM repacks the whole weight matrix on every
// call (for a chain of 64 rows through a 4096 × 500 RBM that is a third of the product's time);
// here the weights are packed once into panels of 32 columns and every call only streams them
// through a register-blocked FMA micro-kernel (AVX-512: 8 rows × 32 columns, AVX2: 2 × 32).
//
// Every output element is one fused multiply-add chain over k in increasing order, starting
// from 0: the result of an element depends neither on the instruction set (AVX2 or AVX-512),
// nor on the thread count, nor on which other rows are in the batch. CPUs without AVX2 and FMA
// (and double precision) use BLAS instead (packed_products_available()).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "blas.hpp"
#include "simd.hpp"

#if LEAFRBM_SIMD_DISPATCH_X86
#include <immintrin.h>
#endif

namespace leafrbm {

/// Columns per packed panel (two AVX-512 or four AVX2 registers of floats).
constexpr index_t packed_panel = 32;

#if LEAFRBM_SIMD_DISPATCH_X86
// ------------------------------------------------------------------ micro-kernels
// c[r, 0..width) = Σ_k a[r, k] · panel[k, 0..32) (fma chain in k order) for r < MR rows; the
// panel holds k_count rows of 32 floats. `accumulate` continues the chains from c (k blocking).
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,fma")
namespace isa_avx512 {
template <int MR>
inline void packed_kernel(const float* a, index_t lda, const float* panel, index_t k_count, float* c,
                          index_t ldc, index_t width, bool accumulate) {
  __m512 acc[MR][2];
  const __mmask16 low = static_cast<__mmask16>(width >= 16 ? 0xFFFF : (1u << width) - 1u);
  const __mmask16 high = static_cast<__mmask16>(width >= 32 ? 0xFFFF : width <= 16 ? 0 : (1u << (width - 16)) - 1u);
  for (int r = 0; r < MR; ++r) {
    if (accumulate) {
      acc[r][0] = _mm512_maskz_loadu_ps(low, c + r * ldc);
      acc[r][1] = _mm512_maskz_loadu_ps(high, c + r * ldc + 16);
    } else {
      acc[r][0] = _mm512_setzero_ps();
      acc[r][1] = _mm512_setzero_ps();
    }
  }
  for (index_t k = 0; k < k_count; ++k) {
    const __m512 b0 = _mm512_loadu_ps(panel + k * packed_panel);
    const __m512 b1 = _mm512_loadu_ps(panel + k * packed_panel + 16);
    for (int r = 0; r < MR; ++r) {
      const __m512 x = _mm512_set1_ps(a[r * lda + k]);
      acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm512_mask_storeu_ps(c + r * ldc, low, acc[r][0]);
    _mm512_mask_storeu_ps(c + r * ldc + 16, high, acc[r][1]);
  }
}

inline void packed_rows(const float* a, index_t lda, index_t m, const float* panel, index_t k_count, float* c,
                        index_t ldc, index_t width, bool accumulate) {
  index_t r = 0;
  for (; r + 8 <= m; r += 8) packed_kernel<8>(a + r * lda, lda, panel, k_count, c + r * ldc, ldc, width, accumulate);
  for (; r + 4 <= m; r += 4) packed_kernel<4>(a + r * lda, lda, panel, k_count, c + r * ldc, ldc, width, accumulate);
  for (; r < m; ++r) packed_kernel<1>(a + r * lda, lda, panel, k_count, c + r * ldc, ldc, width, accumulate);
}
}  // namespace isa_avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace isa_avx2 {
template <int MR>
inline void packed_kernel(const float* a, index_t lda, const float* panel, index_t k_count, float* c,
                          index_t ldc, index_t width, bool accumulate) {
  __m256 acc[MR][4];
  alignas(32) float buffer[packed_panel];
  for (int r = 0; r < MR; ++r) {
    std::memset(buffer, 0, sizeof(buffer));
    if (accumulate) std::memcpy(buffer, c + r * ldc, static_cast<std::size_t>(width) * sizeof(float));
    for (int q = 0; q < 4; ++q) acc[r][q] = _mm256_load_ps(buffer + 8 * q);
  }
  for (index_t k = 0; k < k_count; ++k) {
    const float* b = panel + k * packed_panel;
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    const __m256 b2 = _mm256_loadu_ps(b + 16), b3 = _mm256_loadu_ps(b + 24);
    for (int r = 0; r < MR; ++r) {
      const __m256 x = _mm256_set1_ps(a[r * lda + k]);
      acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
      acc[r][2] = _mm256_fmadd_ps(x, b2, acc[r][2]);
      acc[r][3] = _mm256_fmadd_ps(x, b3, acc[r][3]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    for (int q = 0; q < 4; ++q) _mm256_store_ps(buffer + 8 * q, acc[r][q]);
    std::memcpy(c + r * ldc, buffer, static_cast<std::size_t>(width) * sizeof(float));
  }
}

inline void packed_rows(const float* a, index_t lda, index_t m, const float* panel, index_t k_count, float* c,
                        index_t ldc, index_t width, bool accumulate) {
  index_t r = 0;
  for (; r + 2 <= m; r += 2) packed_kernel<2>(a + r * lda, lda, panel, k_count, c + r * ldc, ldc, width, accumulate);
  for (; r < m; ++r) packed_kernel<1>(a + r * lda, lda, panel, k_count, c + r * ldc, ldc, width, accumulate);
}
}  // namespace isa_avx2
#pragma GCC pop_options
#endif  // LEAFRBM_SIMD_DISPATCH_X86

/// Whether packed products can run now (the active instruction set has AVX2 and FMA).
inline bool packed_products_available() {
#if LEAFRBM_SIMD_DISPATCH_X86
  return active_isa() >= Isa::avx2 && (active_isa() == Isa::avx512 || __builtin_cpu_supports("fma"));
#else
  return false;
#endif
}

/// B = op(W) (K × N) of a row-major float matrix W, packed into ⌈N / 32⌉ panels of K × 32 floats
/// (columns beyond N are zeros). transpose: W is N × K and B = Wᵀ; else W is K × N and B = W.
class PackedMatrix {
 public:
  PackedMatrix(const float* w, index_t k, index_t n, bool transpose)
      : k_(k), n_(n), panels_((n + packed_panel - 1) / packed_panel),
        data_(static_cast<float*>(std::aligned_alloc(64, bytes(k, panels_))), &std::free) {
    if (!data_) throw std::bad_alloc();
    float* out = data_.get();
    for (index_t p = 0; p < panels_; ++p) {
      const index_t first = p * packed_panel, width = std::min(packed_panel, n - first);
      float* panel = out + p * k * packed_panel;
      for (index_t kk = 0; kk < k; ++kk) {
        float* row = panel + kk * packed_panel;
        for (index_t j = 0; j < width; ++j) row[j] = transpose ? w[(first + j) * k + kk] : w[kk * n + first + j];
        for (index_t j = width; j < packed_panel; ++j) row[j] = 0.0f;
      }
    }
  }

  index_t k() const { return k_; }
  index_t n() const { return n_; }
  index_t panels() const { return panels_; }

  /// c[r, cols of panels [p0, p1)] = a[r, :] · B for rows r < m (a: m × K, lda; c: ldc).
  void multiply(const float* a, index_t lda, index_t m, index_t p0, index_t p1, float* c, index_t ldc) const {
    constexpr index_t k_block = 2048;  // a panel block of 256 KiB stays in L2 across the rows
    for (index_t p = p0; p < p1; ++p) {
      const index_t first = p * packed_panel, width = std::min(packed_panel, n_ - first);
      const float* panel = data_.get() + p * k_ * packed_panel;
      for (index_t k0 = 0; k0 < k_; k0 += k_block) {
        const index_t count = std::min(k_block, k_ - k0);
        rows(a + k0, lda, m, panel + k0 * packed_panel, count, c + first, ldc, width, k0 > 0);
      }
    }
  }

 private:
  static std::size_t bytes(index_t k, index_t panels) {
    const std::size_t raw = static_cast<std::size_t>(k * panels * packed_panel) * sizeof(float);
    return std::max<std::size_t>(64, (raw + 63) / 64 * 64);
  }

  static void rows(const float* a, index_t lda, index_t m, const float* panel, index_t k_count, float* c,
                   index_t ldc, index_t width, bool accumulate) {
#if LEAFRBM_SIMD_DISPATCH_X86
    if (active_isa() == Isa::avx512) return isa_avx512::packed_rows(a, lda, m, panel, k_count, c, ldc, width, accumulate);
    return isa_avx2::packed_rows(a, lda, m, panel, k_count, c, ldc, width, accumulate);
#else
    (void)a, (void)lda, (void)m, (void)panel, (void)k_count, (void)c, (void)ldc, (void)width, (void)accumulate;
    throw std::logic_error("packed products need AVX2 and FMA");
#endif
  }

  index_t k_, n_, panels_;
  std::unique_ptr<float, decltype(&std::free)> data_;
};

/// An RBM layer's weights packed for both half-steps of a chain: up (v · Wᵀ: K = n_visible,
/// N = n_hidden) and down (h · W: K = n_hidden, N = n_visible).
struct PackedLayer {
  PackedMatrix up, down;
  PackedLayer(const float* weights, index_t n_hidden, index_t n_visible)
      : up(weights, n_visible, n_hidden, true), down(weights, n_hidden, n_visible, false) {}
};

}  // namespace leafrbm
