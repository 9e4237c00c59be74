// Partition functions of RBMs: exact enumeration of the smaller layer, and annealed importance
// sampling (Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks",
// ICML 2008).
//
// AIS anneals from a base-rate model p_A(v) ∝ exp(b_A·v) (no weights, 2^H hidden states) to the
// RBM B with the unnormalised intermediate distributions
//   p*_β(v) = exp((1−β) b_A·v + β b_B·v) · Π_j (1 + exp(β (W_j·v + c_j))),   β_0 = 0 < … < β_K = 1,
// so that log Z_0 = H log 2 + Σ_i softplus(b_A,i). For Gaussian visibles of unit variance the
// base model is N(b_A, I) and the intermediate distributions the geometric averages
//   p*_β(v) = exp(−½(1−β)‖v − b_A‖² − ½β‖v − b_B‖²) · Π_j (1 + exp(β (W_j·v + c_j))),
// (log Z_0 = H log 2 + (V/2) log 2π), whose visible conditional is N((1−β) b_A + β (b_B + Wᵀh), I).
// Run r carries log w_r = Σ_k log p*_k(v_k) −
// log p*_{k−1}(v_k), with v_k drawn by one Gibbs transition that leaves p_{k−1} invariant.
// Each temperature costs two products per tile of runs (W·v and Wᵀ·h, with the weights packed
// once for the whole run, or BLAS) and row kernels of elementwise.inc; log weights are
// accumulated in double per run, in temperature order.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "blas.hpp"
#include "math.hpp"
#include "parallel.hpp"
#include "rbm.hpp"
#include "rng.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace leafrbm {

namespace detail {

/// log Σ exp over (max, sum) pairs combined in order.
struct LogSumExp {
  double max = -std::numeric_limits<double>::infinity();
  double sum = 0.0;
  void add(double value) {
    if (value <= max) {
      sum += std::exp(value - max);
    } else {
      sum = sum * std::exp(max - value) + 1.0;
      max = value;
    }
  }
  void merge(const LogSumExp& other) {
    if (other.sum == 0.0) return;
    if (other.max <= max) {
      sum += other.sum * std::exp(other.max - max);
    } else {
      sum = sum * std::exp(max - other.max) + other.sum;
      max = other.max;
    }
  }
  double value() const { return sum == 0.0 ? -std::numeric_limits<double>::infinity() : max + std::log(sum); }
};

/// One AIS run's hidden row (see elementwise.inc), in the active instruction set.
template <class T>
inline double ais_hidden_row(T* a, const T* bias, index_t n, double beta, double beta_previous, std::uint64_t seed,
                             std::uint64_t step, std::uint64_t row, T* scratch, T* h) {
  LEAFRBM_SIMD_CALL(ais_hidden_row<T>(a, bias, n, beta, beta_previous, seed, static_cast<std::uint32_t>(Stream::ais),
                                      step, row, scratch, h));
}

/// One AIS run's visible row (see elementwise.inc), in the active instruction set.
template <class T>
inline void ais_visible_row(const T* a, const T* base_bias, const T* bias, index_t n, double beta, std::uint64_t seed,
                            std::uint64_t step, std::uint64_t row, T* scratch, T* v) {
  LEAFRBM_SIMD_CALL(ais_visible_row<T>(a, base_bias, bias, n, beta, seed, static_cast<std::uint32_t>(Stream::ais),
                                       step, row, scratch, v));
}

}  // namespace detail

/// Exact log Z of an RBM by enumerating all 2^n states of its smaller layer (n <= 30).
/// Enumerating the hidden layer works for Bernoulli and Gaussian (unit variance) visibles:
///   Bernoulli: log Z = logsumexp_h [c·h + Σ_i softplus(b_i + (Wᵀh)_i)]
///   Gaussian:  log Z = logsumexp_h [c·h + ½‖b + Wᵀh‖² − ½‖b‖²] + (V/2) log 2π
/// Enumerating the visible layer (Bernoulli only): logsumexp_v [b·v + Σ_j softplus(c_j + W_j·v)].
/// Work is cut in blocks of 256 states; each block's log-sum-exp is merged in block order.
template <class T>
double exact_log_partition(const RBMView<const T>& model, bool enumerate_hidden, int n_threads) {
  const index_t H = model.n_hidden, V = model.n_visible;
  const bool gaussian = model.visible_type == VisibleType::gaussian;
  if (gaussian && !enumerate_hidden)
    throw std::invalid_argument("exact log Z of a Gaussian RBM enumerates the hidden layer");
  const index_t n_bits = enumerate_hidden ? H : V;
  const index_t other = enumerate_hidden ? V : H;
  if (n_bits > 30) throw std::invalid_argument("exact log Z: the enumerated layer has more than 30 units");
  const index_t n_states = index_t{1} << n_bits;
  const Tiling plan{n_states, 256};
  std::vector<detail::LogSumExp> partial(static_cast<std::size_t>(plan.count()));
  const T* own_bias = enumerate_hidden ? model.hidden_bias : model.visible_bias;
  const T* other_bias = enumerate_hidden ? model.visible_bias : model.hidden_bias;
  double bias_norm = 0.0;
  if (gaussian)
    for (index_t i = 0; i < V; ++i) bias_norm += 0.5 * static_cast<double>(model.visible_bias[i]) * model.visible_bias[i];
  parallel_for(plan.count(), n_threads, [&](index_t t) {
    const Range block = plan[t];
    const index_t rows = block.size();
    std::vector<T> states(static_cast<std::size_t>(rows * n_bits));
    std::vector<T> activation(static_cast<std::size_t>(rows * other));
    for (index_t r = 0; r < rows; ++r) {
      const std::uint64_t code = static_cast<std::uint64_t>(block.begin + r);
      for (index_t b = 0; b < n_bits; ++b) states[r * n_bits + b] = static_cast<T>((code >> b) & 1u);
    }
    // Hidden states: activation = h · W (rows × V); visible states: activation = v · Wᵀ (rows × H).
    gemm(false, !enumerate_hidden, rows, other, n_bits, T(1), states.data(), n_bits, model.weights, V, T(0), activation.data(), other);
    detail::LogSumExp lse;
    for (index_t r = 0; r < rows; ++r) {
      const T* s = states.data() + r * n_bits;
      T* a = activation.data() + r * other;
      double term = 0.0;
      for (index_t b = 0; b < n_bits; ++b) term += static_cast<double>(s[b]) * own_bias[b];
      if (gaussian) {
        double square = 0.0;
        for (index_t i = 0; i < V; ++i) {
          const double m = static_cast<double>(a[i]) + other_bias[i];
          square += m * m;
        }
        term += 0.5 * square - bias_norm;
      } else {
        for (index_t i = 0; i < other; ++i) a[i] += other_bias[i];
        term += softplus_sum(a, other, 1.0);
      }
      lse.add(term);
    }
    partial[t] = lse;
  });
  detail::LogSumExp total;
  for (const auto& p : partial) total.merge(p);
  double result = total.value();
  if (gaussian) result += 0.5 * static_cast<double>(V) * std::log(2.0 * 3.14159265358979323846);
  return result;
}

/// Annealed importance sampling of an RBM's log Z (Bernoulli or unit-variance Gaussian visibles).
/// `base_visible_bias` (n_visible) is b_A; `betas` (n_betas >= 2) rises from 0 to 1.
/// Writes each run's log weight into log_weights (n_runs) and returns log Z_0 (the base model's).
/// The caller estimates log Z = log Z_0 + log mean exp(log_weights). Returns the temperatures
/// done through `done` (fewer than n_betas − 1 when should_stop() returned true).
///
/// Notes: runs are independent, so the runs are cut into a few fixed tiles (by n_runs only) and
/// each tile anneals through every temperature on its own, with its own two GEMMs per
/// temperature: no barrier per temperature, which matters on a busy machine where a barrier
/// waits for a descheduled thread. should_stop() is asked by the calling thread only.
template <class T, class StopFn>
double ais_log_weights(const RBMView<const T>& model, const T* base_visible_bias, const double* betas,
                       index_t n_betas, index_t n_runs, std::uint64_t seed, double* log_weights, index_t* done,
                       int n_threads, StopFn&& should_stop) {
  const index_t H = model.n_hidden, V = model.n_visible;
  const bool gaussian = model.visible_type == VisibleType::gaussian;
  if (n_betas < 2) throw std::invalid_argument("AIS needs at least two temperatures");
  if (n_runs < 1) throw std::invalid_argument("AIS needs at least one run");
  const Stream stream = Stream::ais;
  n_threads = threads_for_work(n_threads, 2.0 * static_cast<double>(n_runs) * static_cast<double>(H) * static_cast<double>(V));
  // b_B − b_A for the visible part of the log-weight increments.
  std::vector<double> bias_difference(static_cast<std::size_t>(V));
  for (index_t i = 0; i < V; ++i)
    bias_difference[i] = static_cast<double>(model.visible_bias[i]) - static_cast<double>(base_visible_bias[i]);
  double log_z0 = static_cast<double>(H) * std::log(2.0);
  // Gaussian: ½(‖b_B‖² − ‖b_A‖²), the constant of ½‖v − b_A‖² − ½‖v − b_B‖² = v·(b_B − b_A) − it.
  double half_norm_difference = 0.0;
  if (gaussian) {
    log_z0 += 0.5 * static_cast<double>(V) * std::log(2.0 * 3.14159265358979323846);
    for (index_t i = 0; i < V; ++i) {
      const double b = model.visible_bias[i], a = base_visible_bias[i];
      half_norm_difference += 0.5 * (b * b - a * a);
    }
  } else {
    for (index_t i = 0; i < V; ++i) log_z0 += softplus(static_cast<double>(base_visible_bias[i]));
  }
  std::fill(log_weights, log_weights + n_runs, 0.0);

  // Tiles of 48 to 128 runs: each GEMM repacks the whole weight matrix, so fewer, taller tiles
  // cost less (two tiles of 50 for the usual 100 runs: one per thread on 2 cores); the tiling
  // depends on n_runs only, so results do not depend on the thread count.
  const index_t tile_rows = std::min<index_t>(128, std::max<index_t>(48, (n_runs + 1) / 2));
  const Tiling run_plan{n_runs, tile_rows};
  const index_t K = n_betas - 1;
  std::atomic<bool> stop{false};
  std::atomic<index_t> completed{K};
  // The weights are packed once for every temperature's two products (BLAS when unavailable).
  const auto packed = detail::pack_layer(model, n_threads);
  auto up = [&](const T* v, index_t m, T* out) {
    if constexpr (std::is_same_v<T, float>) {
      if (packed) return packed->up.multiply(v, V, m, 0, packed->up.panels(), out, H);
    }
    gemm(false, true, m, H, V, T(1), v, V, model.weights, V, T(0), out, H);
  };
  auto down = [&](const T* h, index_t m, T* out) {
    if constexpr (std::is_same_v<T, float>) {
      if (packed) return packed->down.multiply(h, H, m, 0, packed->down.panels(), out, V);
    }
    gemm(false, false, m, V, H, T(1), h, H, model.weights, V, T(0), out, V);
  };

  parallel_for(run_plan.count(), n_threads, [&](index_t t) {
    const Range runs = run_plan[t];
    const index_t m = runs.size();
    std::vector<T> visible(static_cast<std::size_t>(m * V)), hidden(static_cast<std::size_t>(m * H));
    std::vector<T> activation(hidden.size()), visible_activation(visible.size());
    std::vector<T> uniforms(static_cast<std::size_t>(std::max(H, V)));
    // v_0 ~ p_A: independent Bernoulli(sigmoid(b_A)), or N(b_A, I).
    for (index_t r = 0; r < m; ++r) {
      const std::uint64_t run = static_cast<std::uint64_t>(runs.begin + r);
      T* v = visible.data() + r * V;
      if (gaussian) {
        normal_row<T>(seed, stream, 0, run, 0, static_cast<std::size_t>(V), v);
        for (index_t i = 0; i < V; ++i) v[i] += base_visible_bias[i];
      } else {
        uniform_row<T>(seed, stream, 0, run, 0, static_cast<std::size_t>(V), uniforms.data());
        for (index_t i = 0; i < V; ++i) v[i] = uniforms[i] < sigmoid(base_visible_bias[i]) ? T(1) : T(0);
      }
    }
#ifdef _OPENMP
    const bool caller = omp_get_thread_num() == 0;
#else
    const bool caller = true;
#endif
    for (index_t k = 1; k <= K; ++k) {
      const double beta = betas[k], beta_previous = betas[k - 1];
      const bool transition = k < K;
      const std::uint64_t step = 2 * static_cast<std::uint64_t>(k);
      // a = v·Wᵀ + c; log w += Σ_j softplus(β a_j) − softplus(β' a_j) + (β − β')(b_B − b_A)·v; h ~ σ(β a).
      up(visible.data(), m, activation.data());
      for (index_t r = 0; r < m; ++r) {
        const index_t run = runs.begin + r;
        double increment = detail::ais_hidden_row<T>(
            activation.data() + r * H, model.hidden_bias, H, beta, beta_previous, seed, step,
            static_cast<std::uint64_t>(run), uniforms.data(), transition ? hidden.data() + r * H : nullptr);
        double visible_term = 0.0;
        const T* v = visible.data() + r * V;
        for (index_t i = 0; i < V; ++i) visible_term += bias_difference[i] * static_cast<double>(v[i]);
        log_weights[run] += increment + (beta - beta_previous) * (visible_term - half_norm_difference);
      }
      if (!transition) break;
      // v ~ σ((1−β) b_A + β (h·W + b_B)), or N((1−β) b_A + β (h·W + b_B), I).
      down(hidden.data(), m, visible_activation.data());
      for (index_t r = 0; r < m; ++r) {
        const std::uint64_t run = static_cast<std::uint64_t>(runs.begin + r);
        const T* a = visible_activation.data() + r * V;
        T* v = visible.data() + r * V;
        if (gaussian) {
          normal_row<T>(seed, stream, step + 1, run, 0, static_cast<std::size_t>(V), v);
          const T beta_t = static_cast<T>(beta), one_minus_beta = static_cast<T>(1.0 - beta);
          for (index_t i = 0; i < V; ++i)
            v[i] += one_minus_beta * base_visible_bias[i] + beta_t * (a[i] + model.visible_bias[i]);
        } else {
          detail::ais_visible_row<T>(a, base_visible_bias, model.visible_bias, V, beta, seed, step + 1, run,
                                     uniforms.data(), v);
        }
      }
      if (caller && (k & 15) == 0 && should_stop()) stop.store(true);
      if (stop.load(std::memory_order_relaxed)) {
        index_t seen = completed.load();
        while (k < seen && !completed.compare_exchange_weak(seen, k)) {
        }
        break;
      }
    }
  });
  *done = completed.load();
  return log_z0;
}

}  // namespace leafrbm
