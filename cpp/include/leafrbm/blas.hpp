// The one door to BLAS: every matrix product in leafrbm goes through gemm() below.
//
// Default build: scipy-openblas32 (PyPI), whose symbols carry the prefix `scipy_`.
// With -DLEAFRBM_SYSTEM_BLAS=ON, plain CBLAS names from a system BLAS are used instead.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include <cblas.h>

#if defined(LEAFRBM_SCIPY_OPENBLAS)
#define LEAFRBM_CBLAS(name) scipy_cblas_##name
#else
#define LEAFRBM_CBLAS(name) cblas_##name
#endif

namespace leafrbm {

using index_t = std::int64_t;

/// Row-major C = alpha·op(A)·op(B) + beta·C.
inline void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, float alpha,
                 const float* a, index_t lda, const float* b, index_t ldb, float beta, float* c,
                 index_t ldc) {
  if (m == 0 || n == 0) return;
  LEAFRBM_CBLAS(sgemm)(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                       trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
                       static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
                       static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
                       static_cast<blasint>(ldc));
}

inline void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, double alpha,
                 const double* a, index_t lda, const double* b, index_t ldb, double beta,
                 double* c, index_t ldc) {
  if (m == 0 || n == 0) return;
  LEAFRBM_CBLAS(dgemm)(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                       trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
                       static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
                       static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
                       static_cast<blasint>(ldc));
}

/// BLAS dimensions are 32-bit in scipy-openblas32: refuse anything larger up front.
inline void check_blas_dimension(index_t value, const char* what) {
  if (value > static_cast<index_t>(INT32_MAX)) {
    throw std::length_error(std::string(what) + " = " + std::to_string(value) +
                            " exceeds the 32-bit BLAS limit (2147483647)");
  }
}

/// Pins this BLAS to one thread: leafrbm parallelises around it (see parallel.hpp).
///
/// Called before every parallel region, not only at import: threadpoolctl (which scikit-learn
/// uses internally) changes the thread count of every BLAS it finds in the process, ours
/// included, and two OpenMP threads each running a two-thread sgemm run ten times slower.
inline void blas_use_single_thread() {
#if defined(LEAFRBM_SCIPY_OPENBLAS)
  if (scipy_openblas_get_num_threads() != 1) scipy_openblas_set_num_threads(1);
#endif
}

/// Name, version and kernel of the BLAS in use, for show_config().
inline std::string blas_description() {
#if defined(LEAFRBM_SCIPY_OPENBLAS)
  return std::string("scipy-openblas32: ") + scipy_openblas_get_config() +
         " (core: " + scipy_openblas_get_corename() + ")";
#else
  return "system CBLAS";
#endif
}

}  // namespace leafrbm
