// Thread-count-independent parallel loops.
//
// Work is cut into tiles whose boundaries depend only on the problem's shape, never on the
// number of threads; each tile is computed by exactly the same code whichever thread takes it.
// That is what makes every result bit-identical at any n_threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "blas.hpp"

namespace leafrbm {

/// Runs body(tile) for tile in [0, n_tiles) on n_threads threads; rethrows the first exception.
template <class Body>
void parallel_for(index_t n_tiles, int n_threads, Body&& body) {
  if (n_tiles <= 0) return;
  blas_use_single_thread();
  if (n_threads <= 1 || n_tiles == 1) {
    for (index_t tile = 0; tile < n_tiles; ++tile) body(tile);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
  for (index_t tile = 0; tile < n_tiles; ++tile) {
    try {
      body(tile);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

/// Threads worth using for `flops` of work: one below about 8 MFLOP (under 100 microseconds).
///
/// Waking a team costs microseconds on an idle machine and milliseconds on a loaded one (a
/// descheduled thread holds the barrier), so small products (minibatches of 10, tiny layers)
/// run faster on one thread. Tiles do not depend on the thread count, so neither do results.
inline int threads_for_work(int n_threads, double flops) {
  constexpr double min_parallel_flops = 8.0e6;
  return flops < min_parallel_flops ? 1 : n_threads;
}

/// A half-open range [begin, end).
struct Range {
  index_t begin, end;
  index_t size() const { return end - begin; }
};

/// Splits [0, n) into tiles of `tile` elements (the last may be shorter).
struct Tiling {
  index_t n, tile;
  index_t count() const { return n == 0 ? 0 : (n + tile - 1) / tile; }
  Range operator[](index_t i) const { return {i * tile, std::min(n, (i + 1) * tile)}; }
};

/// Output tiling for an m×n GEMM result: by rows when there are enough rows, else by columns.
/// Depends on the shape only. Tiles are multiples of 16 so that vector loops stay aligned.
struct GemmTiling {
  bool by_rows;
  Tiling tiling;
  static GemmTiling for_shape(index_t m, index_t n) {
    constexpr index_t row_tile = 64, col_tile = 64;
    if (m >= 2 * row_tile || n < 2 * col_tile) return {true, {m, row_tile}};
    return {false, {n, col_tile}};
  }
  index_t count() const { return tiling.count(); }
};

/// Resolves a requested thread count: <= 0 means all available.
inline int resolve_threads(int n_threads) {
#ifdef _OPENMP
  return n_threads > 0 ? n_threads : omp_get_max_threads();
#else
  (void)n_threads;
  return 1;
#endif
}

}  // namespace leafrbm
