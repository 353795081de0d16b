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

// Throws std::invalid_argument naming `name` and the first offending row unless every row has
// 0 <= start < end.
void validate_span_rows(const char* name, const SpanView& spans);

// The message both validators use, so that checks fused into the kernels read the same.
std::string bad_span_message(const char* name, int64_t row, int64_t start, int64_t end);

inline bool span_row_ok(int64_t start, int64_t end) noexcept { return start >= 0 && start < end; }

}  // namespace chunkeval
