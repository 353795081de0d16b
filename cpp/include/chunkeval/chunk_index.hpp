// An immutable index over a chunking: which chunks of document d overlap [y, x)?
//
// Rows are copied and sorted by (doc, start, end). Each document's rows form one contiguous range,
// found directly when the doc ids are dense (0..n-1, the usual case) and by binary search otherwise.
// Over each range sits an implicit augmented interval tree in the cgranges layout: local index i is
// a node at level `trailing_ones(i)`, its subtree spans [i - 2^level + 1, i + 2^level - 1], and
// max_end[i] holds the largest end in that subtree, so a stabbing query costs O(log n + answers)
// even when chunks nest.
//
// Most chunkers never nest chunks (fixed windows, sliding windows, splitters without overlap): in
// start order their ends never decrease either. For such a document the matches of a query are one
// contiguous run of rows starting at the first row whose end is past y. That row is found by
// interpolation (chunks of similar size put it within a row or two of the guess), then galloping
// and binary search, so a badly skewed document still costs O(log n). The tree is walked only for
// documents whose ends go down somewhere. The query's cost is dominated by cache misses on a large
// chunk table, so `prefetch` lets a caller start those loads a few questions ahead.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "chunkeval/spans.hpp"

namespace chunkeval {

class ChunkIndex {
public:
    ChunkIndex() = default;

    // Copies and indexes the chunks. Throws std::invalid_argument naming `name` and the first bad
    // row unless every row has 0 <= start < end <= kMaxPosition (2^32).
    explicit ChunkIndex(const SpanView& chunks, const char* name = "chunks");

    int64_t size() const noexcept { return static_cast<int64_t>(rows_.size()); }
    int64_t n_docs() const noexcept { return static_cast<int64_t>(docs_.size()); }

    // Sorted distinct doc ids.
    const std::vector<int64_t>& docs() const noexcept { return docs_; }

    // Sorted rows (by doc, start, end).
    int64_t start(int64_t row) const noexcept { return rows_[static_cast<size_t>(row)].start; }
    int64_t end(int64_t row) const noexcept { return rows_[static_cast<size_t>(row)].end; }

    // Calls emit(row) once per sorted row of document `doc` with
    //   start <  x and end >  y   (Inclusive == false: positive overlap with [y, x))
    //   start <= x and end >= y   (Inclusive == true:  touching counts)
    // in increasing row order, skipping rows <= after_row (a caller that has seen those already:
    // then the cost is O(log n + new answers), not a pass over every old answer again). An unknown
    // doc matches nothing.
    template <bool Inclusive, class Emit>
    void query(int64_t doc, int64_t x, int64_t y, Emit&& emit, int64_t after_row = -1) const;

    // A hint: a later query(doc, ..., y) will start reading near here. Never faults.
    void prefetch(int64_t doc, int64_t y) const noexcept {
        const DocInfo* info = find_doc(doc);
        if (info == nullptr) return;
#if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(rows_.data() + info->begin + guess_row(*info, y));
#else
        (void)y;
#endif
    }

private:
    struct Row {
        int64_t start;
        int64_t end;
    };
    struct DocInfo {
        int64_t begin;          // first sorted row of the doc
        int64_t count;          // its number of rows
        int64_t first_end;      // ends[begin], for the interpolation guess
        double rows_per_unit;   // (count - 1) / (last end - first end), 0 when flat
        int8_t root_level;      // level of the implicit tree's root, 2^level - 1
        uint8_t ends_sorted;    // 1 when ends never decrease in start order
    };

    const DocInfo* find_doc(int64_t doc) const noexcept {
        if (dense_docs_) {
            // Subtraction as unsigned: wraps instead of overflowing for far-away ids.
            const uint64_t pos = static_cast<uint64_t>(doc) - static_cast<uint64_t>(first_doc_);
            return pos < info_.size() ? &info_[pos] : nullptr;
        }
        const auto it = std::lower_bound(docs_.begin(), docs_.end(), doc);
        if (it == docs_.end() || *it != doc) return nullptr;
        return &info_[static_cast<size_t>(it - docs_.begin())];
    }

    // Local row where the first end past y is expected, in [0, count).
    static int64_t guess_row(const DocInfo& info, int64_t y) noexcept {
        if (y <= info.first_end) return 0;
        const double guess = static_cast<double>(y - info.first_end) * info.rows_per_unit;
        return guess >= static_cast<double>(info.count - 1) ? info.count - 1 : static_cast<int64_t>(guess);
    }

    template <bool Inclusive>
    static bool starts_before(int64_t start, int64_t x) noexcept {
        return Inclusive ? start <= x : start < x;
    }
    template <bool Inclusive>
    static bool ends_after(int64_t end, int64_t y) noexcept {
        return Inclusive ? end >= y : end > y;
    }

    // Max end over the real rows of the subtree of local node `node` at `level`; fills max_end_.
    int64_t build_subtree(int64_t base, int64_t n, int64_t node, int level);

    std::vector<int64_t> docs_;  // sorted distinct doc ids
    std::vector<DocInfo> info_;  // parallel to docs_
    bool dense_docs_ = false;    // docs_ is first_doc_, first_doc_ + 1, ...
    int64_t first_doc_ = 0;
    std::vector<Row> rows_;
    std::vector<int64_t> max_end_;  // per node of each doc's implicit tree
};

template <bool Inclusive, class Emit>
void ChunkIndex::query(int64_t doc, int64_t x, int64_t y, Emit&& emit, int64_t after_row) const {
    const DocInfo* info = find_doc(doc);
    if (info == nullptr) return;
    const int64_t base = info->begin;
    const int64_t n = info->count;
    const Row* rows = rows_.data() + base;
    const int64_t from = std::max<int64_t>(0, after_row - base + 1);  // first local row to emit
    if (from >= n) return;

    if (info->ends_sorted) {
        // Ends never decrease, so the rows ending after y are a suffix [first, n); of those, the
        // ones starting before x are a prefix. Find `first`: bracket it by galloping out of the
        // guess, then bisect the bracket. Invariant: first is in [lo, hi]; hi == n means "none".
        const int64_t guess = guess_row(*info, y);
        int64_t lo = 0;
        int64_t hi = n;
        if (ends_after<Inclusive>(rows[guess].end, y)) {
            hi = guess;
            int64_t step = 1;
            int64_t probe = guess - 1;
            while (probe >= 0 && ends_after<Inclusive>(rows[probe].end, y)) {
                hi = probe;
                step *= 2;
                probe = hi - step;
            }
            lo = probe < 0 ? 0 : probe + 1;
        } else {
            lo = guess + 1;
            int64_t step = 1;
            int64_t probe = lo;
            while (probe < n && !ends_after<Inclusive>(rows[probe].end, y)) {
                lo = probe + 1;
                step *= 2;
                probe = lo + step - 1;
            }
            hi = probe < n ? probe : n;
        }
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (ends_after<Inclusive>(rows[mid].end, y)) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        for (int64_t i = std::max(lo, from); i < n && starts_before<Inclusive>(rows[i].start, x); ++i) emit(base + i);
        return;
    }

    // Walk the implicit tree in order. A frame is a node plus whether its left subtree is done.
    constexpr int kScanLevel = 3;  // subtrees of at most 15 rows are scanned linearly
    struct Frame {
        int64_t node;
        int level;
        bool left_done;
    };
    Frame stack[2 * 64 + 2];
    int top = 0;
    const int root_level = info->root_level;
    stack[top++] = Frame{(int64_t{1} << root_level) - 1, root_level, false};
    const int64_t* max_end = max_end_.data() + base;
    while (top > 0) {
        const Frame f = stack[--top];
        const int64_t half = f.level > 0 ? (int64_t{1} << (f.level - 1)) : 0;
        if (f.left_done) {
            // f.node < n here: imaginary nodes never push their right half
            if (!starts_before<Inclusive>(rows[f.node].start, x)) continue;  // nothing further right
            if (f.node >= from && ends_after<Inclusive>(rows[f.node].end, y)) emit(base + f.node);
            stack[top++] = Frame{f.node + half, f.level - 1, false};
            continue;
        }
        const int64_t first = f.node - ((int64_t{1} << f.level) - 1);
        const int64_t last = std::min(f.node + ((int64_t{1} << f.level) - 1), n - 1);
        if (first >= n || last < from || !starts_before<Inclusive>(rows[first].start, x)) continue;
        if (f.level <= kScanLevel) {
            for (int64_t i = std::max(first, from); i <= last && starts_before<Inclusive>(rows[i].start, x); ++i) {
                if (ends_after<Inclusive>(rows[i].end, y)) emit(base + i);
            }
            continue;
        }
        if (f.node < n) {
            if (!ends_after<Inclusive>(max_end[f.node], y)) continue;
            stack[top++] = Frame{f.node, f.level, true};
        }
        // An imaginary node (f.node >= n) has only its left subtree inside the range.
        stack[top++] = Frame{f.node - half, f.level - 1, false};
    }
}

}  // namespace chunkeval
