#include "chunkeval/chunk_index.hpp"

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace chunkeval {

namespace {

bool span_less(const Span& a, const Span& b) noexcept {
    if (a.doc != b.doc) return a.doc < b.doc;
    if (a.start != b.start) return a.start < b.start;
    return a.end < b.end;
}

// Queries read the rows at random. On a large chunking every such read would also miss the TLB, so
// on Linux ask for transparent huge pages over the (not yet touched) buffer; elsewhere, or if the
// kernel declines, nothing changes.
void advise_huge_pages(const void* data, size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr uintptr_t kHugePage = uintptr_t{1} << 21;
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHugePage - 1) & ~(kHugePage - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHugePage - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
    (void)data;
    (void)bytes;
#endif
}

// Smallest level whose complete subtree, rooted at 2^level - 1, covers local indices [0, n).
int root_level_for(int64_t n) noexcept {
    int level = 0;
    while (level < 62 && (int64_t{1} << (level + 1)) - 1 < n) ++level;
    return level;
}

}  // namespace

ChunkIndex::ChunkIndex(const SpanView& chunks, const char* name) {
    if (chunks.size < 0) throw std::invalid_argument(std::string(name) + " has a negative size");
    const size_t n = static_cast<size_t>(chunks.size);
    std::vector<Span> sorted(n);
    bool in_order = true;
    for (size_t i = 0; i < n; ++i) {
        sorted[i] = Span{chunks.doc[i], chunks.start[i], chunks.end[i]};
        if (!span_row_ok(sorted[i].start, sorted[i].end)) {
            throw std::invalid_argument(
                bad_span_message(name, static_cast<int64_t>(i), sorted[i].start, sorted[i].end));
        }
        if (i > 0 && span_less(sorted[i], sorted[i - 1])) in_order = false;
    }
    // Chunk tables usually arrive in document order already; skip the sort then.
    if (!in_order) std::sort(sorted.begin(), sorted.end(), span_less);

    rows_.reserve(n);
    advise_huge_pages(rows_.data(), n * sizeof(Row));
    rows_.resize(n);
    max_end_.resize(n);
    for (size_t i = 0; i < n; ++i) {
        rows_[i] = Row{sorted[i].start, sorted[i].end};
        if (i == 0 || sorted[i].doc != sorted[i - 1].doc) {
            docs_.push_back(sorted[i].doc);
            info_.push_back(DocInfo{static_cast<int64_t>(i), 0, 0, 0.0, 0, 0});
        }
    }
    std::vector<Span>().swap(sorted);

    first_doc_ = docs_.empty() ? 0 : docs_.front();
    dense_docs_ = !docs_.empty() &&
                  static_cast<uint64_t>(docs_.back()) - static_cast<uint64_t>(docs_.front()) + 1 == docs_.size();
    for (size_t d = 0; d < info_.size(); ++d) {
        DocInfo& info = info_[d];
        const int64_t next = d + 1 < info_.size() ? info_[d + 1].begin : static_cast<int64_t>(n);
        info.count = next - info.begin;
        const Row* rows = rows_.data() + info.begin;
        bool ends_sorted = true;
        for (int64_t i = 1; i < info.count && ends_sorted; ++i) ends_sorted = rows[i].end >= rows[i - 1].end;
        info.ends_sorted = ends_sorted ? 1 : 0;
        info.first_end = rows[0].end;
        const int64_t end_span = rows[info.count - 1].end - rows[0].end;  // >= 0 when ends are sorted
        info.rows_per_unit = ends_sorted && end_span > 0
                                 ? static_cast<double>(info.count - 1) / static_cast<double>(end_span)
                                 : 0.0;
        const int level = root_level_for(info.count);
        info.root_level = static_cast<int8_t>(level);
        build_subtree(info.begin, info.count, (int64_t{1} << level) - 1, level);
    }
}

int64_t ChunkIndex::build_subtree(int64_t base, int64_t n, int64_t node, int level) {
    const int64_t first = node - ((int64_t{1} << level) - 1);
    if (first >= n) return std::numeric_limits<int64_t>::min();
    if (level == 0) {  // a leaf: node == first < n
        const int64_t end = rows_[static_cast<size_t>(base + node)].end;
        max_end_[static_cast<size_t>(base + node)] = end;
        return end;
    }
    const int64_t half = int64_t{1} << (level - 1);
    int64_t best = std::max(build_subtree(base, n, node - half, level - 1),
                            build_subtree(base, n, node + half, level - 1));
    if (node < n) {
        best = std::max(best, rows_[static_cast<size_t>(base + node)].end);
        max_end_[static_cast<size_t>(base + node)] = best;
    }
    return best;
}

}  // namespace chunkeval
