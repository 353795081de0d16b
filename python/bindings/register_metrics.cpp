// Bindings for the span-metrics kernel and the chunk index.
//
// Every array argument must already be a C-contiguous 1-D int64 numpy array: nothing is converted
// or copied behind the caller's back, and a wrong buffer is a TypeError/ValueError that says how to
// fix it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "chunkeval/chunk_index.hpp"
#include "chunkeval/metrics.hpp"
#include "chunkeval/parallel.hpp"

namespace py = pybind11;

namespace {

std::string fix_hint() { return "; try np.ascontiguousarray(x, dtype=np.int64)"; }

// A borrowed view of `obj`'s data after checking that it is a 1-D C-contiguous int64 array.
// The caller keeps `obj` alive for as long as it uses the pointer.
const int64_t* int64_column(const py::handle& obj, const std::string& name, int64_t& size) {
    if (!py::isinstance<py::array>(obj)) {
        throw py::type_error(name + " must be a numpy int64 array, not " +
                             std::string(py::str(py::type::handle_of(obj).attr("__name__"))) + fix_hint());
    }
    const auto array = py::reinterpret_borrow<py::array>(obj);
    // EquivTypes, so a non-native byte order or a 32-bit integer is refused, never cast.
    if (!py::array_t<int64_t>::check_(array)) {
        throw py::type_error(name + " must be an int64 array, not " + std::string(py::str(array.dtype())) +
                             fix_hint());
    }
    if (array.ndim() != 1) {
        throw py::value_error(name + " must be 1-D, not " + std::to_string(array.ndim()) + "-D");
    }
    if ((array.flags() & py::array::c_style) == 0) {
        throw py::value_error(name + " must be a C-contiguous int64 array" + fix_hint());
    }
    size = static_cast<int64_t>(array.shape(0));
    return static_cast<const int64_t*>(array.data());
}

chunkeval::SpanView span_columns(const std::string& prefix, const py::handle& doc, const py::handle& start,
                                 const py::handle& end, const char* sep) {
    chunkeval::SpanView view;
    int64_t n_start = 0;
    int64_t n_end = 0;
    view.doc = int64_column(doc, prefix + sep + "doc", view.size);
    view.start = int64_column(start, prefix + sep + "start", n_start);
    view.end = int64_column(end, prefix + sep + "end", n_end);
    if (n_start != view.size || n_end != view.size) {
        throw py::value_error(prefix + sep + "doc, " + prefix + sep + "start and " + prefix + sep +
                              "end must have the same length, not " + std::to_string(view.size) + ", " +
                              std::to_string(n_start) + " and " + std::to_string(n_end));
    }
    return view;
}

chunkeval::RaggedSpanView ragged_columns(const std::string& prefix, const py::handle& offsets,
                                         const py::handle& doc, const py::handle& start,
                                         const py::handle& end) {
    chunkeval::RaggedSpanView view;
    int64_t n_offsets = 0;
    view.offsets = int64_column(offsets, prefix + "_offsets", n_offsets);
    if (n_offsets < 1) {
        throw py::value_error(prefix + "_offsets must have n_questions + 1 >= 1 entries, starting with 0");
    }
    view.n_groups = n_offsets - 1;
    view.spans = span_columns(prefix, doc, start, end, "_");
    return view;
}

std::unique_ptr<chunkeval::ChunkIndex> make_chunk_index(const py::object& doc, const py::object& start,
                                                        const py::object& end) {
    const chunkeval::SpanView chunks = span_columns("chunks", doc, start, end, ".");
    // Safe without the GIL: the constructor copies out of three buffers that `doc`, `start` and `end`
    // keep alive until we return, and touches no Python object.
    py::gil_scoped_release release;
    return std::make_unique<chunkeval::ChunkIndex>(chunks, "chunks");
}

py::tuple span_metrics(const py::object& ref_offsets, const py::object& ref_doc, const py::object& ref_start,
                       const py::object& ref_end, const py::object& ret_offsets, const py::object& ret_doc,
                       const py::object& ret_start, const py::object& ret_end,
                       const chunkeval::ChunkIndex* chunk_index, const py::object& ks, int k_mode,
                       int semantics, int num_threads, bool ranked) {
    const chunkeval::RaggedSpanView references = ragged_columns("ref", ref_offsets, ref_doc, ref_start, ref_end);
    const chunkeval::RaggedSpanView retrieved = ragged_columns("ret", ret_offsets, ret_doc, ret_start, ret_end);
    if (references.n_groups != retrieved.n_groups) {
        throw py::value_error("ref_offsets and ret_offsets must have the same length (n_questions + 1), not " +
                              std::to_string(references.n_groups + 1) + " and " +
                              std::to_string(retrieved.n_groups + 1));
    }
    if (k_mode < 0 || k_mode > 2) {
        throw py::value_error("k_mode must be 0 (list), 1 (all) or 2 (auto), not " + std::to_string(k_mode));
    }
    if (semantics < 0 || semantics > 1) {
        throw py::value_error("semantics must be 0 (set) or 1 (chroma), not " + std::to_string(semantics));
    }

    chunkeval::MetricsOptions options;
    options.k_mode = static_cast<chunkeval::KMode>(k_mode);
    options.semantics = static_cast<chunkeval::Semantics>(semantics);
    options.ks = int64_column(ks, "ks", options.n_ks);
    options.num_threads = num_threads;
    options.ranked = ranked;
    if (ranked && chunk_index == nullptr) {
        throw py::value_error("ranked=True needs the chunking: rank metrics count the evidence chunks");
    }

    const py::ssize_t n_questions = static_cast<py::ssize_t>(references.n_groups);
    const py::ssize_t n_columns = static_cast<py::ssize_t>(chunkeval::metric_columns(options.k_mode, options.n_ks));
    py::array_t<double> recall({n_questions, n_columns});
    py::array_t<double> precision({n_questions, n_columns});
    py::array_t<double> iou({n_questions, n_columns});
    py::array_t<double> precision_omega(n_questions);
    py::array_t<double> coverage(n_questions);
    py::array_t<int64_t> n_evidence_chunks(n_questions);
    py::object rank = py::none();
    double* rank_data = nullptr;
    if (ranked) {
        py::array_t<double> block({static_cast<py::ssize_t>(chunkeval::kRankMetrics), n_questions, n_columns});
        rank_data = block.mutable_data();
        rank = block;
    }

    chunkeval::MetricsOutputs out;
    out.recall = recall.mutable_data();
    out.precision = precision.mutable_data();
    out.iou = iou.mutable_data();
    out.precision_omega = precision_omega.mutable_data();
    out.coverage = coverage.mutable_data();
    out.n_evidence_chunks = n_evidence_chunks.mutable_data();
    out.rank = rank_data;
    {
        // Safe without the GIL: the kernel touches no Python object. It reads the input buffers through
        // the views checked above (the argument objects keep those arrays alive until we return; the
        // ChunkIndex is immutable) and writes only into the six output arrays created above, which no
        // other Python code can see yet. It re-checks every offset before it indexes with it, so even a
        // buffer mutated by another thread meanwhile cannot make it read out of bounds.
        py::gil_scoped_release release;
        chunkeval::span_metrics(references, retrieved, chunk_index, options, out);
    }
    return py::make_tuple(recall, precision, iou, precision_omega, coverage, n_evidence_chunks, rank);
}

}  // namespace

void register_metrics(py::module_& m) {
    py::class_<chunkeval::ChunkIndex>(m, "ChunkIndex",
                                      "Immutable index over a chunking: chunk rows sorted by (doc, start), "
                                      "with an implicit interval tree per document. Copies its input.")
        .def(py::init(&make_chunk_index), py::arg("doc"), py::arg("start"), py::arg("end"),
             "Index chunk spans given as three 1-D C-contiguous int64 arrays of equal length "
             "(0 <= start < end <= 2**32 on every row; ValueError otherwise).")
        .def_property_readonly("size", &chunkeval::ChunkIndex::size, "Number of chunk rows.")
        .def_property_readonly("n_docs", &chunkeval::ChunkIndex::n_docs, "Number of distinct doc ids.")
        .def("__len__", [](const chunkeval::ChunkIndex& index) { return index.size(); })
        .def(
            "docs",
            [](const chunkeval::ChunkIndex& index) {
                const auto& docs = index.docs();
                py::array_t<int64_t> result(static_cast<py::ssize_t>(docs.size()));
                std::copy(docs.begin(), docs.end(), result.mutable_data());
                return result;
            },
            "Sorted distinct doc ids, as a new int64 array.")
        .def("__repr__", [](const chunkeval::ChunkIndex& index) {
            return "ChunkIndex(size=" + std::to_string(index.size()) + ", n_docs=" + std::to_string(index.n_docs()) +
                   ")";
        });

    m.def("span_metrics", &span_metrics, py::arg("ref_offsets"), py::arg("ref_doc"), py::arg("ref_start"),
          py::arg("ref_end"), py::arg("ret_offsets"), py::arg("ret_doc"), py::arg("ret_start"), py::arg("ret_end"),
          py::arg("chunk_index").none(true), py::arg("ks"), py::arg("k_mode"), py::arg("semantics"),
          py::arg("num_threads"), py::arg("ranked") = false,
          "Score every question (docs/engine.md). Returns (recall, precision, iou, precision_omega, coverage, "
          "n_evidence_chunks, rank): the first three float64 of shape (n_questions, n_cols) with n_cols = len(ks) in "
          "list mode (k_mode=0) and 1 in modes 1 (all) and 2 (auto); the rest one value per question "
          "(NaN, NaN and -1 when chunk_index is None); rank is None, or with ranked=True (needs chunk_index) the rank "
          "metrics hit, mrr, map, ndcg, ndcg_graded as one float64 array of shape (5, n_questions, n_cols). semantics: 0 = set, 1 = chroma. num_threads: 0 = every "
          "hardware thread. Bad input raises ValueError naming the array and row; the bounds are 0 <= start < end <= 2**32 "
          "and at most 2**20 references and 2**20 scored retrieved rows per question.");

    m.def("hardware_concurrency", &chunkeval::hardware_concurrency,
          "Number of hardware threads (std::thread::hardware_concurrency(), at least 1).");
}
