#include "chunkeval/spans.hpp"

#include <stdexcept>
#include <string>

namespace chunkeval {

void validate_offsets(const char* name, const int64_t* offsets, int64_t n_groups, int64_t n_rows) {
    if (n_groups < 0) {
        throw std::invalid_argument(std::string(name) + " must have at least one entry (n + 1 offsets)");
    }
    if (offsets[0] != 0) {
        throw std::invalid_argument(std::string(name) + "[0] is " + std::to_string(offsets[0]) +
                                    "; offsets must start at 0");
    }
    for (int64_t i = 1; i <= n_groups; ++i) {
        if (offsets[i] < offsets[i - 1]) {
            throw std::invalid_argument(std::string(name) + "[" + std::to_string(i) + "] is " +
                                        std::to_string(offsets[i]) + ", below " + name + "[" +
                                        std::to_string(i - 1) + "] = " + std::to_string(offsets[i - 1]) +
                                        "; offsets must be non-decreasing");
        }
    }
    if (offsets[n_groups] != n_rows) {
        throw std::invalid_argument(std::string(name) + "[-1] is " + std::to_string(offsets[n_groups]) +
                                    " but there are " + std::to_string(n_rows) +
                                    " rows; the last offset must equal the number of rows");
    }
}

std::string bad_span_message(const char* name, int64_t row, int64_t start, int64_t end) {
    const std::string where = std::string(name) + " row " + std::to_string(row) + ": ";
    if (start >= 0 && start < end) {  // then end > kMaxPosition
        return where + "end " + std::to_string(end) + " is past the bound 2**32 (" + std::to_string(kMaxPosition) +
               "); positions must satisfy 0 <= start < end <= 2**32, so that every count stays exact";
    }
    std::string message = where + "[start, end) = [" + std::to_string(start) + ", " + std::to_string(end) + ") ";
    message += start < 0 ? "has a negative start" : "is empty or reversed";
    message += "; spans are half-open with 0 <= start < end <= 2**32";
    return message;
}

std::string too_many_rows_message(const char* name, int64_t question, int64_t rows) {
    const bool retrieved = std::string(name) == "retrieved";
    return std::string(name) + ": question " + std::to_string(question) + (retrieved ? " scores " : " has ") +
           std::to_string(rows) + " rows, more than 2**20 (" + std::to_string(kMaxRowsPerQuestion) +
           ") per question, the bound under which every count stays exact; " +
           (retrieved ? "pass a smaller k" : "split the question's references");
}

void validate_span_rows(const char* name, const SpanView& spans) {
    for (int64_t row = 0; row < spans.size; ++row) {
        if (!span_row_ok(spans.start[row], spans.end[row])) {
            throw std::invalid_argument(bad_span_message(name, row, spans.start[row], spans.end[row]));
        }
    }
}

}  // namespace chunkeval
