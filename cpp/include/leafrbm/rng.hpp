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

/// Philox-4x32-10: four 32-bit words from a 128-bit counter and a 64-bit key.
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

/// Philox over `n` consecutive counter blocks: block b uses counter word 0 = first_block + b.
/// Written as independent lanes so the compiler vectorises it; writes 4·n words.
inline void philox_blocks(std::uint64_t seed, std::uint32_t stream, std::uint64_t step,
                          std::uint64_t row, std::uint64_t first_block, std::size_t n,
                          std::uint32_t* out) {
  constexpr std::size_t lanes = 16;
  const std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  // Counter layout: (block, row, step low 32 bits, stream in the top 8 bits | step bits 32..55).
  const std::uint32_t c1 = static_cast<std::uint32_t>(row);
  const std::uint32_t c2 = static_cast<std::uint32_t>(step) ^ static_cast<std::uint32_t>(row >> 32);
  const std::uint32_t c3 = (stream << 24) ^ static_cast<std::uint32_t>((step >> 32) & 0xFFFFFFu);
  for (std::size_t base = 0; base < n; base += lanes) {
    const std::size_t count = (n - base < lanes) ? n - base : lanes;
    std::uint32_t x0[lanes], x1[lanes], x2[lanes], x3[lanes];
    for (std::size_t l = 0; l < lanes; ++l) {
      x0[l] = static_cast<std::uint32_t>(first_block + base + l);
      x1[l] = c1; x2[l] = c2; x3[l] = c3;
    }
    std::uint32_t key0 = k0, key1 = k1;
    for (int round = 0; round < 10; ++round) {
      for (std::size_t l = 0; l < lanes; ++l) {
        const std::uint64_t p0 = static_cast<std::uint64_t>(0xD2511F53u) * x0[l];
        const std::uint64_t p1 = static_cast<std::uint64_t>(0xCD9E8D57u) * x2[l];
        const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ x1[l] ^ key0;
        const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ x3[l] ^ key1;
        x1[l] = static_cast<std::uint32_t>(p1);
        x3[l] = static_cast<std::uint32_t>(p0);
        x0[l] = n0; x2[l] = n2;
      }
      key0 += 0x9E3779B9u; key1 += 0xBB67AE85u;
    }
    for (std::size_t l = 0; l < count; ++l) {
      out[4 * (base + l) + 0] = x0[l];
      out[4 * (base + l) + 1] = x1[l];
      out[4 * (base + l) + 2] = x2[l];
      out[4 * (base + l) + 3] = x3[l];
    }
  }
}

/// Uniform in [0, 1) from one 32-bit word (float: 24 bits) or two words (double: 53 bits).
inline float uniform_from_bits(std::uint32_t word, float) { return static_cast<float>(word >> 8) * 0x1.0p-24f; }
inline double uniform_from_bits(std::uint32_t hi, std::uint32_t lo, double) {
  return static_cast<double>((static_cast<std::uint64_t>(hi) << 21) ^ (lo >> 11)) * 0x1.0p-53;
}

/// Number of values of type T that one Philox call yields.
template <class T> constexpr std::size_t values_per_block() { return sizeof(T) == 4 ? 4 : 2; }

/// Fills out[0 .. end-begin) with uniforms for columns [begin, end) of (seed, stream, step, row).
/// Column c always gets the same number, whatever range it is asked in.
template <class T>
void uniform_row(std::uint64_t seed, Stream stream, std::uint64_t step, std::uint64_t row,
                 std::size_t begin, std::size_t end, T* out) {
  constexpr std::size_t per_block = values_per_block<T>();
  constexpr std::size_t chunk_blocks = 64;
  std::uint32_t bits[4 * chunk_blocks];
  std::size_t column = begin;
  while (column < end) {
    const std::size_t first_block = column / per_block;
    const std::size_t last_block = (end - 1) / per_block;
    const std::size_t n_blocks = std::min<std::size_t>(chunk_blocks, last_block - first_block + 1);
    philox_blocks(seed, static_cast<std::uint32_t>(stream), step, row, first_block, n_blocks, bits);
    const std::size_t chunk_end = std::min(end, (first_block + n_blocks) * per_block);
    for (; column < chunk_end; ++column) {
      const std::size_t offset = column - first_block * per_block;
      if constexpr (sizeof(T) == 4) {
        out[column - begin] = uniform_from_bits(bits[offset], T{});
      } else {
        out[column - begin] = uniform_from_bits(bits[2 * offset], bits[2 * offset + 1], T{});
      }
    }
  }
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
