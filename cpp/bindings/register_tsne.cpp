// t-SNE kernels: checks shapes, releases the GIL, calls leafrbm/tsne.hpp.
#include "common.hpp"
#include "leafrbm/tsne.hpp"

namespace leafrbm::bindings {

namespace {

using I64 = py::array_t<std::int64_t, 0>;

/// A CSR view over (indptr, indices, data) with n_rows rows and columns in [0, n_cols).
tsne::CsrView csr_view(I64& indptr, I64& indices, Array<double>& data, index_t n_rows, index_t n_cols) {
  const std::int64_t* ptr = checked_data(indptr, "indptr", {n_rows + 1}, false);
  const index_t nnz = indices.ndim() == 1 ? indices.shape(0) : -1;
  const std::int64_t* idx = checked_data(indices, "indices", {-1}, false);
  const double* val = checked_data(data, "data", {nnz}, false);
  if (ptr[0] != 0 || ptr[n_rows] != nnz) throw py::value_error("indptr: must start at 0 and end at nnz");
  for (index_t i = 0; i < n_rows; ++i) {
    if (ptr[i + 1] < ptr[i]) throw py::value_error("indptr: must be non-decreasing");
  }
  for (index_t e = 0; e < nnz; ++e) {
    if (idx[e] < 0 || idx[e] >= n_cols) throw py::value_error("indices: column index out of range");
  }
  return {ptr, idx, val, n_rows};
}

tsne::Kernel kernel_for(double dof) {
  if (!(dof > 0) || !std::isfinite(dof)) throw py::value_error("dof must be a positive finite number");
  return {dof};
}

void check_dim(int dim, bool exact) {
  if (dim < 1 || dim > 8) throw py::value_error("embedding: n_components must be in [1, 8], got " + std::to_string(dim));
  if (!exact && dim != 2) {
    throw py::value_error("embedding: the Barnes-Hut kernel needs n_components == 2, got " + std::to_string(dim));
  }
}

template <class T>
void knn_py(Array<T> reference, std::optional<Array<T>> query, index_t k, I64 out_indices, Array<float> out_sqdist,
            int n_threads) {
  const T* ref = checked_data(reference, "reference", {-1, -1}, false);
  const index_t n = reference.shape(0), d = reference.shape(1);
  const T* q = query ? checked_data(*query, "query", {-1, d}, false) : ref;
  const index_t m = query ? query->shape(0) : n;
  const bool exclude_self = !query;
  if (k < 1 || k > n - (exclude_self ? 1 : 0)) {
    throw py::value_error("k must be in [1, " + std::to_string(n - (exclude_self ? 1 : 0)) + "], got " +
                          std::to_string(k));
  }
  std::int64_t* idx = checked_data(out_indices, "out_indices", {m, k}, true);
  float* dist = checked_data(out_sqdist, "out_sqdist", {m, k}, true);
  py::gil_scoped_release release;
  tsne::knn_sqeuclidean(ref, n, d, q, m, k, exclude_self, idx, dist, resolve_threads(n_threads));
}

index_t binary_search_py(Array<float> sqdist, double perplexity, Array<double> out, int n_threads) {
  const float* dist = checked_data(sqdist, "sqdist", {-1, -1}, false);
  const index_t n = sqdist.shape(0), k = sqdist.shape(1);
  double* p = checked_data(out, "out", {n, k}, true);
  if (!(perplexity > 0)) throw py::value_error("perplexity must be > 0");
  py::gil_scoped_release release;
  return tsne::binary_search_perplexity(dist, n, k, perplexity, p, resolve_threads(n_threads));
}

py::tuple symmetrize_py(I64 neighbors, Array<double> conditional_p) {
  const std::int64_t* idx = checked_data(neighbors, "neighbors", {-1, -1}, false);
  const index_t n = neighbors.shape(0), k = neighbors.shape(1);
  const double* p = checked_data(conditional_p, "conditional_p", {n, k}, false);
  tsne::Csr csr;
  {
    py::gil_scoped_release release;
    csr = tsne::symmetrize(idx, p, n, k);
  }
  I64 indptr(static_cast<py::ssize_t>(csr.indptr.size()));
  I64 indices(static_cast<py::ssize_t>(csr.indices.size()));
  Array<double> data(static_cast<py::ssize_t>(csr.data.size()));
  std::copy(csr.indptr.begin(), csr.indptr.end(), indptr.mutable_data());
  std::copy(csr.indices.begin(), csr.indices.end(), indices.mutable_data());
  std::copy(csr.data.begin(), csr.data.end(), data.mutable_data());
  return py::make_tuple(indptr, indices, data);
}

double gradient_py(Array<double> embedding, I64 indptr, I64 indices, Array<double> data, double exaggeration,
                   double dof, double angle, bool exact, bool compute_error, Array<double> out, int n_threads) {
  const double* y = checked_data(embedding, "embedding", {-1, -1}, false);
  const index_t n = embedding.shape(0);
  const int dim = static_cast<int>(embedding.shape(1));
  check_dim(dim, exact);
  const auto p = csr_view(indptr, indices, data, n, n);
  double* grad = checked_data(out, "out", {n, dim}, true);
  const auto kernel = kernel_for(dof);
  py::gil_scoped_release release;
  tsne::GradientWorkspace ws;
  return tsne::gradient(y, dim, p, exaggeration, kernel, angle, exact, compute_error, grad, ws, resolve_threads(n_threads));
}

double kl_exact_py(Array<double> embedding, I64 indptr, I64 indices, Array<double> data, double dof, int n_threads) {
  const double* y = checked_data(embedding, "embedding", {-1, -1}, false);
  const index_t n = embedding.shape(0);
  const int dim = static_cast<int>(embedding.shape(1));
  check_dim(dim, true);
  const auto p = csr_view(indptr, indices, data, n, n);
  const auto kernel = kernel_for(dof);
  py::gil_scoped_release release;
  return tsne::kl_divergence_exact(y, dim, p, kernel, resolve_threads(n_threads));
}

/// Runs one chunk of the optimiser. state = [best_error, best_iter] (float64, updated in place).
py::tuple optimize_py(Array<double> embedding, Array<double> update, Array<double> gains, Array<double> state,
                      I64 indptr, I64 indices, Array<double> data, index_t first_iter, index_t stop_iter,
                      index_t max_iter, double momentum, double learning_rate, double exaggeration, double dof,
                      double angle, bool exact, index_t n_iter_without_progress, double min_grad_norm,
                      int n_threads) {
  double* y = checked_data(embedding, "embedding", {-1, -1}, true);
  const index_t n = embedding.shape(0);
  const int dim = static_cast<int>(embedding.shape(1));
  check_dim(dim, exact);
  const auto p = csr_view(indptr, indices, data, n, n);
  double* upd = checked_data(update, "update", {n, dim}, true);
  double* gn = checked_data(gains, "gains", {n, dim}, true);
  double* st = checked_data(state, "state", {2}, true);
  const auto kernel = kernel_for(dof);
  if (first_iter < 0 || stop_iter < first_iter) throw py::value_error("need 0 <= first_iter <= stop_iter");
  tsne::OptimizerState opt{upd, gn, st[0], static_cast<index_t>(st[1])};
  tsne::OptimizerConfig config;
  config.max_iter = max_iter;
  config.momentum = momentum;
  config.learning_rate = learning_rate;
  config.exaggeration = exaggeration;
  config.angle = angle;
  config.exact = exact;
  config.n_iter_without_progress = n_iter_without_progress;
  config.min_grad_norm = min_grad_norm;
  SignalCheck check;
  tsne::ChunkResult result;
  {
    py::gil_scoped_release release;
    tsne::GradientWorkspace ws;
    result = tsne::optimize_chunk(y, dim, p, kernel, opt, config, first_iter, stop_iter, ws, resolve_threads(n_threads),
                                  [&] { return check(); });
  }
  st[0] = opt.best_error;
  st[1] = static_cast<double>(opt.best_iter);
  check.rethrow_if_interrupted();
  return py::make_tuple(result.last_iter, result.error, result.grad_norm, static_cast<int>(result.reason));
}

index_t transform_py(Array<double> embedding_new, Array<double> embedding_ref, I64 indptr, I64 indices,
                     Array<double> data, double dof, double angle, double learning_rate, double momentum,
                     index_t n_iter, Array<double> update, Array<double> gains, int n_threads) {
  double* y = checked_data(embedding_new, "embedding_new", {-1, -1}, true);
  const index_t m = embedding_new.shape(0);
  const int dim = static_cast<int>(embedding_new.shape(1));
  check_dim(dim, true);
  const double* ref = checked_data(embedding_ref, "embedding_ref", {-1, dim}, false);
  const index_t n_ref = embedding_ref.shape(0);
  if (n_ref < 1) throw py::value_error("embedding_ref: needs at least one reference point");
  const auto p = csr_view(indptr, indices, data, m, n_ref);
  double* upd = checked_data(update, "update", {m, dim}, true);
  double* gn = checked_data(gains, "gains", {m, dim}, true);
  const auto kernel = kernel_for(dof);
  if (n_iter < 0) throw py::value_error("n_iter must be >= 0");
  SignalCheck check;
  index_t done;
  {
    py::gil_scoped_release release;
    done = tsne::transform_optimize(y, m, dim, ref, n_ref, p, kernel, angle, learning_rate, momentum, n_iter, upd, gn,
                                    resolve_threads(n_threads), [&] { return check(); });
  }
  check.rethrow_if_interrupted();
  return done;
}

}  // namespace

void register_tsne(py::module_& m) {
  using py::arg;
  m.def("tsne_knn", &knn_py<float>, arg("reference").noconvert(), arg("query").noconvert() = py::none(), arg("k"),
        arg("out_indices").noconvert(), arg("out_sqdist").noconvert(), arg("n_threads") = 1,
        "Exact k nearest reference rows of each query row (or of each reference row, itself excluded).");
  m.def("tsne_knn", &knn_py<double>, arg("reference").noconvert(), arg("query").noconvert() = py::none(), arg("k"),
        arg("out_indices").noconvert(), arg("out_sqdist").noconvert(), arg("n_threads") = 1);
  m.def("tsne_binary_search", &binary_search_py, arg("sqdist").noconvert(), arg("perplexity"),
        arg("out").noconvert(), arg("n_threads") = 1,
        "Conditional P from squared kNN distances (scikit-learn's binary search); returns rows not converged.");
  m.def("tsne_symmetrize", &symmetrize_py, arg("neighbors").noconvert(), arg("conditional_p").noconvert(),
        "(indptr, indices, data) of P = (C + C.T) / sum(C + C.T).");
  m.def("tsne_gradient", &gradient_py, arg("embedding").noconvert(), arg("indptr").noconvert(),
        arg("indices").noconvert(), arg("data").noconvert(), arg("exaggeration"), arg("dof"), arg("angle"),
        arg("exact"), arg("compute_error"), arg("out").noconvert(), arg("n_threads") = 1,
        "Gradient of KL(exaggeration P || Q) into out; returns the KL when compute_error.");
  m.def("tsne_kl_exact", &kl_exact_py, arg("embedding").noconvert(), arg("indptr").noconvert(),
        arg("indices").noconvert(), arg("data").noconvert(), arg("dof") = 1.0, arg("n_threads") = 1,
        "Exact KL(P || Q), Q over all pairs.");
  m.def("tsne_optimize", &optimize_py, arg("embedding").noconvert(), arg("update").noconvert(),
        arg("gains").noconvert(), arg("state").noconvert(), arg("indptr").noconvert(), arg("indices").noconvert(),
        arg("data").noconvert(), arg("first_iter"), arg("stop_iter"), arg("max_iter"), arg("momentum"),
        arg("learning_rate"), arg("exaggeration"), arg("dof"), arg("angle"), arg("exact"),
        arg("n_iter_without_progress"), arg("min_grad_norm"), arg("n_threads") = 1,
        "One chunk of gradient descent; returns (last_iter, error, grad_norm, stop_reason).");
  m.def("tsne_transform", &transform_py, arg("embedding_new").noconvert(), arg("embedding_ref").noconvert(),
        arg("indptr").noconvert(), arg("indices").noconvert(), arg("data").noconvert(), arg("dof"), arg("angle"),
        arg("learning_rate"), arg("momentum"), arg("n_iter"), arg("update").noconvert(), arg("gains").noconvert(),
        arg("n_threads") = 1, "Optimise new points against a fixed reference map; returns iterations done.");
}

}  // namespace leafrbm::bindings
