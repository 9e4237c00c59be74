// Thread-count-independent parallel loops.
//
// Work is cut into tiles whose boundaries depend only on the problem's shape, never on the
// number of threads; each tile is computed by exactly the same code whichever thread takes it.
// That is what makes every result bit-identical at any n_threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "blas.hpp"

namespace leafrbm {

/// A team of worker threads for the many short parallel passes of one long kernel call
/// (a training epoch, a Gibbs chain): hundreds of passes per second, each a few microseconds
/// to a millisecond long.
///
/// Workers spin briefly after each pass and then sleep on a condition variable. OpenMP's
/// default wait policy spins for much longer; when the machine has more runnable threads than
/// cores (a shared machine, several Python threads), a spinning thread takes the core from the
/// partner it waits for, and every pass can cost a scheduler time slice. Tiles are handed out
/// dynamically and each is computed by the same code whichever thread takes it, so results do
/// not depend on the number of threads.
class TaskTeam {
 public:
  explicit TaskTeam(int n_threads) {
    for (int t = 1; t < n_threads; ++t) workers_.emplace_back([this] { work(); });
  }
  TaskTeam(const TaskTeam&) = delete;
  TaskTeam& operator=(const TaskTeam&) = delete;
  ~TaskTeam() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
  }
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  /// Runs body(tile) for every tile in [0, n_tiles) on the team and the calling thread.
  void run(index_t n_tiles, const std::function<void(index_t)>& body) {
    if (workers_.empty() || n_tiles <= 1) {
      for (index_t t = 0; t < n_tiles; ++t) body(t);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      body_ = &body;
      n_tiles_ = n_tiles;
      next_.store(0, std::memory_order_relaxed);
      active_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    take_tiles();
    for (int spin = 0; spin < kSpin && active_.load(std::memory_order_acquire) != 0; ++spin) pause();
    if (active_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [this] { return active_.load(std::memory_order_acquire) == 0; });
    }
    body_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static constexpr int kSpin = 4000;  // about 10-40 microseconds
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
  }

  void take_tiles() {
    for (index_t t = next_.fetch_add(1); t < n_tiles_; t = next_.fetch_add(1)) {
      try {
        (*body_)(t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void work() {
    std::uint64_t seen = 0;
    for (;;) {
      int spin = 0;
      while (generation_.load(std::memory_order_acquire) == seen && spin++ < kSpin) pause();
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
        if (stop_) return;
        seen = generation_.load(std::memory_order_acquire);
      }
      take_tiles();
      if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(index_t)>* body_ = nullptr;
  index_t n_tiles_ = 0;
  std::atomic<index_t> next_{0};
  std::atomic<int> active_{0};
  std::atomic<std::uint64_t> generation_{0};
  bool stop_ = false;
  std::exception_ptr error_;
};

namespace detail {
inline TaskTeam*& current_team() {
  thread_local TaskTeam* team = nullptr;
  return team;
}
}  // namespace detail

/// While alive, parallel_for calls on this thread run on a TaskTeam of n_threads threads
/// (created here, once) instead of opening an OpenMP region per call.
class ScopedTeam {
 public:
  explicit ScopedTeam(int n_threads) : saved_(detail::current_team()) {
    if (n_threads > 1) {
      team_ = std::make_unique<TaskTeam>(n_threads);
      detail::current_team() = team_.get();
    }
  }
  ~ScopedTeam() { detail::current_team() = saved_; }
  ScopedTeam(const ScopedTeam&) = delete;
  ScopedTeam& operator=(const ScopedTeam&) = delete;

 private:
  TaskTeam* saved_;
  std::unique_ptr<TaskTeam> team_;
};

/// Runs body(tile) for tile in [0, n_tiles) on n_threads threads; rethrows the first exception.
/// Inside a ScopedTeam the team's threads are used; otherwise an OpenMP team.
template <class Body>
void parallel_for(index_t n_tiles, int n_threads, Body&& body) {
  if (n_tiles <= 0) return;
  blas_use_single_thread();
  if (n_threads <= 1 || n_tiles == 1) {
    for (index_t tile = 0; tile < n_tiles; ++tile) body(tile);
    return;
  }
  if (TaskTeam* team = detail::current_team()) {
    // Nested parallel_for calls from inside a tile run serially on their thread.
    detail::current_team() = nullptr;
    struct Restore {
      TaskTeam* team;
      ~Restore() { detail::current_team() = team; }
    } restore{team};
    team->run(n_tiles, std::function<void(index_t)>(std::ref(body)));
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
    constexpr index_t row_tile = 64, min_col_tile = 64, col_tiles = 4;
    if (m >= 2 * row_tile || n < 2 * min_col_tile) return {true, {m, row_tile}};
    // Few rows (chains, small batches): a few wide column tiles, since narrow GEMMs waste
    // OpenBLAS's packing; the width depends on n only.
    const index_t col_tile = std::max(min_col_tile, (n / col_tiles + 15) / 16 * 16);
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
