// RBM kernels: checks shapes, releases the GIL, calls leafrbm/rbm.hpp.
#include "common.hpp"
#include "leafrbm/rbm.hpp"

namespace leafrbm::bindings {

namespace {

template <class T>
RBMView<T> model_view(Array<T>& weights, Array<T>& hidden_bias, Array<T>& visible_bias, bool gaussian,
                      bool writable) {
  T* w = checked_data(weights, "weights", {-1, -1}, writable);
  const index_t H = weights.shape(0), V = weights.shape(1);
  check_blas_dimension(H, "n_hidden");
  check_blas_dimension(V, "n_visible");
  T* bh = checked_data(hidden_bias, "hidden_bias", {H}, writable);
  T* bv = checked_data(visible_bias, "visible_bias", {V}, writable);
  return {w, bh, bv, H, V, gaussian ? VisibleType::gaussian : VisibleType::bernoulli};
}

/// Writes the work completed into progress[0], so that an interrupted caller knows it.
void report_progress(std::optional<py::array_t<std::int64_t, py::array::c_style>>& progress, index_t done) {
  if (progress && progress->size() >= 1 && progress->writeable()) progress->mutable_data()[0] = done;
}

template <class T>
RBMView<const T> const_view(const RBMView<T>& v) {
  return {v.weights, v.hidden_bias, v.visible_bias, v.n_hidden, v.n_visible, v.visible_type};
}

template <class T>
void hidden_pass_py(Array<T> weights, Array<T> hidden_bias, Array<T> visible_bias, bool gaussian,
                    Array<T> visible, Array<T> means, std::optional<Array<T>> samples, std::uint64_t seed,
                    std::uint32_t stream, std::uint64_t step, index_t row_offset, int n_threads) {
  const auto model = model_view(weights, hidden_bias, visible_bias, gaussian, false);
  const T* v = checked_data(visible, "visible", {-1, model.n_visible}, false);
  const index_t n = visible.shape(0);
  T* out = checked_data(means, "means", {n, model.n_hidden}, true);
  T* out_samples = samples ? checked_data(*samples, "samples", {n, model.n_hidden}, true) : nullptr;
  py::gil_scoped_release release;
  hidden_pass(const_view(model), v, n, out, out_samples,
              RandomKey{seed, static_cast<Stream>(stream), step, row_offset}, resolve_threads(n_threads));
}

template <class T>
void visible_pass_py(Array<T> weights, Array<T> hidden_bias, Array<T> visible_bias, bool gaussian,
                     Array<T> hidden, Array<T> means, std::optional<Array<T>> samples, std::uint64_t seed,
                     std::uint32_t stream, std::uint64_t step, index_t row_offset, int n_threads) {
  const auto model = model_view(weights, hidden_bias, visible_bias, gaussian, false);
  const T* h = checked_data(hidden, "hidden", {-1, model.n_hidden}, false);
  const index_t n = hidden.shape(0);
  T* out = checked_data(means, "means", {n, model.n_visible}, true);
  T* out_samples = samples ? checked_data(*samples, "samples", {n, model.n_visible}, true) : nullptr;
  py::gil_scoped_release release;
  visible_pass(const_view(model), h, n, out, out_samples,
               RandomKey{seed, static_cast<Stream>(stream), step, row_offset}, resolve_threads(n_threads));
}

template <class T>
void free_energy_py(Array<T> weights, Array<T> hidden_bias, Array<T> visible_bias, bool gaussian,
                    Array<T> visible, Array<T> out, int n_threads) {
  const auto model = model_view(weights, hidden_bias, visible_bias, gaussian, false);
  const T* v = checked_data(visible, "visible", {-1, model.n_visible}, false);
  const index_t n = visible.shape(0);
  T* energies = checked_data(out, "out", {n}, true);
  py::gil_scoped_release release;
  free_energy(const_view(model), v, n, energies, resolve_threads(n_threads));
}

template <class T>
index_t gibbs_chain_py(Array<T> weights, Array<T> hidden_bias, Array<T> visible_bias, bool gaussian,
                       Array<T> visible, index_t n_steps, std::uint64_t seed, std::uint32_t stream,
                       std::uint64_t first_step, std::optional<Array<T>> visible_means, int n_threads,
                       std::optional<py::array_t<std::int64_t, py::array::c_style>> progress) {
  const auto model = model_view(weights, hidden_bias, visible_bias, gaussian, false);
  T* v = checked_data(visible, "visible", {-1, model.n_visible}, true);
  const index_t n = visible.shape(0);
  T* means = visible_means ? checked_data(*visible_means, "visible_means", {n, model.n_visible}, true) : nullptr;
  if (n_steps < 0) throw py::value_error("n_steps must be >= 0, got " + std::to_string(n_steps));
  SignalCheck check;
  index_t done;
  {
    py::gil_scoped_release release;
    done = gibbs_chain(const_view(model), v, n, n_steps, seed, static_cast<Stream>(stream), first_step, means,
                       resolve_threads(n_threads), check);
  }
  report_progress(progress, done);
  check.rethrow_if_interrupted();
  return done;
}

template <class T>
index_t train_epoch_py(Array<T> weights, Array<T> hidden_bias, Array<T> visible_bias, bool gaussian,
                       Array<T> weight_velocity, Array<T> hidden_bias_velocity, Array<T> visible_bias_velocity,
                       Array<T> chain_hidden, Array<T> hidden_activity, Array<T> data,
                       py::array_t<std::int64_t, py::array::c_style> order, index_t batch_size,
                       double learning_rate, double momentum, double weight_decay, double sparsity_target,
                       double sparsity_cost, double sparsity_damping, int k, bool persistent, std::uint64_t seed,
                       std::uint64_t first_batch, int n_threads,
                       std::optional<py::array_t<std::int64_t, py::array::c_style>> progress) {
  const auto model = model_view(weights, hidden_bias, visible_bias, gaussian, true);
  const index_t H = model.n_hidden, V = model.n_visible;
  TrainState<T> state{};
  state.weight_velocity = checked_data(weight_velocity, "weight_velocity", {H, V}, true);
  state.hidden_bias_velocity = checked_data(hidden_bias_velocity, "hidden_bias_velocity", {H}, true);
  state.visible_bias_velocity = checked_data(visible_bias_velocity, "visible_bias_velocity", {V}, true);
  state.chain_hidden = checked_data(chain_hidden, "chain_hidden", {-1, H}, true);
  state.n_chains = chain_hidden.shape(0);
  state.hidden_activity = checked_data(hidden_activity, "hidden_activity", {H}, true);
  const T* x = checked_data(data, "data", {-1, V}, false);
  const index_t n = data.shape(0);
  if (order.ndim() != 1 || order.shape(0) != n) throw py::value_error("order: expected shape (n_samples,)");
  const std::int64_t* rows = order.data();
  for (index_t i = 0; i < n; ++i) {
    if (rows[i] < 0 || rows[i] >= n) throw py::value_error("order: row index out of range");
  }
  if (batch_size < 1) throw py::value_error("batch_size must be >= 1, got " + std::to_string(batch_size));
  if (persistent && state.n_chains < 1) throw py::value_error("chain_hidden: needs at least one chain");
  check_blas_dimension(batch_size, "batch_size");
  TrainConfig config;
  config.learning_rate = learning_rate;
  config.momentum = momentum;
  config.weight_decay = weight_decay;
  config.sparsity_target = sparsity_target;
  config.sparsity_cost = sparsity_cost;
  config.sparsity_damping = sparsity_damping;
  config.k = k;
  config.persistent = persistent;
  config.seed = seed;
  config.n_threads = resolve_threads(n_threads);
  SignalCheck check;
  index_t done;
  {
    py::gil_scoped_release release;
    done = train_epoch(model, state, x, n, rows, batch_size, config, first_batch, check);
  }
  report_progress(progress, done);
  check.rethrow_if_interrupted();
  return done;
}

template <class T>
void define(py::module_& m) {
  using py::arg;
  m.def("hidden_pass", &hidden_pass_py<T>, arg("weights").noconvert(), arg("hidden_bias").noconvert(),
        arg("visible_bias").noconvert(), arg("gaussian"), arg("visible").noconvert(), arg("means").noconvert(),
        arg("samples").noconvert() = py::none(), arg("seed") = 0, arg("stream") = 0, arg("step") = 0,
        arg("row_offset") = 0, arg("n_threads") = 1,
        "means = sigmoid(visible @ weights.T + hidden_bias); samples (optional) = Bernoulli(means).");
  m.def("visible_pass", &visible_pass_py<T>, arg("weights").noconvert(), arg("hidden_bias").noconvert(),
        arg("visible_bias").noconvert(), arg("gaussian"), arg("hidden").noconvert(), arg("means").noconvert(),
        arg("samples").noconvert() = py::none(), arg("seed") = 0, arg("stream") = 0, arg("step") = 0,
        arg("row_offset") = 0, arg("n_threads") = 1,
        "means = act(hidden @ weights + visible_bias); samples (optional) drawn from the visible units.");
  m.def("free_energy", &free_energy_py<T>, arg("weights").noconvert(), arg("hidden_bias").noconvert(),
        arg("visible_bias").noconvert(), arg("gaussian"), arg("visible").noconvert(), arg("out").noconvert(),
        arg("n_threads") = 1, "Free energy of each visible row (accumulated in double).");
  m.def("gibbs_chain", &gibbs_chain_py<T>, arg("weights").noconvert(), arg("hidden_bias").noconvert(),
        arg("visible_bias").noconvert(), arg("gaussian"), arg("visible").noconvert(), arg("n_steps"),
        arg("seed"), arg("stream"), arg("first_step") = 0, arg("visible_means").noconvert() = py::none(),
        arg("n_threads") = 1, arg("progress").noconvert() = py::none(), "Run n_steps of block Gibbs v→h→v in place; returns the steps completed.");
  m.def("train_epoch", &train_epoch_py<T>, arg("weights").noconvert(), arg("hidden_bias").noconvert(),
        arg("visible_bias").noconvert(), arg("gaussian"), arg("weight_velocity").noconvert(),
        arg("hidden_bias_velocity").noconvert(), arg("visible_bias_velocity").noconvert(),
        arg("chain_hidden").noconvert(), arg("hidden_activity").noconvert(), arg("data").noconvert(),
        arg("order").noconvert(), arg("batch_size"), arg("learning_rate"), arg("momentum"), arg("weight_decay"),
        arg("sparsity_target"), arg("sparsity_cost"), arg("sparsity_damping"), arg("k"), arg("persistent"),
        arg("seed"), arg("first_batch"), arg("n_threads") = 1, arg("progress").noconvert() = py::none(),
        "One CD-k / PCD-k epoch over data in the given row order; returns the minibatches completed.");
}

}  // namespace

void register_rbm(py::module_& m) {
  define<float>(m);
  define<double>(m);
}

}  // namespace leafrbm::bindings
