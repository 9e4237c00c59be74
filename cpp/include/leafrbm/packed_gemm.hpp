// Products with weights that stay constant over many calls: the Gibbs chains of inpainting and
// dreaming, and the temperatures of AIS. A BLAS GEMM repacks the whole weight matrix on every
// call (for a chain of 64 rows through a 4096 × 500 RBM that is a third of the product's time);
// here the weights are packed once into panels of 32 columns and every call only streams them
// through a register-blocked FMA micro-kernel (AVX-512: 8 rows × 32 columns, AVX2: 6 × 16).
//
// Every output element is one fused multiply-add chain over k in increasing order, starting
// from 0 (terms whose input is 0 are skipped where a group of rows shares the zero, which does
// not change the chain): the result of an element depends neither on the instruction set (AVX2
// or AVX-512), nor on the thread count, nor on which other rows are in the batch. CPUs without AVX2 and FMA
// (and double precision) use BLAS instead (packed_products_available()).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>

#include "blas.hpp"
#include "parallel.hpp"
#include "simd.hpp"

#if LEAFRBM_SIMD_DISPATCH_X86
#include <immintrin.h>
#endif

namespace leafrbm {

/// Columns per packed panel (two AVX-512 or four AVX2 registers of floats).
constexpr index_t packed_panel = 32;

/// Depth of the k blocks (a block of one panel, 256 KiB, stays in L2 across the rows).
constexpr index_t packed_k_block = 2048;

#if LEAFRBM_SIMD_DISPATCH_X86
// ------------------------------------------------------------------ micro-kernels
// kernel<MR, Listed>: c[r, 0..width) = Σ_k a[r, k] · panel[k, 0..32) (fma chain in increasing k)
// for r < MR, over k = 0 .. k_count−1, or (Listed) over k = ks[0 .. k_count) only: the columns
// where some of the MR rows is non-zero, since a zero term leaves an fma chain unchanged.
// `accumulate` continues the chains from c (k blocking).
// nonzero_columns: writes those k (ascending) of `rows` rows of a into ks, returns their count.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,fma,bmi")
namespace isa_avx512 {
struct PackedKernels {
  static constexpr int wide = 8, mid = 4;  // rows per micro-kernel

  template <int MR, bool Listed>
  static void kernel(const float* a, index_t lda, const float* panel, const std::int32_t* ks, index_t k_count,
                     float* c, index_t ldc, index_t width, bool accumulate) {
    __m512 acc[MR][2];
    const __mmask16 low = static_cast<__mmask16>(width >= 16 ? 0xFFFF : (1u << width) - 1u);
    const __mmask16 high = static_cast<__mmask16>(width >= 32 ? 0xFFFF : width <= 16 ? 0 : (1u << (width - 16)) - 1u);
    for (int r = 0; r < MR; ++r) {
      acc[r][0] = accumulate ? _mm512_maskz_loadu_ps(low, c + r * ldc) : _mm512_setzero_ps();
      acc[r][1] = accumulate ? _mm512_maskz_loadu_ps(high, c + r * ldc + 16) : _mm512_setzero_ps();
    }
    for (index_t i = 0; i < k_count; ++i) {
      const index_t k = Listed ? ks[i] : i;
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

  static index_t nonzero_columns(const float* a, index_t lda, int rows, index_t k_count, std::int32_t* ks) {
    index_t count = 0;
    const __m512i step = _mm512_set1_epi32(16);
    __m512i index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (index_t k = 0; k < k_count; k += 16) {
      const __mmask16 valid = static_cast<__mmask16>(k_count - k >= 16 ? 0xFFFF : (1u << (k_count - k)) - 1u);
      __mmask16 any = 0;
      for (int r = 0; r < rows; ++r)
        any |= _mm512_mask_cmp_ps_mask(valid, _mm512_maskz_loadu_ps(valid, a + r * lda + k), _mm512_setzero_ps(), _CMP_NEQ_UQ);
      // Compress in a register and store all 16 lanes (ks has 16 spare entries): a compressing
      // store to memory is microcoded and slow on some CPUs (AMD Zen 4).
      _mm512_storeu_si512(ks + count, _mm512_maskz_compress_epi32(any, index));
      count += _mm_popcnt_u32(any);
      index = _mm512_add_epi32(index, step);
    }
    return count;
  }
};
}  // namespace isa_avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi")
namespace isa_avx2 {
struct PackedKernels {
  static constexpr int wide = 6, mid = 3;  // rows per micro-kernel (6 × 16: 12 of 16 registers)

  // Each 32-column panel in two halves of 16 columns, so that 6 rows fit the 16 YMM registers.
  template <int MR, bool Listed>
  static void kernel(const float* a, index_t lda, const float* panel, const std::int32_t* ks, index_t k_count,
                     float* c, index_t ldc, index_t width, bool accumulate) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (index_t half = 0; half < 2 && 16 * half < width; ++half) {
      const int columns = static_cast<int>(std::min<index_t>(16, width - 16 * half));
      const __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(columns), lanes);
      const __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(columns - 8), lanes);
      const float* b = panel + 16 * half;
      float* out = c + 16 * half;
      __m256 acc[MR][2];
      for (int r = 0; r < MR; ++r) {
        acc[r][0] = accumulate ? _mm256_maskload_ps(out + r * ldc, mask0) : _mm256_setzero_ps();
        acc[r][1] = accumulate ? _mm256_maskload_ps(out + r * ldc + 8, mask1) : _mm256_setzero_ps();
      }
      for (index_t i = 0; i < k_count; ++i) {
        const index_t k = Listed ? ks[i] : i;
        const __m256 b0 = _mm256_loadu_ps(b + k * packed_panel), b1 = _mm256_loadu_ps(b + k * packed_panel + 8);
        for (int r = 0; r < MR; ++r) {
          const __m256 x = _mm256_broadcast_ss(a + r * lda + k);
          acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
      }
      for (int r = 0; r < MR; ++r) {
        _mm256_maskstore_ps(out + r * ldc, mask0, acc[r][0]);
        _mm256_maskstore_ps(out + r * ldc + 8, mask1, acc[r][1]);
      }
    }
  }

  static index_t nonzero_columns(const float* a, index_t lda, int rows, index_t k_count, std::int32_t* ks) {
    index_t count = 0, k = 0;
    for (; k + 8 <= k_count; k += 8) {
      int any = 0;
      for (int r = 0; r < rows; ++r)
        any |= _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(a + r * lda + k), _mm256_setzero_ps(), _CMP_NEQ_UQ));
      for (unsigned bits = static_cast<unsigned>(any); bits; bits &= bits - 1)
        ks[count++] = static_cast<std::int32_t>(k + __builtin_ctz(bits));
    }
    for (; k < k_count; ++k) {
      bool any = false;
      for (int r = 0; r < rows; ++r) any |= a[r * lda + k] != 0.0f;
      if (any) ks[count++] = static_cast<std::int32_t>(k);
    }
    return count;
  }
};
}  // namespace isa_avx2
#pragma GCC pop_options

namespace detail {
/// One k block of a packed product, for rows [0, m) and panels [p0, p1), with the micro-kernels
/// of `Kernels`: per group of rows, the all-zero columns are found once and skipped when they
/// are at least a quarter of the block.
template <class Kernels>
void packed_block(const float* a, index_t lda, index_t m, const float* panels, index_t panel_stride, index_t p0,
                  index_t p1, index_t n, index_t k_count, float* c, index_t ldc, bool accumulate) {
  std::int32_t ks[packed_k_block + 16];
  auto group = [&](auto rows_tag, index_t r) {
    constexpr int MR = decltype(rows_tag)::value;
    const float* rows = a + r * lda;
    const index_t listed = Kernels::nonzero_columns(rows, lda, MR, k_count, ks);
    const bool sparse = 4 * listed < 3 * k_count;
    for (index_t p = p0; p < p1; ++p) {
      const index_t width = std::min(packed_panel, n - p * packed_panel);
      const float* panel = panels + p * panel_stride;
      float* out = c + r * ldc + p * packed_panel;
      if (sparse)
        Kernels::template kernel<MR, true>(rows, lda, panel, ks, listed, out, ldc, width, accumulate);
      else
        Kernels::template kernel<MR, false>(rows, lda, panel, nullptr, k_count, out, ldc, width, accumulate);
    }
  };
  index_t r = 0;
  for (; r + Kernels::wide <= m; r += Kernels::wide) group(std::integral_constant<int, Kernels::wide>{}, r);
  for (; r + Kernels::mid <= m; r += Kernels::mid) group(std::integral_constant<int, Kernels::mid>{}, r);
  for (; r < m; ++r) group(std::integral_constant<int, 1>{}, r);
}
}  // namespace detail
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
  PackedMatrix(const float* w, index_t k, index_t n, bool transpose, int n_threads = 1)
      : k_(k), n_(n), panels_((n + packed_panel - 1) / packed_panel), transpose_(transpose),
        data_(static_cast<float*>(std::aligned_alloc(64, bytes(k, panels_))), &std::free) {
    if (!data_) throw std::bad_alloc();
    pack(w, n_threads);
  }

  /// Packs (again) from weights of the same shape, panels in parallel (training re-packs after
  /// every update).
  void pack(const float* w, int n_threads) {
    parallel_for(panels_, k_ * n_ >= (index_t{1} << 16) ? n_threads : 1, [&](index_t p) {
      const index_t first = p * packed_panel, width = std::min(packed_panel, n_ - first);
      float* panel = data_.get() + p * k_ * packed_panel;
      for (index_t kk = 0; kk < k_; ++kk) {
        float* row = panel + kk * packed_panel;
        for (index_t j = 0; j < width; ++j) row[j] = transpose_ ? w[(first + j) * k_ + kk] : w[kk * n_ + first + j];
        for (index_t j = width; j < packed_panel; ++j) row[j] = 0.0f;
      }
    });
  }

  index_t k() const { return k_; }
  index_t n() const { return n_; }
  index_t panels() const { return panels_; }

  /// c[r, cols of panels [p0, p1)] = a[r, :] · B for rows r < m (a: m × K, lda; c: ldc).
  void multiply(const float* a, index_t lda, index_t m, index_t p0, index_t p1, float* c, index_t ldc) const {
    const index_t stride = k_ * packed_panel;
    for (index_t k0 = 0; k0 < k_; k0 += packed_k_block) {
      const index_t count = std::min(packed_k_block, k_ - k0);
      const float* panels = data_.get() + k0 * packed_panel;
#if LEAFRBM_SIMD_DISPATCH_X86
      if (active_isa() == Isa::avx512)
        detail::packed_block<isa_avx512::PackedKernels>(a + k0, lda, m, panels, stride, p0, p1, n_, count, c, ldc, k0 > 0);
      else
        detail::packed_block<isa_avx2::PackedKernels>(a + k0, lda, m, panels, stride, p0, p1, n_, count, c, ldc, k0 > 0);
#else
      (void)a, (void)lda, (void)m, (void)p0, (void)p1, (void)c, (void)ldc, (void)count, (void)panels, (void)stride;
      throw std::logic_error("packed products need AVX2 and FMA");
#endif
    }
  }

 private:
  static std::size_t bytes(index_t k, index_t panels) {
    const std::size_t raw = static_cast<std::size_t>(k * panels * packed_panel) * sizeof(float);
    return std::max<std::size_t>(64, (raw + 63) / 64 * 64);
  }

  index_t k_, n_, panels_;
  bool transpose_;
  std::unique_ptr<float, decltype(&std::free)> data_;
};

/// An RBM layer's weights packed for both half-steps of a chain: up (v · Wᵀ: K = n_visible,
/// N = n_hidden) and down (h · W: K = n_hidden, N = n_visible).
struct PackedLayer {
  PackedMatrix up, down;
  PackedLayer(const float* weights, index_t n_hidden, index_t n_visible, int n_threads = 1)
      : up(weights, n_visible, n_hidden, true, n_threads), down(weights, n_hidden, n_visible, false, n_threads) {}
  void pack(const float* weights, int n_threads) {
    up.pack(weights, n_threads);
    down.pack(weights, n_threads);
  }
};

}  // namespace leafrbm
