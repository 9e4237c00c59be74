// Shared helpers of the binding layer: array checks, views, GIL-aware interrupt checks.
// No algorithm lives here.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "leafrbm/blas.hpp"

namespace leafrbm::bindings {

namespace py = pybind11;

template <class T>
using Array = py::array_t<T, 0>;  // any strides: checked_data() refuses, with a message

/// Checks ndim, C-contiguity, shape (-1 = any) and, for outputs, writeability; returns a pointer.
template <class T>
T* checked_data(Array<T>& array, const char* name, std::initializer_list<index_t> shape, bool writable) {
  if (array.ndim() != static_cast<py::ssize_t>(shape.size())) {
    throw py::value_error(std::string(name) + ": expected a " + std::to_string(shape.size()) +
                          "-d array, got ndim=" + std::to_string(array.ndim()));
  }
  int axis = 0;
  for (index_t expected : shape) {
    if (expected >= 0 && array.shape(axis) != expected) {
      throw py::value_error(std::string(name) + ": expected shape[" + std::to_string(axis) + "] == " +
                            std::to_string(expected) + ", got " + std::to_string(array.shape(axis)));
    }
    ++axis;
  }
  if (!(array.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + ": array must be C-contiguous");
  }
  if (writable && !array.writeable()) {
    throw py::value_error(std::string(name) + ": output array is read-only");
  }
  return writable ? array.mutable_data() : const_cast<T*>(array.data());
}

/// Throttled Ctrl-C check, safe to call with the GIL released: at most every 50 ms it
/// reacquires the GIL and runs Python's signal handlers. After the kernel returns, call
/// rethrow_if_interrupted() with the GIL held.
class SignalCheck {
 public:
  bool operator()() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(50)) return false;
    last_ = now;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
      interrupted_ = true;
      error_ = py::error_already_set();
    }
    return interrupted_;
  }
  void rethrow_if_interrupted() {
    if (interrupted_) {
      interrupted_ = false;
      error_->restore();
      throw py::error_already_set();
    }
  }
  ~SignalCheck() {
    if (error_) {
      py::gil_scoped_acquire gil;
      error_.reset();
    }
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  bool interrupted_ = false;
  std::optional<py::error_already_set> error_;
};

}  // namespace leafrbm::bindings
