// Exposes the counter-based generator so that tests can share the kernels' random numbers.
#include "common.hpp"
#include "leafrbm/parallel.hpp"
#include "leafrbm/rng.hpp"

namespace leafrbm::bindings {

namespace {

template <class T, bool normal>
void fill(std::uint64_t seed, std::uint32_t stream, std::uint64_t step, Array<T> out, index_t row_offset,
          int n_threads) {
  T* data = checked_data(out, "out", {-1, -1}, true);
  const index_t rows = out.shape(0), cols = out.shape(1);
  py::gil_scoped_release release;
  parallel_for(rows, resolve_threads(n_threads), [&](index_t r) {
    T* row = data + r * cols;
    if constexpr (normal) {
      normal_row<T>(seed, static_cast<Stream>(stream), step, static_cast<std::uint64_t>(row_offset + r), 0,
                    static_cast<std::size_t>(cols), row);
    } else {
      uniform_row<T>(seed, static_cast<Stream>(stream), step, static_cast<std::uint64_t>(row_offset + r), 0,
                     static_cast<std::size_t>(cols), row);
    }
  });
}

template <class T>
void define(py::module_& m) {
  m.def("random_uniform", &fill<T, false>, py::arg("seed"), py::arg("stream"), py::arg("step"),
        py::arg("out").noconvert(), py::arg("row_offset") = 0, py::arg("n_threads") = 1,
        "Fill out (rows × cols) with the uniforms [0, 1) keyed by (seed, stream, step, row_offset + row, col).");
  m.def("random_normal", &fill<T, true>, py::arg("seed"), py::arg("stream"), py::arg("step"),
        py::arg("out").noconvert(), py::arg("row_offset") = 0, py::arg("n_threads") = 1,
        "Fill out with standard normals (Box-Muller on column pairs) keyed like random_uniform.");
}

}  // namespace

void register_random(py::module_& m) {
  define<float>(m);
  define<double>(m);
  py::dict streams;
  streams["hidden_positive"] = static_cast<int>(Stream::hidden_positive);
  streams["visible_chain"] = static_cast<int>(Stream::visible_chain);
  streams["hidden_chain"] = static_cast<int>(Stream::hidden_chain);
  streams["user_hidden"] = static_cast<int>(Stream::user_hidden);
  streams["user_visible"] = static_cast<int>(Stream::user_visible);
  streams["user_normal"] = static_cast<int>(Stream::user_normal);
  streams["user_uniform"] = static_cast<int>(Stream::user_uniform);
  streams["ais"] = static_cast<int>(Stream::ais);
  streams["inpaint"] = static_cast<int>(Stream::inpaint);
  streams["dream"] = static_cast<int>(Stream::dream);
  streams["tsne"] = static_cast<int>(Stream::tsne);
  m.attr("STREAMS") = streams;
}

}  // namespace leafrbm::bindings
