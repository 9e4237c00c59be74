// C++ tests of the header-only core, against naive loops. No framework: each CHECK prints
// the failing expression and the run exits non-zero. Run under sanitizers by .ci/sanitize.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "leafrbm/math.hpp"
#include "leafrbm/packed_gemm.hpp"
#include "leafrbm/parallel.hpp"
#include "leafrbm/rbm.hpp"
#include "leafrbm/rng.hpp"

namespace {

int failures = 0;

#define CHECK(condition)                                                              \
  do {                                                                                \
    if (!(condition)) {                                                               \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      ++failures;                                                                     \
    }                                                                                 \
  } while (0)

using namespace leafrbm;

std::vector<float> random_matrix(index_t rows, index_t cols, std::uint64_t seed, float scale) {
  std::vector<float> out(static_cast<std::size_t>(rows * cols));
  for (index_t r = 0; r < rows; ++r) {
    normal_row<float>(seed, Stream(1), 0, static_cast<std::uint64_t>(r), 0, cols, out.data() + r * cols);
  }
  for (float& x : out) x *= scale;
  return out;
}

void test_rng_ranges_and_tiles() {
  // A row drawn in one piece equals the same row drawn in uneven pieces (tile independence).
  const index_t n = 1001;
  std::vector<float> whole(n), pieces(n);
  uniform_row<float>(42, Stream(1), 3, 7, 0, n, whole.data());
  const index_t cuts[] = {0, 5, 6, 64, 333, 1000, 1001};
  for (int i = 0; i + 1 < 7; ++i) {
    uniform_row<float>(42, Stream(1), 3, 7, cuts[i], cuts[i + 1], pieces.data() + cuts[i]);
  }
  double mean = 0.0;
  for (index_t i = 0; i < n; ++i) {
    CHECK(whole[i] == pieces[i]);
    CHECK(whole[i] >= 0.0f && whole[i] < 1.0f);
    mean += whole[i];
  }
  mean /= n;
  CHECK(std::fabs(mean - 0.5) < 0.05);
  std::vector<double> normals(n);
  normal_row<double>(1, Stream(2), 0, 0, 0, n, normals.data());
  double m = 0.0, v = 0.0;
  for (double x : normals) { CHECK(std::isfinite(x)); m += x; }
  m /= n;
  for (double x : normals) v += (x - m) * (x - m);
  v /= n;
  CHECK(std::fabs(m) < 0.15 && std::fabs(v - 1.0) < 0.2);
}

void test_gemm_against_naive() {
  const index_t m = 37, n = 29, k = 53;
  auto a = random_matrix(m, k, 1, 1.0f), b = random_matrix(n, k, 2, 1.0f);
  std::vector<float> c(static_cast<std::size_t>(m * n));
  gemm(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (index_t p = 0; p < k; ++p) s += double(a[i * k + p]) * b[j * k + p];
      CHECK(std::fabs(s - c[i * n + j]) < 1e-3);
    }
}

void test_passes_against_naive_and_thread_counts() {
  const index_t H = 70, V = 130, N = 150;  // several tiles in both tilings
  auto W = random_matrix(H, V, 3, 0.1f), bh = random_matrix(1, H, 4, 0.1f), bv = random_matrix(1, V, 5, 0.1f);
  std::vector<float> visible(static_cast<std::size_t>(N * V));
  uniform_row<float>(9, Stream(1), 0, 0, 0, N * V, visible.data());
  for (float& x : visible) x = x < 0.3f ? 1.0f : 0.0f;
  RBMView<const float> model{W.data(), bh.data(), bv.data(), H, V, VisibleType::bernoulli};
  std::vector<float> means1(N * H), samples1(N * H), means2(N * H), samples2(N * H);
  hidden_pass(model, visible.data(), N, means1.data(), samples1.data(), RandomKey{5, Stream(1), 0}, 1);
  hidden_pass(model, visible.data(), N, means2.data(), samples2.data(), RandomKey{5, Stream(1), 0}, 2);
  for (index_t r = 0; r < N; ++r)
    for (index_t j = 0; j < H; ++j) {
      double a = bh[j];
      for (index_t i = 0; i < V; ++i) a += double(visible[r * V + i]) * W[j * V + i];
      const double p = 1.0 / (1.0 + std::exp(-a));
      CHECK(std::fabs(p - means1[r * H + j]) < 1e-5);
      CHECK(samples1[r * H + j] == 0.0f || samples1[r * H + j] == 1.0f);
    }
  CHECK(means1 == means2);
  CHECK(samples1 == samples2);

  std::vector<float> vmeans(N * V), vsamples(N * V);
  visible_pass(model, samples1.data(), N, vmeans.data(), vsamples.data(), RandomKey{5, Stream(1), 1}, 2);
  for (float x : vmeans) CHECK(x > 0.0f && x < 1.0f);
  std::vector<float> fe(N);
  free_energy(model, visible.data(), N, fe.data(), 2);
  for (index_t r = 0; r < N; ++r) {
    double e = 0.0;
    for (index_t i = 0; i < V; ++i) e -= double(visible[r * V + i]) * bv[i];
    for (index_t j = 0; j < H; ++j) {
      double a = bh[j];
      for (index_t i = 0; i < V; ++i) a += double(visible[r * V + i]) * W[j * V + i];
      e -= std::log1p(std::exp(a));
    }
    CHECK(std::fabs(e - fe[r]) < 1e-3 * (1.0 + std::fabs(e)));
  }

  std::vector<float> chain1(visible), chain2(visible);
  const index_t done1 = gibbs_chain(model, chain1.data(), N, 5, 11, Stream(1), 0, static_cast<float*>(nullptr), 1, [] { return false; });
  const index_t done2 = gibbs_chain(model, chain2.data(), N, 5, 11, Stream(1), 0, static_cast<float*>(nullptr), 2, [] { return false; });
  CHECK(done1 == 5 && done2 == 5);
  CHECK(chain1 == chain2);
  int calls = 0;
  const index_t stopped = gibbs_chain(model, chain1.data(), N, 100, 11, Stream(1), 0, static_cast<float*>(nullptr), 2,
                                      [&] { return ++calls == 3; });
  CHECK(stopped == 3);
}

void test_parallel_for_rethrows() {
  bool caught = false;
  try {
    parallel_for(100, 2, [](index_t t) {
      if (t == 57) throw std::runtime_error("tile 57");
    });
  } catch (const std::runtime_error& error) {
    caught = std::string(error.what()) == "tile 57";
  }
  CHECK(caught);
  std::vector<int> hits(1000, 0);
  parallel_for(1000, 2, [&](index_t t) { hits[t] += 1; });
  for (int h : hits) CHECK(h == 1);
}

}  // namespace

/// The instruction sets of elementwise.inc this CPU runs, narrowest first.
std::vector<Isa> runnable_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::baseline, Isa::avx2, Isa::avx512})
    if (static_cast<int>(isa) <= static_cast<int>(supported_isa())) out.push_back(isa);
  return out;
}

void test_elementwise_copies_identical() {
  // Every compiled copy of the elementwise kernels gives the baseline's bits.
  const Isa original = active_isa();
  const index_t n = 1037;
  std::vector<float> x = random_matrix(1, n, 3, 4.0f);
  std::vector<float> bias = random_matrix(1, n, 4, 1.0f);
  std::vector<float> ref_u(n), ref_s(x), ref_b(n);
  std::vector<double> ref_ud(n);
  double ref_soft = 0.0;
  for (Isa isa : runnable_isas()) {
    set_active_isa(isa);
    std::vector<float> u(n), s(x), b(n);
    std::vector<double> ud(n);
    uniform_row<float>(11, Stream(3), 5, 9, 3, 3 + n, u.data());
    uniform_row<double>(11, Stream(3), 5, 9, 1, 1 + n, ud.data());
    sigmoid_row(s.data(), bias.data(), n);
    bernoulli_row(s.data(), n, 11, Stream(4), 2, 1, 7, b.data());
    const double soft = softplus_sum(x.data(), n, 0.7);
    if (isa == Isa::baseline) {
      ref_u = u, ref_ud = ud, ref_s = s, ref_b = b, ref_soft = soft;
      double naive = 0.0;
      for (float v : x) naive += softplus(0.7 * static_cast<double>(v));
      CHECK(std::fabs(soft - naive) < 1e-9 * std::fabs(naive));
      for (index_t j = 0; j < n; ++j) CHECK(std::fabs(s[j] - 1.0 / (1.0 + std::exp(-(double(x[j]) + bias[j])))) < 1e-6);
    } else {
      CHECK(u == ref_u && ud == ref_ud && s == ref_s && b == ref_b && soft == ref_soft);
    }
  }
  set_active_isa(original);
}

void test_packed_products_exact() {
  // Packed products equal an fma chain over k in increasing order, bit for bit, in every
  // instruction set that has them; shapes cover partial panels, row remainders, several k
  // blocks, and inputs whose columns are zero in whole row groups (the skipped terms).
  const Isa original = active_isa();
  struct Shape { index_t m, k, n; bool transpose; };
  const Shape shapes[] = {{1, 1, 1, false}, {13, 37, 45, true}, {9, 2100, 70, true}, {64, 500, 33, false},
                          {5, 4100, 32, false}};
  for (const Shape& shape : shapes) {
    const index_t m = shape.m, k = shape.k, n = shape.n;
    std::vector<float> w = random_matrix(shape.transpose ? n : k, shape.transpose ? k : n, 21, 0.3f);
    std::vector<float> a = random_matrix(m, k, 22, 1.0f);
    for (index_t r = 0; r < m; ++r)
      for (index_t kk = 0; kk < k; ++kk)
        if (kk % 3 == 0 || (kk % 5 == 1 && r % 2 == 0)) a[r * k + kk] = 0.0f;  // zero columns and scattered zeros
    std::vector<float> expected(static_cast<std::size_t>(m * n));
    for (index_t r = 0; r < m; ++r)
      for (index_t j = 0; j < n; ++j) {
        float acc = 0.0f;
        for (index_t kk = 0; kk < k; ++kk)
          acc = std::fma(a[r * k + kk], shape.transpose ? w[j * k + kk] : w[kk * n + j], acc);
        expected[r * n + j] = acc;
      }
    for (Isa isa : runnable_isas()) {
      set_active_isa(isa);
      if (!packed_products_available()) continue;
      const PackedMatrix packed(w.data(), k, n, shape.transpose);
      std::vector<float> out(static_cast<std::size_t>(m * n), -1.0f);
      // In two calls over disjoint panel ranges, as the chain's tiles do.
      const index_t half = packed.panels() / 2;
      packed.multiply(a.data(), k, m, 0, half, out.data(), n);
      packed.multiply(a.data(), k, m, half, packed.panels(), out.data(), n);
      CHECK(out == expected);
    }
  }
  set_active_isa(original);
}

void test_philox_known_answers_and_copies() {
  // Random123's known-answer vectors for Philox-4x32-10 (kat_vectors), then every compiled copy
  // of the vectorised philox_blocks against the scalar reference with the documented counter
  // layout (block, row, step ^ row >> 32, stream << 24 ^ step >> 32) and key = seed.
  struct Kat { std::uint32_t c[4], k[2], out[4]; };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& kat : kats) {
    std::uint32_t out[4];
    philox4x32_10(kat.c[0], kat.c[1], kat.c[2], kat.c[3], kat.k[0], kat.k[1], out);
    for (int i = 0; i < 4; ++i) CHECK(out[i] == kat.out[i]);
  }
  const std::uint64_t seed = 0x0123456789abcdefULL, step = 0x0000001200000034ULL, row = 0x0000000500000007ULL;
  const std::uint32_t stream = 9;
  const std::size_t n = 37, first = 1000;
  std::vector<std::uint32_t> expected(4 * n);
  for (std::size_t b = 0; b < n; ++b)
    philox4x32_10(static_cast<std::uint32_t>(first + b), static_cast<std::uint32_t>(row),
                  static_cast<std::uint32_t>(step) ^ static_cast<std::uint32_t>(row >> 32),
                  (stream << 24) ^ static_cast<std::uint32_t>(step >> 32), static_cast<std::uint32_t>(seed),
                  static_cast<std::uint32_t>(seed >> 32), expected.data() + 4 * b);
  std::vector<std::uint32_t> got(4 * n);
  isa_baseline::philox_blocks(seed, stream, step, row, first, n, got.data());
  CHECK(got == expected);
  if (static_cast<int>(supported_isa()) >= static_cast<int>(Isa::avx2)) {
    isa_avx2::philox_blocks(seed, stream, step, row, first, n, got.data());
    CHECK(got == expected);
  }
  if (supported_isa() == Isa::avx512) {
    isa_avx512::philox_blocks(seed, stream, step, row, first, n, got.data());
    CHECK(got == expected);
  }
}

int main() {
  test_rng_ranges_and_tiles();
  test_gemm_against_naive();
  test_passes_against_naive_and_thread_counts();
  test_parallel_for_rethrows();
  test_philox_known_answers_and_copies();
  test_elementwise_copies_identical();
  test_packed_products_exact();
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::puts("leafrbm C++ kernel tests: all passed");
  return 0;
}
