// Build and runtime facts for leafrbm.show_config().
#include <string>

#include "common.hpp"
#include "leafrbm/blas.hpp"
#include "leafrbm/simd.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace leafrbm::bindings {

namespace {

std::string compiled_simd() {
#if defined(__AVX512F__)
  return "AVX512F";
#elif defined(__AVX2__)
  return "AVX2";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE4_2__)
  return "SSE4.2";
#elif defined(__SSE2__)
  return "SSE2";
#elif defined(__ARM_NEON)
  return "NEON";
#else
  return "none";
#endif
}

py::list runtime_simd() {
  py::list found;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) found.append("SSE4.2");
  if (__builtin_cpu_supports("avx")) found.append("AVX");
  if (__builtin_cpu_supports("avx2")) found.append("AVX2");
  if (__builtin_cpu_supports("fma")) found.append("FMA");
  if (__builtin_cpu_supports("avx512f")) found.append("AVX512F");
#endif
  return found;
}

}  // namespace

void register_config(py::module_& m) {
  m.def("build_config", [] {
    py::dict config;
#if defined(__clang__)
    config["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    config["compiler"] = std::string("gcc ") + __VERSION__;
#else
    config["compiler"] = "unknown";
#endif
    config["cxx_standard"] = static_cast<long>(__cplusplus);
    config["blas"] = blas_description();
    config["blas_threads_per_kernel_task"] = 1;
#ifdef _OPENMP
    config["openmp"] = static_cast<long>(_OPENMP);
    config["openmp_max_threads"] = omp_get_max_threads();
#else
    config["openmp"] = py::none();
    config["openmp_max_threads"] = 1;
#endif
    config["simd_compiled"] = compiled_simd();
    config["simd_runtime"] = runtime_simd();
    config["simd_kernels"] = isa_name(active_isa());
    config["simd_kernels_supported"] = isa_name(supported_isa());
#ifdef LEAFRBM_SANITIZE
    config["sanitizers"] = true;
#else
    config["sanitizers"] = false;
#endif
    return config;
  }, "Compiler, BLAS, OpenMP and SIMD facts of this build (a dict).");
  m.def("simd_kernels", [] { return std::string(isa_name(active_isa())); },
        "The instruction set the elementwise kernels use now: 'baseline', 'avx2' or 'avx512'.");
  m.def("set_simd_kernels", [](const std::string& name) { set_active_isa(isa_from_name(name)); }, py::arg("name"),
        "Use the elementwise kernels compiled for `name` ('baseline', 'avx2' or 'avx512'); every copy gives "
        "bit-identical results. Raises ValueError for an unknown name or one this CPU does not support.");
}

}  // namespace leafrbm::bindings
