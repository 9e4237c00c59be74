// The compiled core of leafrbm: `leafrbm._core`. Each area registers its functions here.
#include <pybind11/pybind11.h>

#include "leafrbm/blas.hpp"

namespace py = pybind11;

namespace leafrbm::bindings {
void register_config(py::module_& m);
void register_random(py::module_& m);
void register_rbm(py::module_& m);
void register_dbn(py::module_& m);
void register_tsne(py::module_& m);
}  // namespace leafrbm::bindings

PYBIND11_MODULE(_core, m) {
  m.doc() = "leafrbm's compiled kernels (private: use the leafrbm package).";
  leafrbm::blas_use_single_thread();
  leafrbm::bindings::register_config(m);
  leafrbm::bindings::register_random(m);
  leafrbm::bindings::register_rbm(m);
  leafrbm::bindings::register_dbn(m);
  leafrbm::bindings::register_tsne(m);
}
