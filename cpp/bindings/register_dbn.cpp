// Stack chains (inpainting, dreams), AIS and exact log Z: checks inputs, releases the GIL, calls
// leafrbm/inpaint.hpp and leafrbm/ais.hpp.
#include <vector>

#include "common.hpp"
#include "leafrbm/ais.hpp"
#include "leafrbm/inpaint.hpp"

namespace leafrbm::bindings {

namespace {

using Progress = std::optional<py::array_t<std::int64_t, py::array::c_style>>;

void write_progress(Progress& progress, index_t done) {
  if (progress && progress->size() >= 1 && progress->writeable()) progress->mutable_data()[0] = done;
}

template <class T>
RBMView<const T> layer_view(Array<T>& weights, Array<T>& hidden_bias, Array<T>& visible_bias, bool gaussian,
                            const std::string& name) {
  const T* w = checked_data(weights, (name + " weights").c_str(), {-1, -1}, false);
  const index_t H = weights.shape(0), V = weights.shape(1);
  check_blas_dimension(H, "n_hidden");
  check_blas_dimension(V, "n_visible");
  const T* bh = checked_data(hidden_bias, (name + " hidden_bias").c_str(), {H}, false);
  const T* bv = checked_data(visible_bias, (name + " visible_bias").c_str(), {V}, false);
  return {w, bh, bv, H, V, gaussian ? VisibleType::gaussian : VisibleType::bernoulli};
}

template <class T>
std::vector<RBMView<const T>> stack_views(std::vector<Array<T>>& weights, std::vector<Array<T>>& hidden_biases,
                                          std::vector<Array<T>>& visible_biases, bool gaussian) {
  if (weights.empty()) throw py::value_error("weights: need at least one layer");
  if (hidden_biases.size() != weights.size() || visible_biases.size() != weights.size())
    throw py::value_error("weights, hidden_biases and visible_biases must have the same number of layers");
  std::vector<RBMView<const T>> layers;
  for (std::size_t l = 0; l < weights.size(); ++l) {
    layers.push_back(layer_view(weights[l], hidden_biases[l], visible_biases[l], gaussian && l == 0,
                                "layer " + std::to_string(l)));
    if (l > 0 && layers[l].n_visible != layers[l - 1].n_hidden)
      throw py::value_error("layer " + std::to_string(l) + ": n_visible = " + std::to_string(layers[l].n_visible) +
                            " does not match the previous layer's n_hidden = " +
                            std::to_string(layers[l - 1].n_hidden));
  }
  return layers;
}

template <class T>
index_t stack_chain_py(std::vector<Array<T>> weights, std::vector<Array<T>> hidden_biases,
                       std::vector<Array<T>> visible_biases, bool gaussian, Array<T> visible, index_t n_steps,
                       std::uint64_t seed, std::uint32_t stream, std::uint64_t first_step,
                       std::optional<py::array_t<std::uint8_t, 0>> clamp_mask, std::optional<Array<T>> final_means,
                       std::optional<Array<T>> frames, index_t keep_every, bool mean_field, index_t average_from, int n_threads,
                       Progress progress) {
  const auto layers = stack_views(weights, hidden_biases, visible_biases, gaussian);
  const index_t V = layers[0].n_visible;
  T* v = checked_data(visible, "visible", {-1, V}, true);
  const index_t n = visible.shape(0);
  check_blas_dimension(n, "n_rows");
  if (n_steps < 0) throw py::value_error("n_steps must be >= 0, got " + std::to_string(n_steps));
  if (keep_every < 1) throw py::value_error("keep_every must be >= 1, got " + std::to_string(keep_every));
  StackChainOptions<T> options;
  options.keep_every = keep_every;
  options.mean_field = mean_field;
  options.average_from = average_from;
  if (clamp_mask) options.clamp_mask = checked_data(*clamp_mask, "clamp_mask", {n, V}, false);
  if (final_means) options.final_means = checked_data(*final_means, "final_means", {n, V}, true);
  if (frames) options.frames = checked_data(*frames, "frames", {n_steps / keep_every, n, V}, true);
  SignalCheck check;
  index_t done;
  {
    py::gil_scoped_release release;
    done = stack_chain(layers, v, n, n_steps, seed, static_cast<Stream>(stream), first_step, options,
                       resolve_threads(n_threads), check);
  }
  write_progress(progress, done);
  check.rethrow_if_interrupted();
  return done;
}

template <class T>
double exact_log_partition_py(Array<T> weights, Array<T> hidden_bias, Array<T> visible_bias, bool gaussian,
                              bool enumerate_hidden, int n_threads) {
  const auto model = layer_view(weights, hidden_bias, visible_bias, gaussian, "model");
  const index_t bits = enumerate_hidden ? model.n_hidden : model.n_visible;
  if (bits > 30)
    throw py::value_error("exact log Z enumerates 2^" + std::to_string(bits) + " states; at most 2^30 are supported");
  if (gaussian && !enumerate_hidden) throw py::value_error("a Gaussian RBM's exact log Z enumerates the hidden layer");
  py::gil_scoped_release release;
  return exact_log_partition(model, enumerate_hidden, resolve_threads(n_threads));
}

template <class T>
double ais_py(Array<T> weights, Array<T> hidden_bias, Array<T> visible_bias, Array<T> base_visible_bias,
              py::array_t<double, 0> betas, index_t n_runs, std::uint64_t seed, py::array_t<double, 0> log_weights,
              int n_threads, Progress progress, bool gaussian) {
  const auto model = layer_view(weights, hidden_bias, visible_bias, gaussian, "model");
  const T* base = checked_data(base_visible_bias, "base_visible_bias", {model.n_visible}, false);
  const double* beta = checked_data(betas, "betas", {-1}, false);
  const index_t n_betas = betas.shape(0);
  if (n_betas < 2) throw py::value_error("betas: need at least 2 temperatures, got " + std::to_string(n_betas));
  if (beta[0] != 0.0 || beta[n_betas - 1] != 1.0) throw py::value_error("betas must start at 0 and end at 1");
  for (index_t k = 1; k < n_betas; ++k)
    if (!(beta[k] >= beta[k - 1])) throw py::value_error("betas must be non-decreasing");
  if (n_runs < 1) throw py::value_error("n_runs must be >= 1, got " + std::to_string(n_runs));
  check_blas_dimension(n_runs, "n_runs");
  double* out = checked_data(log_weights, "log_weights", {n_runs}, true);
  SignalCheck check;
  index_t done = 0;
  double log_z0;
  {
    py::gil_scoped_release release;
    log_z0 = ais_log_weights(model, base, beta, n_betas, n_runs, seed, out, &done, resolve_threads(n_threads), check);
  }
  write_progress(progress, done);
  check.rethrow_if_interrupted();
  return log_z0;
}

template <class T>
void define(py::module_& m) {
  using py::arg;
  m.def("stack_chain", &stack_chain_py<T>, arg("weights"), arg("hidden_biases"), arg("visible_biases"),
        arg("gaussian"), arg("visible").noconvert(), arg("n_steps"), arg("seed"), arg("stream"), arg("first_step") = 0,
        arg("clamp_mask").noconvert() = py::none(), arg("final_means").noconvert() = py::none(),
        arg("frames").noconvert() = py::none(), arg("keep_every") = 1, arg("mean_field") = false, arg("average_from") = -1,
        arg("n_threads") = 1, arg("progress").noconvert() = py::none(),
        "Run n_steps of up-all/down-all Gibbs through a stack of RBMs in place on visible, re-imposing the "
        "clamped pixels after every step; returns the steps completed.");
  m.def("exact_log_partition", &exact_log_partition_py<T>, arg("weights").noconvert(), arg("hidden_bias").noconvert(),
        arg("visible_bias").noconvert(), arg("gaussian"), arg("enumerate_hidden"), arg("n_threads") = 1,
        "Exact log Z by enumerating the states of one layer (double accumulation).");
  m.def("ais_log_weights", &ais_py<T>, arg("weights").noconvert(), arg("hidden_bias").noconvert(),
        arg("visible_bias").noconvert(), arg("base_visible_bias").noconvert(), arg("betas").noconvert(),
        arg("n_runs"), arg("seed"), arg("log_weights").noconvert(), arg("n_threads") = 1,
        arg("progress").noconvert() = py::none(), arg("gaussian") = false,
        "AIS from a base-rate model (Bernoulli, or N(base_visible_bias, I) with gaussian=True): fills "
        "log_weights (n_runs) and returns the base model's log Z.");
}

}  // namespace

void register_dbn(py::module_& m) {
  define<float>(m);
  define<double>(m);
}

}  // namespace leafrbm::bindings
