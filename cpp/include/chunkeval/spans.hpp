// Non-owning views over the int64 columns that describe spans, and the checks every entry point
// runs on them before it trusts an offset enough to index with it.
#pragma once

#include <cstdint>
#include <string>

namespace chunkeval {

// Parallel columns of half-open spans [start, end) in document `doc`. Borrowed, never owned.
struct SpanView {
    const int64_t* doc = nullptr;
    const int64_t* start = nullptr;
    const int64_t* end = nullptr;
    int64_t size = 0;
};

// CSR batch: the rows of group g are spans[offsets[g], offsets[g + 1]).
struct RaggedSpanView {
    const int64_t* offsets = nullptr;  // n_groups + 1 entries
    int64_t n_groups = 0;
    SpanView spans;
};

// One span, used by the kernels' scratch buffers.
struct Span {
    int64_t doc;
    int64_t start;
    int64_t end;
};

// Throws std::invalid_argument naming `name` and the first offending entry unless offsets[0] == 0,
// the offsets never decrease and offsets[n_groups] == n_rows.
void validate_offsets(const char* name, const int64_t* offsets, int64_t n_groups, int64_t n_rows);

// The engine's bounds (docs/engine.md, "Bounds"). Every position of a reference, retrieved or
// chunk row satisfies 0 <= start < end <= kMaxPosition, and a question holds at most
// kMaxRowsPerQuestion references and scores at most kMaxRowsPerQuestion retrieved rows. Under them
// every count the engine divides is an exact integer <= 2^53, so it is exact as a double too, and
// every returned ratio is the exact ratio rounded once (the proof is in metrics.cpp, next to Count).
constexpr int64_t kMaxPosition = int64_t{1} << 32;
constexpr int64_t kMaxRowsPerQuestion = int64_t{1} << 20;

// Throws std::invalid_argument naming `name` and the first offending row unless every row has
// 0 <= start < end <= kMaxPosition.
void validate_span_rows(const char* name, const SpanView& spans);

// The message both validators use, so that checks fused into the kernels read the same.
std::string bad_span_message(const char* name, int64_t row, int64_t start, int64_t end);

// The message for a question over kMaxRowsPerQuestion rows: `name` is "references" or
// "retrieved" (then `rows` counts the scored rows, those up to the deepest cut-off).
std::string too_many_rows_message(const char* name, int64_t question, int64_t rows);

// As unsigned numbers a negative start or end is above 2^63, so two comparisons do: start < end
// fails for a negative start with a non-negative end, and end <= 2^32 for every other negative.
inline bool span_row_ok(int64_t start, int64_t end) noexcept {
    return (static_cast<uint64_t>(start) < static_cast<uint64_t>(end)) &
           (static_cast<uint64_t>(end) <= static_cast<uint64_t>(kMaxPosition));
}

}  // namespace chunkeval
