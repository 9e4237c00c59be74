// Chains through a stack of RBMs (one RBM, or the layers of a DBN): clamped inpainting and
// free-running "dreams".
//
// One step of the chain, for layers 0 .. L-1 (layer 0 sees the pixels):
//   up:    h_1 ~ p(h_1 | v), h_2 ~ p(h_2 | h_1), ..., h_L ~ p(h_L | h_{L-1})
//   down:  h_{L-1} ~ p(h_{L-1} | h_L), ..., v ~ p(v | h_1)     (the top pair is one Gibbs step)
//   clamp: v_i = observed_i wherever mask_i = 1
// With L = 1 this is the RBM's block Gibbs step v → h → v. Every step is 2·L tiled GEMMs with
// fused sampling passes (rbm.hpp); the chain never leaves C++.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "parallel.hpp"
#include "rbm.hpp"
#include "rng.hpp"

namespace leafrbm {

/// Options of stack_chain. Pointers may be null where documented.
template <class T>
struct StackChainOptions {
  const std::uint8_t* clamp_mask = nullptr;  // n_rows × n_visible, 1 = observed (clamped); null: free chain
  T* final_means = nullptr;                  // n_rows × n_visible: visible means of the last step (clamped)
  T* frames = nullptr;                       // n_frames × n_rows × n_visible: visible means every keep_every steps
  index_t keep_every = 1;
  index_t average_from = -1;                 // >= 0: final_means = mean over steps >= average_from
  bool mean_field = false;                   // deterministic chain: means, not samples, everywhere
};

/// Runs n_steps of the stack chain in place on `visible` (n_rows × layers[0].n_visible), which
/// holds the observed values where clamped. RNG: step s, layer l uses (seed, stream,
/// 2·L·(first_step + s) + 2·l) going up and + 2·l + 1 coming down. Returns the steps completed
/// (fewer when should_stop() returned true; it is asked after each step).
template <class T, class StopFn>
index_t stack_chain(const std::vector<RBMView<const T>>& layers, T* visible, index_t n_rows, index_t n_steps,
                    std::uint64_t seed, Stream stream, std::uint64_t first_step, const StackChainOptions<T>& options,
                    int n_threads, StopFn&& should_stop) {
  const index_t L = static_cast<index_t>(layers.size());
  if (L < 1) throw std::invalid_argument("stack_chain: needs at least one layer");
  for (index_t l = 1; l < L; ++l) {
    if (layers[l].n_visible != layers[l - 1].n_hidden)
      throw std::invalid_argument("stack_chain: layer sizes do not chain");
    if (layers[l].visible_type != VisibleType::bernoulli)
      throw std::invalid_argument("stack_chain: layers above the first must have Bernoulli visibles");
  }
  if (options.keep_every < 1) throw std::invalid_argument("stack_chain: keep_every must be >= 1");
  const index_t V = layers[0].n_visible;
  double work = 0.0;
  for (const auto& layer : layers) work += static_cast<double>(n_rows) * layer.n_hidden * layer.n_visible;
  n_threads = threads_for_work(n_threads, 2.0 * work);
  const ScopedTeam team(n_threads);  // one thread team for every pass of the chain
  const std::size_t pixels = static_cast<std::size_t>(n_rows * V);

  // states[l]: binary samples of layer l's hidden units; means buffers per layer.
  std::vector<std::vector<T>> hidden_samples(static_cast<std::size_t>(L)), hidden_means(static_cast<std::size_t>(L));
  for (index_t l = 0; l < L; ++l) {
    hidden_samples[l].resize(static_cast<std::size_t>(n_rows * layers[l].n_hidden));
    hidden_means[l].resize(hidden_samples[l].size());
  }
  // Weights packed once for all 2·L·n_steps products (float, AVX2/AVX-512; BLAS otherwise).
  std::vector<std::unique_ptr<PackedLayer>> packed(static_cast<std::size_t>(L));
  if (n_steps > 1)
    for (index_t l = 0; l < L; ++l) packed[l] = detail::pack_layer(layers[l], n_threads);
  std::vector<T> visible_means(pixels);
  // Running sum of the visible means (the posterior-mean estimate), in double.
  std::vector<double> means_sum(options.average_from >= 0 && options.final_means ? pixels : 0);
  index_t n_summed = 0;
  std::vector<T> observed;
  if (options.clamp_mask) observed.assign(visible, visible + pixels);
  const Tiling row_plan{n_rows, 16};

  // Re-imposes the observed pixels on `target` (and keeps the rest).
  auto clamp = [&](T* target) {
    if (!options.clamp_mask) return;
    parallel_for(row_plan.count(), n_threads, [&](index_t t) {
      const Range rows = row_plan[t];
      const std::size_t first = static_cast<std::size_t>(rows.begin * V);
      clamp_row(target + first, observed.data() + first, options.clamp_mask + first, rows.size() * V);
    });
  };

  const std::uint64_t per_step = 2 * static_cast<std::uint64_t>(L);
  for (index_t s = 0; s < n_steps; ++s) {
    const std::uint64_t base = per_step * (first_step + static_cast<std::uint64_t>(s));
    // Up: sample every hidden layer given the one below.
    const T* below = visible;
    const bool mean_field = options.mean_field;
    auto state = [&](index_t l) { return mean_field ? hidden_means[l].data() : hidden_samples[l].data(); };
    for (index_t l = 0; l < L; ++l) {
      hidden_pass(layers[l], below, n_rows, hidden_means[l].data(), mean_field ? nullptr : hidden_samples[l].data(),
                  RandomKey{seed, stream, base + 2 * static_cast<std::uint64_t>(l)}, n_threads, packed[l].get());
      below = state(l);
    }
    // Down: sample every layer given the one above; the top pair completes one Gibbs step.
    for (index_t l = L - 1; l >= 1; --l) {
      visible_pass(layers[l], state(l), n_rows, hidden_means[l - 1].data(),
                   mean_field ? nullptr : hidden_samples[l - 1].data(),
                   RandomKey{seed, stream, base + 2 * static_cast<std::uint64_t>(l) + 1}, n_threads, packed[l].get());
    }
    const bool accumulate = !means_sum.empty() && s >= options.average_from;
    const RBMView<const T>& pixels_layer = layers[0];
    if (!mean_field && pixels_layer.visible_type == VisibleType::bernoulli) {
      // Down to the pixels, fused per tile while it is in cache: means, draws (only where a
      // pixel of the tile is free), re-imposing the observed pixels, and the running average.
      const RandomKey key{seed, stream, base + 1};
      detail::tiled_product(
          state(0), n_rows, pixels_layer.n_hidden, pixels_layer.weights, false, V, visible_means.data(), n_threads,
          packed[0] ? &packed[0]->down : nullptr, [&](index_t r, Range cols, T*) {
            const std::size_t first = static_cast<std::size_t>(r * V + cols.begin);
            const index_t n = cols.size();
            T* means = visible_means.data() + first;
            T* v = visible + first;
            sigmoid_row(means, pixels_layer.visible_bias + cols.begin, n);
            const std::uint8_t* clamped = options.clamp_mask ? options.clamp_mask + first : nullptr;
            if (!clamped || std::find(clamped, clamped + n, std::uint8_t{0}) != clamped + n)
              bernoulli_row(means, n, key.seed, key.stream, key.step, static_cast<std::uint64_t>(r),
                            static_cast<std::size_t>(cols.begin), v);
            if (clamped) clamp_row(v, observed.data() + first, clamped, n);
            if (accumulate) accumulate_row(means_sum.data() + first, means, n);
          });
    } else {
      visible_pass(pixels_layer, state(0), n_rows, visible_means.data(), mean_field ? nullptr : visible,
                   RandomKey{seed, stream, base + 1}, n_threads, packed[0].get());
      if (mean_field) std::copy(visible_means.begin(), visible_means.end(), visible);
      if (options.clamp_mask || accumulate) {
        // One pass: re-impose the observed pixels and add this step's means to the average.
        parallel_for(row_plan.count(), n_threads, [&](index_t t) {
          const Range rows = row_plan[t];
          const std::size_t first = static_cast<std::size_t>(rows.begin * V);
          if (options.clamp_mask) clamp_row(visible + first, observed.data() + first, options.clamp_mask + first, rows.size() * V);
          if (accumulate) accumulate_row(means_sum.data() + first, visible_means.data() + first, rows.size() * V);
        });
      }
    }
    n_summed += accumulate;
    if (options.frames && (s + 1) % options.keep_every == 0) {
      T* frame = options.frames + static_cast<std::size_t>((s + 1) / options.keep_every - 1) * pixels;
      std::copy(visible_means.begin(), visible_means.end(), frame);
    }
    const bool last = s + 1 == n_steps;
    const bool stop = !last && should_stop();
    if ((last || stop) && options.final_means) {
      if (n_summed > 0) {
        const double scale = 1.0 / static_cast<double>(n_summed);
        for (std::size_t i = 0; i < pixels; ++i) options.final_means[i] = static_cast<T>(means_sum[i] * scale);
      } else {
        std::copy(visible_means.begin(), visible_means.end(), options.final_means);
      }
      clamp(options.final_means);
    }
    if (stop) return s + 1;
  }
  return n_steps;
}

}  // namespace leafrbm
