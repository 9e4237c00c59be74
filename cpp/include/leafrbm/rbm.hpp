// Restricted Boltzmann machine kernels: Gibbs half-steps, free energy, CD-k / PCD-k epochs.
//
// Conventions (shared with the Python layer, which owns all arrays):
//   weights        n_hidden × n_visible, row-major (scikit-learn's components_)
//   hidden_bias    n_hidden;  visible_bias  n_visible
//   visible rows   n × n_visible;  hidden rows  n × n_hidden
// A Gibbs half-step is one tiled GEMM whose tiles are finished, while still in cache, by one
// fused pass: bias add, activation, uniform draw, compare. No temporaries beyond one row of
// random numbers per tile.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "blas.hpp"
#include "math.hpp"
#include "packed_gemm.hpp"
#include "parallel.hpp"
#include "rng.hpp"


namespace leafrbm {

enum class VisibleType { bernoulli, gaussian };

/// Non-owning view of an RBM's parameters.
template <class T>
struct RBMView {
  T* weights;
  T* hidden_bias;
  T* visible_bias;
  index_t n_hidden;
  index_t n_visible;
  VisibleType visible_type;
};

/// Where random numbers for a pass come from: draw for chain row r uses (seed, stream, step, row_offset + r).
struct RandomKey {
  std::uint64_t seed;
  Stream stream;
  std::uint64_t step;
  index_t row_offset = 0;
};

namespace detail {

/// out[rows, cols] = input · op(weights) for one output tile, then `finish(row, cols, scratch)`.
/// With `packed` (float only; the same product, weights packed beforehand) the tiles are groups
/// of packed panels; otherwise BLAS tiles.
template <class T, class Finish>
void tiled_product(const T* input, index_t n_rows, index_t input_cols, const T* weights,
                   bool transpose_weights, index_t out_cols, T* out, int n_threads,
                   const PackedMatrix* packed, Finish&& finish) {
  const double flops = 2.0 * static_cast<double>(n_rows) * static_cast<double>(out_cols) * static_cast<double>(input_cols);
  if constexpr (std::is_same_v<T, float>) {
    if (packed) {
      const index_t panels = packed->panels();
      const Tiling plan{panels, std::clamp<index_t>(panels / 8, 1, 8)};
      parallel_for(plan.count(), threads_for_work(n_threads, flops), [&](index_t t) {
        const Range tile = plan[t];
        packed->multiply(input, input_cols, n_rows, tile.begin, tile.end, out, out_cols);
        const Range cols{tile.begin * packed_panel, std::min(tile.end * packed_panel, out_cols)};
        std::vector<T> scratch(static_cast<std::size_t>(cols.size()));
        for (index_t r = 0; r < n_rows; ++r) finish(r, cols, scratch.data());
      });
      return;
    }
  }
  const GemmTiling plan = GemmTiling::for_shape(n_rows, out_cols);
  parallel_for(plan.count(), threads_for_work(n_threads, flops), [&](index_t t) {
    const Range tile = plan.tiling[t];
    const Range rows = plan.by_rows ? tile : Range{0, n_rows};
    const Range cols = plan.by_rows ? Range{0, out_cols} : tile;
    // transpose_weights: weights is out_cols × input_cols (use W^T); else input_cols × out_cols.
    const T* b = transpose_weights ? weights + cols.begin * input_cols : weights + cols.begin;
    const index_t ldb = transpose_weights ? input_cols : out_cols;
    gemm(false, transpose_weights, rows.size(), cols.size(), input_cols, T(1),
         input + rows.begin * input_cols, input_cols, b, ldb, T(0),
         out + rows.begin * out_cols + cols.begin, out_cols);
    std::vector<T> scratch(static_cast<std::size_t>(cols.size()));
    for (index_t r = rows.begin; r < rows.end; ++r) finish(r, cols, scratch.data());
  });
}

/// Packs a float layer whose weights serve several products (a chain, AIS, a training
/// minibatch), in parallel, when the CPU has the kernels and the packed copies stay below
/// 512 MiB; null otherwise, and always for double.
template <class T>
std::unique_ptr<PackedLayer> pack_layer(const RBMView<const T>& model, int n_threads) {
  if constexpr (std::is_same_v<T, float>) {
    if (packed_products_available() && model.n_hidden * model.n_visible <= (index_t{1} << 26))
      return std::make_unique<PackedLayer>(model.weights, model.n_hidden, model.n_visible, n_threads);
  }
  return nullptr;
}

}  // namespace detail

/// Hidden pass: means = sigmoid(visible · Wᵀ + b_h); samples (if not null) = [u < means].
template <class T>
void hidden_pass(const RBMView<const T>& model, const T* visible, index_t n_rows, T* means,
                 T* samples, const RandomKey& key, int n_threads, const PackedLayer* packed = nullptr) {
  const index_t H = model.n_hidden;
  detail::tiled_product(visible, n_rows, model.n_visible, model.weights, true, H, means, n_threads,
                        packed ? &packed->up : nullptr,
                        [&](index_t r, Range cols, T*) {
                          T* row = means + r * H + cols.begin;
                          sigmoid_row(row, model.hidden_bias + cols.begin, cols.size());
                          if (samples)
                            bernoulli_row(row, cols.size(), key.seed, key.stream, key.step, key.row_offset + r,
                                          static_cast<std::size_t>(cols.begin), samples + r * H + cols.begin);
                        });
}

/// Visible pass: means = act(hidden · W + b_v) (sigmoid for Bernoulli, identity for Gaussian
/// units of unit variance); samples (if not null) = [u < means] or means + N(0, 1).
template <class T>
void visible_pass(const RBMView<const T>& model, const T* hidden, index_t n_rows, T* means,
                  T* samples, const RandomKey& key, int n_threads, const PackedLayer* packed = nullptr) {
  const index_t V = model.n_visible;
  const bool gaussian = model.visible_type == VisibleType::gaussian;
  detail::tiled_product(hidden, n_rows, model.n_hidden, model.weights, false, V, means, n_threads,
                        packed ? &packed->down : nullptr,
                        [&](index_t r, Range cols, T* random) {
                          T* row = means + r * V;
                          const T* bias = model.visible_bias;
                          if (gaussian) {
                            for (index_t j = cols.begin; j < cols.end; ++j) row[j] += bias[j];
                          } else {
                            sigmoid_row(row + cols.begin, bias + cols.begin, cols.size());
                          }
                          if (!samples) return;
                          T* out = samples + r * V;
                          if (gaussian) {
                            normal_row<T>(key.seed, key.stream, key.step, key.row_offset + r,
                                          cols.begin, cols.end, random);
                            for (index_t j = cols.begin; j < cols.end; ++j) out[j] = row[j] + random[j - cols.begin];
                          } else {
                            bernoulli_row(row + cols.begin, cols.size(), key.seed, key.stream, key.step,
                                          key.row_offset + r, static_cast<std::size_t>(cols.begin), out + cols.begin);
                          }
                        });
}

/// Free energy per row: F(v) = -v·b_v - Σ_j softplus(v·W_j + b_h,j) for Bernoulli visibles,
/// F(v) = ½‖v - b_v‖² - Σ_j softplus(v·W_j + b_h,j) for Gaussian ones. Sums in double.
template <class T>
void free_energy(const RBMView<const T>& model, const T* visible, index_t n_rows, T* out,
                 int n_threads) {
  const index_t H = model.n_hidden, V = model.n_visible;
  const Tiling rows_plan{n_rows, 32};
  parallel_for(rows_plan.count(), n_threads, [&](index_t t) {
    const Range rows = rows_plan[t];
    std::vector<T> activation(static_cast<std::size_t>(rows.size() * H));
    gemm(false, true, rows.size(), H, V, T(1), visible + rows.begin * V, V, model.weights, V, T(0),
         activation.data(), H);
    for (index_t r = rows.begin; r < rows.end; ++r) {
      const T* v = visible + r * V;
      const T* a = activation.data() + (r - rows.begin) * H;
      double visible_term = 0.0;
      if (model.visible_type == VisibleType::gaussian) {
        for (index_t i = 0; i < V; ++i) {
          const double d = static_cast<double>(v[i]) - model.visible_bias[i];
          visible_term += 0.5 * d * d;
        }
      } else {
        for (index_t i = 0; i < V; ++i) visible_term -= static_cast<double>(v[i]) * model.visible_bias[i];
      }
      double hidden_term = 0.0;
      for (index_t j = 0; j < H; ++j) hidden_term += softplus(static_cast<double>(a[j]) + model.hidden_bias[j]);
      out[r] = static_cast<T>(visible_term - hidden_term);
    }
  });
}

/// Block Gibbs chain of n_steps full steps v → h → v, in place on `visible` (samples).
/// `visible_means` (optional) receives the visible means of the last step.
/// RNG steps first_step .. first_step + n_steps - 1. Returns the steps completed
/// (fewer than n_steps when should_stop() returned true).
template <class T, class StopFn>
index_t gibbs_chain(const RBMView<const T>& model, T* visible, index_t n_rows, index_t n_steps,
                    std::uint64_t seed, Stream stream, std::uint64_t first_step, T* visible_means,
                    int n_threads, StopFn&& should_stop) {
  const ScopedTeam team(n_threads);  // one thread team for all 2·n_steps passes
  const auto packed = n_steps > 1 ? detail::pack_layer(model, n_threads) : nullptr;
  std::vector<T> hidden_means(static_cast<std::size_t>(n_rows * model.n_hidden));
  std::vector<T> hidden(hidden_means.size());
  std::vector<T> scratch_means;
  if (!visible_means) {
    scratch_means.resize(static_cast<std::size_t>(n_rows * model.n_visible));
    visible_means = scratch_means.data();
  }
  for (index_t s = 0; s < n_steps; ++s) {
    const std::uint64_t step = first_step + static_cast<std::uint64_t>(s);
    hidden_pass(model, visible, n_rows, hidden_means.data(), hidden.data(),
                RandomKey{seed, stream, 2 * step}, n_threads, packed.get());
    visible_pass(model, hidden.data(), n_rows, visible_means, visible,
                 RandomKey{seed, stream, 2 * step + 1}, n_threads, packed.get());
    if (should_stop()) return s + 1;
  }
  return n_steps;
}

/// Hyper-parameters of one training epoch.
struct TrainConfig {
  double learning_rate = 0.1;
  double momentum = 0.0;
  double weight_decay = 0.0;
  double sparsity_target = 0.1;
  double sparsity_cost = 0.0;
  double sparsity_damping = 0.9;
  int k = 1;
  bool persistent = true;
  std::uint64_t seed = 0;
  int n_threads = 1;
};

/// Training state that lives between minibatches (owned by the caller).
template <class T>
struct TrainState {
  T* weight_velocity;        // n_hidden × n_visible
  T* hidden_bias_velocity;   // n_hidden
  T* visible_bias_velocity;  // n_visible
  T* chain_hidden;           // n_chains × n_hidden binary states of the persistent chains
  index_t n_chains;
  T* hidden_activity;        // n_hidden running mean of p(h|v) (sparsity target)
};

/// One pass of CD-k (persistent = false) or PCD-k over the minibatches of `data` taken in the
/// order `order` (n_samples row indices). Minibatch b uses RNG step (first_batch + b).
///
/// Update, per minibatch of B rows with n_neg negative particles:
///   ΔW  = lr·(h⁺ᵀv⁺/B − h⁻ᵀv⁻/n_neg) − lr·weight_decay·W,   v⁻ sampled, h⁻ = p(h | v⁻)
///   vel = momentum·vel + ΔW;  W += vel   (the same for both biases, without weight decay)
///   q   = damping·q + (1−damping)·mean(h⁺);  b_h += lr·sparsity_cost·(target − q)
/// Gaussian visibles use the noise-free mean in the negative phase (Hinton's guide, §13.2).
/// Returns the number of minibatches completed; should_stop() is asked after each one.
template <class T, class StopFn>
index_t train_epoch(const RBMView<T>& model, const TrainState<T>& state, const T* data,
                    index_t n_samples, const std::int64_t* order, index_t batch_size,
                    const TrainConfig& config, std::uint64_t first_batch, StopFn&& should_stop) {
  const index_t H = model.n_hidden, V = model.n_visible;
  const int threads = config.n_threads;
  const ScopedTeam team(threads);  // one thread team for every pass of the epoch
  const RBMView<const T> view{model.weights, model.hidden_bias, model.visible_bias, H, V, model.visible_type};
  if (config.k < 1 || config.k > 65535) throw std::invalid_argument("k must be in [1, 65535]");
  if (config.persistent && state.n_chains < 1) throw std::invalid_argument("persistent chains missing");
  const index_t max_neg = config.persistent ? state.n_chains : batch_size;

  std::vector<T> visible_positive(static_cast<std::size_t>(batch_size * V));
  std::vector<T> hidden_positive(static_cast<std::size_t>(batch_size * H));
  std::vector<T> visible_negative(static_cast<std::size_t>(max_neg * V));
  std::vector<T> visible_negative_means(visible_negative.size());
  std::vector<T> hidden_negative(static_cast<std::size_t>(max_neg * H));
  std::vector<T> cd_chain(config.persistent ? 0 : static_cast<std::size_t>(batch_size * H));
  std::vector<double> hidden_gradient(static_cast<std::size_t>(H)), visible_gradient(static_cast<std::size_t>(V));

  // The three forward products of a minibatch share its weights: packed after every update when
  // minibatches are large enough to repay the packing (float, AVX2/AVX-512; BLAS otherwise).
  // Measured on a 784-500 RBM, 2 threads (benchmarks/bench_rbm.py): batch 100 0.27 → 0.21 s per
  // epoch, batch 10 0.61–0.64 → 0.45–0.60 s; below 8 rows the packing costs more than it saves.
  constexpr index_t min_packed_batch = 8;
  const auto packed = batch_size >= min_packed_batch ? detail::pack_layer(view, threads) : nullptr;

  const bool plain_update = config.momentum == 0.0 && config.weight_decay == 0.0;
  const index_t n_batches = (n_samples + batch_size - 1) / batch_size;
  const GemmTiling weight_plan = GemmTiling::for_shape(H, V);

  for (index_t b = 0; b < n_batches; ++b) {
    const index_t first = b * batch_size;
    const index_t rows = std::min(batch_size, n_samples - first);
    const std::uint64_t step = ((first_batch + static_cast<std::uint64_t>(b)) << 16);
    for (index_t r = 0; r < rows; ++r) {
      const T* source = data + order[first + r] * V;
      std::copy(source, source + V, visible_positive.data() + r * V);
    }
    if constexpr (std::is_same_v<T, float>) {
      if (packed && b > 0) packed->pack(model.weights, threads);
    }
    // Positive phase.
    T* chain = config.persistent ? state.chain_hidden : cd_chain.data();
    const index_t n_neg = config.persistent ? state.n_chains : rows;
    hidden_pass(view, visible_positive.data(), rows, hidden_positive.data(),
                config.persistent ? static_cast<T*>(nullptr) : chain,
                RandomKey{config.seed, Stream::hidden_positive, step}, threads, packed.get());
    // Negative phase: k steps of block Gibbs from the chain's hidden state.
    for (int s = 0; s < config.k; ++s) {
      const bool gaussian = model.visible_type == VisibleType::gaussian;
      visible_pass(view, chain, n_neg, visible_negative_means.data(),
                   gaussian ? static_cast<T*>(nullptr) : visible_negative.data(),
                   RandomKey{config.seed, Stream::visible_chain, step + static_cast<std::uint64_t>(s)}, threads,
                   packed.get());
      if (gaussian) visible_negative.swap(visible_negative_means);
      const bool keep_sample = config.persistent || s + 1 < config.k;
      hidden_pass(view, visible_negative.data(), n_neg, hidden_negative.data(),
                  keep_sample ? chain : static_cast<T*>(nullptr),
                  RandomKey{config.seed, Stream::hidden_chain, step + static_cast<std::uint64_t>(s)}, threads,
                  packed.get());
    }
    // Weights: fused per tile (rows: hidden units, or columns: visible units).
    const T alpha_positive = static_cast<T>(config.learning_rate / static_cast<double>(rows));
    const T alpha_negative = static_cast<T>(config.learning_rate / static_cast<double>(n_neg));
    const T momentum = static_cast<T>(config.momentum);
    const T decay = static_cast<T>(config.learning_rate * config.weight_decay);
    const double update_flops = 2.0 * static_cast<double>(rows + n_neg) * static_cast<double>(H * V);
    parallel_for(weight_plan.count(), threads_for_work(threads, update_flops), [&](index_t t) {
      const Range tile = weight_plan.tiling[t];
      const Range hid = weight_plan.by_rows ? tile : Range{0, H};
      const Range vis = weight_plan.by_rows ? Range{0, V} : tile;
      T* target = plain_update ? model.weights : state.weight_velocity;
      if (!plain_update) {
        for (index_t j = hid.begin; j < hid.end; ++j) {
          T* velocity = state.weight_velocity + j * V;
          const T* w = model.weights + j * V;
          for (index_t i = vis.begin; i < vis.end; ++i) velocity[i] = momentum * velocity[i] - decay * w[i];
        }
      }
      gemm(true, false, hid.size(), vis.size(), rows, alpha_positive, hidden_positive.data() + hid.begin, H,
           visible_positive.data() + vis.begin, V, T(1), target + hid.begin * V + vis.begin, V);
      gemm(true, false, hid.size(), vis.size(), n_neg, -alpha_negative, hidden_negative.data() + hid.begin, H,
           visible_negative.data() + vis.begin, V, T(1), target + hid.begin * V + vis.begin, V);
      if (!plain_update) {
        for (index_t j = hid.begin; j < hid.end; ++j) {
          const T* velocity = state.weight_velocity + j * V;
          T* w = model.weights + j * V;
          for (index_t i = vis.begin; i < vis.end; ++i) w[i] += velocity[i];
        }
      }
    });
    // Biases (small: serial, in double).
    std::fill(hidden_gradient.begin(), hidden_gradient.end(), 0.0);
    std::fill(visible_gradient.begin(), visible_gradient.end(), 0.0);
    for (index_t r = 0; r < rows; ++r) {
      const T* h = hidden_positive.data() + r * H;
      const T* v = visible_positive.data() + r * V;
      for (index_t j = 0; j < H; ++j) hidden_gradient[j] += static_cast<double>(alpha_positive) * h[j];
      for (index_t i = 0; i < V; ++i) visible_gradient[i] += static_cast<double>(alpha_positive) * v[i];
    }
    for (index_t r = 0; r < n_neg; ++r) {
      const T* h = hidden_negative.data() + r * H;
      const T* v = visible_negative.data() + r * V;
      for (index_t j = 0; j < H; ++j) hidden_gradient[j] -= static_cast<double>(alpha_negative) * h[j];
      for (index_t i = 0; i < V; ++i) visible_gradient[i] -= static_cast<double>(alpha_negative) * v[i];
    }
    if (config.sparsity_cost > 0.0) {
      const double damping = config.sparsity_damping;
      for (index_t j = 0; j < H; ++j) {
        double mean = 0.0;
        for (index_t r = 0; r < rows; ++r) mean += hidden_positive[r * H + j];
        mean /= static_cast<double>(rows);
        const double q = damping * state.hidden_activity[j] + (1.0 - damping) * mean;
        state.hidden_activity[j] = static_cast<T>(q);
        hidden_gradient[j] += config.learning_rate * config.sparsity_cost * (config.sparsity_target - q);
      }
    }
    for (index_t j = 0; j < H; ++j) {
      if (plain_update) {
        model.hidden_bias[j] += static_cast<T>(hidden_gradient[j]);
      } else {
        state.hidden_bias_velocity[j] = momentum * state.hidden_bias_velocity[j] + static_cast<T>(hidden_gradient[j]);
        model.hidden_bias[j] += state.hidden_bias_velocity[j];
      }
    }
    for (index_t i = 0; i < V; ++i) {
      if (plain_update) {
        model.visible_bias[i] += static_cast<T>(visible_gradient[i]);
      } else {
        state.visible_bias_velocity[i] = momentum * state.visible_bias_velocity[i] + static_cast<T>(visible_gradient[i]);
        model.visible_bias[i] += state.visible_bias_velocity[i];
      }
    }
    if (should_stop()) return b + 1;
  }
  return n_batches;
}

}  // namespace leafrbm
