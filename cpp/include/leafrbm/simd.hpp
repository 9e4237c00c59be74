// Run-time choice of the instruction set for the elementwise kernels (elementwise.inc).
//
// The package is built portable (x86-64 baseline, SSE2), yet most of the time outside the
// matrix products goes to Philox, exp and sigmoid loops that are 4× wider with AVX-512. The
// kernels' source is therefore compiled three times, in the namespaces isa_baseline, isa_avx2
// and isa_avx512 (each under its own `#pragma GCC target`, so no inline function of one copy
// can stand in for another's at link time), and the wrappers below call the widest copy this
// CPU runs. All copies give bit-identical results (see elementwise.inc), so the choice changes
// speed only.
//
// The environment variable LEAFRBM_SIMD=baseline|avx2|avx512 caps the choice at start-up;
// set_active_isa() changes it at run time (tests compare the copies).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "blas.hpp"  // index_t

// GCC on x86: three copies and run-time dispatch. Elsewhere (or with -DLEAFRBM_SIMD_DISPATCH_X86=0)
// one portable copy, and BLAS for every product.
#ifndef LEAFRBM_SIMD_DISPATCH_X86
#if (defined(__GNUC__) && !defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define LEAFRBM_SIMD_DISPATCH_X86 1
#else
#define LEAFRBM_SIMD_DISPATCH_X86 0
#endif
#endif

namespace leafrbm {
namespace isa_baseline {
#include "elementwise.inc"
}  // namespace isa_baseline
}  // namespace leafrbm

#if LEAFRBM_SIMD_DISPATCH_X86
#pragma GCC push_options
#pragma GCC target("avx2")
namespace leafrbm {
namespace isa_avx2 {
#include "elementwise.inc"
}  // namespace isa_avx2
}  // namespace leafrbm
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,prefer-vector-width=512")
namespace leafrbm {
namespace isa_avx512 {
#include "elementwise.inc"
}  // namespace isa_avx512
}  // namespace leafrbm
#pragma GCC pop_options
#else
namespace leafrbm {
namespace isa_avx2 = isa_baseline;
namespace isa_avx512 = isa_baseline;
}  // namespace leafrbm
#endif

namespace leafrbm {

/// Instruction sets the elementwise kernels are compiled for, narrowest first.
enum class Isa : int { baseline = 0, avx2 = 1, avx512 = 2 };

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "baseline";
  }
}

inline Isa isa_from_name(const std::string& name) {
  if (name == "baseline" || name == "sse2") return Isa::baseline;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw std::invalid_argument("unknown instruction set '" + name + "' (expected baseline, avx2 or avx512)");
}

/// The widest instruction set of this build that the CPU (and its operating system) supports.
inline Isa supported_isa() {
#if LEAFRBM_SIMD_DISPATCH_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2")) return Isa::avx2;
#endif
  return Isa::baseline;
}

namespace detail {
inline std::atomic<int>& isa_in_use() {
  static std::atomic<int> value{[] {
    Isa isa = supported_isa();
    if (const char* cap = std::getenv("LEAFRBM_SIMD")) {
      try {
        isa = std::min(isa, isa_from_name(cap), [](Isa a, Isa b) { return static_cast<int>(a) < static_cast<int>(b); });
      } catch (const std::invalid_argument&) {
        // An unknown value leaves the choice to the CPU; show_config() reports what is used.
      }
    }
    return static_cast<int>(isa);
  }()};
  return value;
}
}  // namespace detail

/// The instruction set the elementwise kernels use now.
inline Isa active_isa() { return static_cast<Isa>(detail::isa_in_use().load(std::memory_order_relaxed)); }

/// Selects the kernels' instruction set (for tests and comparisons); throws when the CPU lacks it.
inline void set_active_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(supported_isa()))
    throw std::invalid_argument(std::string("this CPU does not support ") + isa_name(isa));
  detail::isa_in_use().store(static_cast<int>(isa));
}

}  // namespace leafrbm

/// Calls `call` (an elementwise.inc function with its arguments) in the active instruction set.
#define LEAFRBM_SIMD_CALL(call)                                                 \
  do {                                                                          \
    switch (::leafrbm::active_isa()) {                                          \
      case ::leafrbm::Isa::avx512: return ::leafrbm::isa_avx512::call;          \
      case ::leafrbm::Isa::avx2: return ::leafrbm::isa_avx2::call;              \
      default: return ::leafrbm::isa_baseline::call;                            \
    }                                                                           \
  } while (false)
