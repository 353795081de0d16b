// chunkeval._core: the compiled core behind the pure-Python API. Each area registers itself.
#include <pybind11/pybind11.h>

namespace py = pybind11;

#ifndef CHUNKEVAL_VERSION
#error "CHUNKEVAL_VERSION must be defined by the build (CMakeLists.txt reads it from pyproject.toml)"
#endif

void register_metrics(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "chunkeval's C++ core: span metrics over CSR batches of int64 spans. "
              "Use the public API in chunkeval.metrics; this module trusts its caller for meaning, "
              "not for memory safety.";
    m.attr("__version__") = CHUNKEVAL_VERSION;
    register_metrics(m);
}
