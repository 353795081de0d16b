// Span metrics of ranked retrieval against reference spans: the algorithm of docs/engine.md.
#pragma once

#include <cstdint>

#include "chunkeval/chunk_index.hpp"
#include "chunkeval/spans.hpp"

namespace chunkeval {

enum class KMode : int {
    list = 0,       // one column per cut-off in `ks`
    all = 1,        // one column: each question's whole retrieved list
    automatic = 2,  // one column: each question's first min(n_evidence_chunks, len) rows
};

enum class Semantics : int {
    set = 0,     // measures of unions; overlap needs positive length
    chroma = 1,  // Chroma's chunking_evaluation arithmetic; touching spans intersect
};

struct MetricsOptions {
    KMode k_mode = KMode::list;
    Semantics semantics = Semantics::set;
    const int64_t* ks = nullptr;  // list mode: strictly increasing cut-offs, all >= 1
    int64_t n_ks = 0;
    int num_threads = 1;  // 0 = every hardware thread
    bool ranked = false;  // also the rank metrics (docs/engine.md §4); needs chunks
};

// Caller-owned outputs. recall, precision and iou are row-major (n_questions, n_columns);
// the other three hold one value per question.
struct MetricsOutputs {
    double* recall = nullptr;
    double* precision = nullptr;
    double* iou = nullptr;
    double* precision_omega = nullptr;  // NaN without chunks
    double* coverage = nullptr;         // NaN without chunks
    int64_t* n_evidence_chunks = nullptr;  // -1 without chunks
    // With options.ranked: kRankMetrics blocks of (n_questions, n_columns), row-major, in the order
    // hit, mrr, map, ndcg, ndcg_graded.
    double* rank = nullptr;
};

inline constexpr int kRankMetrics = 5;

// Columns of recall/precision/iou: n_ks in list mode, 1 otherwise.
int64_t metric_columns(KMode k_mode, int64_t n_ks) noexcept;

// The checks span_metrics runs before it starts: matching question counts, offsets (first 0,
// non-decreasing, last = row count), mode and semantics values, ks (non-empty, strictly increasing,
// >= 1 in list mode), chunks present in automatic mode, and at most 2^20 references and 2^20
// scored retrieved rows per question (auto mode's scored count is checked while scoring). Span rows
// (0 <= start < end <= 2^32) are checked while the kernel reads them. Throws std::invalid_argument.
void validate_metrics_inputs(const RaggedSpanView& references, const RaggedSpanView& retrieved,
                             const ChunkIndex* chunks, const MetricsOptions& options);

// With options.ranked, also the rank metrics of docs/engine.md §4 (relevance is a positive overlap
// with the references' union, repeated rows take no rank, cut-offs count ranks): the ranks may read
// past the scored rows, up to the whole list. Needs chunks.
//
// Scores every question (one per CSR group; references and retrieved must have the same number of
// groups). `chunks` may be null: then precision_omega and coverage are NaN, n_evidence_chunks -1.
// Unknown doc ids match no chunks. Throws std::invalid_argument on bad input, naming the array and
// row (the first bad row, whatever the thread count); outputs are then unspecified. Thread-safe
// for distinct outputs; options.num_threads threads (one below 2048 questions).
//
// Every ratio is double(a) / double(b) of exact integer counts, each <= 2^53, so it is the exact
// ratio rounded once (docs/engine.md, "Bounds"): rows must have 0 <= start < end <= 2^32, and a
// question at most 2^20 references and 2^20 scored retrieved rows (rows past the deepest cut-off
// are checked but not scored); anything else throws, naming the array, the row or question, the
// value and the bound. Time is O(n log n) in the rows of a question, whatever their layout.
// A question without references divides by zero (NaN); chunkeval.metrics rejects such questions
// before they get here.
void span_metrics(const RaggedSpanView& references, const RaggedSpanView& retrieved,
                  const ChunkIndex* chunks, const MetricsOptions& options, const MetricsOutputs& out);

}  // namespace chunkeval
