// Counter-based random numbers (Philox-4x32-10, Salmon et al., SC'11).
//
// Every random number in leafrbm is a pure function of (seed, stream, step, row, column):
// no generator state is carried between threads, so results do not depend on how work is
// split across threads. `stream` names the purpose of the draw (see Stream), `step` counts
// minibatches / Gibbs steps, `row` and `column` index the element.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "simd.hpp"

namespace leafrbm {

/// Purposes of random draws; distinct streams never share numbers.
enum class Stream : std::uint32_t {
  hidden_positive = 1,   // CD: sample h from p(h | data)
  visible_chain = 2,     // negative phase: sample v from p(v | h)
  hidden_chain = 3,      // negative phase: sample h from p(h | v)
  user_hidden = 4,       // sample_hidden / gibbs called by the user
  user_visible = 5,
  user_normal = 6,       // Gaussian draws requested by the user
  user_uniform = 7,
  ais = 8,               // annealed importance sampling chains
  inpaint = 9,           // clamped Gibbs chains
  dream = 10,            // free-running chains
  tsne = 11,
};

namespace detail {

inline void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t product = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(product >> 32);
  lo = static_cast<std::uint32_t>(product);
}

}  // namespace detail

/// Philox-4x32-10 of one counter block: four 32-bit words from a 128-bit counter and a 64-bit
/// key. The scalar reference for philox_blocks (elementwise.inc), which the kernels use.
inline void philox4x32_10(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3,
                          std::uint32_t k0, std::uint32_t k1, std::uint32_t out[4]) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    detail::mulhilo(M0, c0, hi0, lo0);
    detail::mulhilo(M1, c2, hi1, lo1);
    const std::uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += W0; k1 += W1;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/// Fills out[0 .. end-begin) with uniforms for columns [begin, end) of (seed, stream, step, row).
/// Column c always gets the same number, whatever range it is asked in.
template <class T>
inline void uniform_row(std::uint64_t seed, Stream stream, std::uint64_t step, std::uint64_t row,
                        std::size_t begin, std::size_t end, T* out) {
  LEAFRBM_SIMD_CALL(uniform_row<T>(seed, static_cast<std::uint32_t>(stream), step, row, begin, end, out));
}

/// out[j] = [u_j < p[j]] for j < n, u_j the uniform of column (column + j) of (seed, stream, step, row).
template <class T>
inline void bernoulli_row(const T* p, index_t n, std::uint64_t seed, Stream stream, std::uint64_t step,
                          std::uint64_t row, std::size_t column, T* out) {
  LEAFRBM_SIMD_CALL(bernoulli_row<T>(p, n, seed, static_cast<std::uint32_t>(stream), step, row, column, out));
}

/// Standard normal numbers for columns [begin, end): Box-Muller on the uniforms of
/// column pairs (2j, 2j+1), so column c's value does not depend on the range asked.
template <class T>
void normal_row(std::uint64_t seed, Stream stream, std::uint64_t step, std::uint64_t row,
                std::size_t begin, std::size_t end, T* out) {
  constexpr std::size_t chunk = 256;
  T uniforms[chunk];
  std::size_t column = begin;
  while (column < end) {
    const std::size_t pair_begin = column & ~std::size_t{1};
    const std::size_t pair_end = std::min(pair_begin + chunk, (end + 1) & ~std::size_t{1});
    uniform_row<T>(seed, stream, step, row, pair_begin, pair_end, uniforms);
    for (std::size_t c = pair_begin; c < pair_end; c += 2) {
      const T u1 = T(1) - uniforms[c - pair_begin];  // in (0, 1]
      const T u2 = uniforms[c - pair_begin + 1];
      const T radius = std::sqrt(T(-2) * std::log(u1));
      const T angle = T(6.283185307179586476925) * u2;
      if (c >= column && c < end) out[c - begin] = radius * std::cos(angle);
      if (c + 1 >= column && c + 1 < end) out[c + 1 - begin] = radius * std::sin(angle);
    }
    column = pair_end;
  }
}

}  // namespace leafrbm
