#include "chunkeval/metrics.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "chunkeval/parallel.hpp"
#include "chunkeval/sorting_network.hpp"

namespace chunkeval {

namespace {

// A maximal piece of the references' union where `mult` references cover every position.
struct Segment {
    int64_t doc;
    int64_t start;
    int64_t end;
    int64_t mult;
};

// The segments of one document: segments[first, last).
struct DocSegments {
    int64_t doc;
    int64_t first;
    int64_t last;
};

struct Boundary {
    int64_t pos;
    int64_t delta;  // +1 where a reference starts, -1 where one ends
};

// A retrieved row and its 0-based rank in the ranked list.
struct RankedRow {
    int64_t doc;
    int64_t start;
    int64_t end;
    int64_t rank;
};

// Measures and sums of measures.
//
// Why every count is exact (the bounds are kMaxPosition = 2^32 and kMaxRowsPerQuestion = 2^20 of
// spans.hpp, checked on every row before it is used):
//  - a span, a segment or any piece of one is at most 2^32 long (0 <= start < end <= 2^32);
//  - a question has at most 2^20 references, so a segment's mult is <= 2^20, a product
//    piece * mult is <= 2^52, and E_len <= ref_sum = Σ |reference| <= 2^20 * 2^32 = 2^52;
//    any weighted overlap (I_w, cs_in_E_w) is a part of ref_sum, so <= 2^52 too;
//  - it scores at most 2^20 retrieved rows, so R_len <= ret_sum <= 2^52, and I <= E_len;
//  - C* lies in the documents that hold a reference (at most 2^20 of them), within positions
//    [0, 2^32] of each, so cs_len <= 2^52 and cs_in_E <= E_len.
// Every denominator is a sum of two of these minus a part of one of them: E_len + R_len - I,
// ret_sum + (ref_sum - I_w) and E_len + cs_len - cs_in_E are all <= 2^53. Every integer up to 2^53
// is a double, so double(a) / double(b) is the exact ratio a / b rounded once, and no sum ever
// comes near 2^64 (unsigned, so that even a broken invariant would wrap, never be undefined).
using Count = uint64_t;

Count length(int64_t start, int64_t end) noexcept { return static_cast<Count>(end - start); }

// A count as a double. Every count is <= 2^53 (above), so converting it as a signed integer is
// exact, and one instruction where the unsigned conversion takes a branch and several.
double as_double(Count c) noexcept { return static_cast<double>(static_cast<int64_t>(c)); }

// Counters of the ranked-list pass (docs/engine.md §3): per rank, what that row added; summed over
// ranks 0..k-1, the values at cut-off k.
struct RankedCounts {
    Count intersection = 0;           // I   = |E ∩ R|
    Count weighted_intersection = 0;  // I_w = Σ_r |r ∩ R|
    Count retrieved_union = 0;        // R_len = |R|
    Count retrieved_sum = 0;          // ret_sum = Σ |retrieved|
};

// Questions hold a handful of references and retrieved rows: insertion sort beats std::sort there.
template <class T, class Less>
void sort_small(T* first, T* last, Less less) {
    if (last - first > 24) {
        std::sort(first, last, less);
        return;
    }
    for (T* i = first + 1; i < last; ++i) {
        const T value = *i;
        T* j = i;
        for (; j > first && less(value, *(j - 1)); --j) *j = *(j - 1);
        *j = value;
    }
}

#if defined(__GNUC__) || defined(__clang__)
#define CHUNKEVAL_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define CHUNKEVAL_NOINLINE __declspec(noinline)
#else
#define CHUNKEVAL_NOINLINE
#endif
// For a lambda's call operator (after its parameter list). GCC alone needs it: it outlines the
// evidence query's callback once the callback grows, which costs every evidence chunk a call.
#if defined(__GNUC__) && !defined(__clang__)
#define CHUNKEVAL_INLINE_LAMBDA __attribute__((always_inline))
#else
#define CHUNKEVAL_INLINE_LAMBDA
#endif

// scratch()'s rare path, out of line so that the common one inlines to a compare.
template <class T>
CHUNKEVAL_NOINLINE T* grow_scratch(std::vector<T>& buffer, size_t n) {
    buffer.resize(std::max(n, 2 * buffer.size()));
    return buffer.data();
}

// Grows a scratch buffer to hold at least n elements; never shrinks, so the steady state does not
// allocate.
template <class T>
inline T* scratch(std::vector<T>& buffer, size_t n) {
    return buffer.size() >= n ? buffer.data() : grow_scratch(buffer, n);
}

// W(i) = 1 / log2(i + 1) for ranks i = 1..kDiscountTable - 1 (docs/engine.md §4), with the same libm
// log2 the other backends call, so the same bits; and the running sums of W that are the binary
// ideal DCG.
constexpr int64_t kDiscountTable = 1024;
struct Discounts {
    double inverse[kDiscountTable];
    double ideal[kDiscountTable];  // ideal[m] = Σ_{j=1..m} inverse[j], summed in increasing j from 0.0
    double reciprocal[kDiscountTable];  // 1 / i (0 at 0): the same bits as dividing, which rounds once
    Discounts() noexcept {
        inverse[0] = ideal[0] = reciprocal[0] = 0.0;
        for (int64_t i = 1; i < kDiscountTable; ++i) {
            inverse[i] = 1.0 / std::log2(static_cast<double>(i + 1));
            ideal[i] = ideal[i - 1] + inverse[i];
            reciprocal[i] = 1.0 / static_cast<double>(i);
        }
    }
};
const Discounts kDiscounts;  // built when the library loads: no guard on the hot path
const Discounts& discounts() noexcept { return kDiscounts; }
double inverse_discount(int64_t rank) noexcept {
    return rank < kDiscountTable ? discounts().inverse[rank] : 1.0 / std::log2(static_cast<double>(rank + 1));
}

// Calls f(std::integral_constant<size_t, W>{}) for the first W of `Widths` that holds n (the last
// one otherwise): a loop over W padded items has a length the compiler knows, and the choice
// changes only when n crosses a width.
template <size_t W, size_t... Widths, class F>
void with_padded_width(size_t n, F&& f) {
    if constexpr (sizeof...(Widths) == 0) {
        f(std::integral_constant<size_t, W>{});
    } else if (n <= W) {
        f(std::integral_constant<size_t, W>{});
    } else {
        with_padded_width<Widths...>(n, std::forward<F>(f));
    }
}

std::string offsets_changed_message(const char* name, int64_t question) {
    return std::string(name) + " of question " + std::to_string(question) +
           " point outside the rows (was the array modified while scoring?)";
}

// Scores questions one at a time; one per thread, so that its scratch buffers are reused.
class QuestionScorer {
public:
    QuestionScorer(const RaggedSpanView& references, const RaggedSpanView& retrieved,
                   const ChunkIndex* chunks, const MetricsOptions& options, const MetricsOutputs& out)
        : references_(references),
          retrieved_(retrieved),
          chunks_(chunks),
          options_(options),
          out_(out),
          n_columns_(metric_columns(options.k_mode, options.n_ks)) {
        scratch(refs_, 16);
        scratch(boundaries_, 32);
        scratch(segments_, 32);
        scratch(doc_segments_, 16);
        scratch(ranked_, 32);
        scratch(rank_counts_, 32);
        scratch(cluster_union_, 32);
        scratch(ideal_, 16);
    }

    template <Semantics S>
    void score(int64_t question);

    // Start loading the chunk rows the evidence queries of `question` will read first: on a large
    // chunking those loads miss every cache and would otherwise dominate the question's time.
    void prefetch_evidence(int64_t question) const noexcept {
        if (chunks_ == nullptr || question >= references_.n_groups) return;
        const int64_t lo = references_.offsets[question];
        const int64_t hi = std::min(references_.offsets[question + 1], lo + kPrefetchReferences);
        if (lo < 0 || hi > references_.spans.size) return;  // score() will report it
        for (int64_t row = lo; row < hi; ++row) {
            chunks_->prefetch(references_.spans.doc[row], references_.spans.start[row]);
        }
    }

    // A hint to fetch the line of `p` for writing (never faults).
    static void prefetch_write(const void* p) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
        // PREFETCHW whatever -march says (GCC emits it for __builtin_prefetch only with -mprfchw);
        // a CPU without it runs it as a NOP.
        __asm__ volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#elif defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(p, 1);
#else
        (void)p;
#endif
    }
    // Ask for the output lines `question` will write: a store to a line the core does not own yet
    // waits for it and, stores committing in order, stalls the ones behind it.
    void prefetch_outputs(int64_t question) const noexcept {
        const int64_t at = question * n_columns_;
        for (double* column : {out_.recall, out_.precision, out_.iou}) prefetch_write(column + at);
        prefetch_write(out_.precision_omega + question);
        prefetch_write(out_.coverage + question);
        prefetch_write(out_.n_evidence_chunks + question);
        if (out_.rank != nullptr) {
            const int64_t stride = references_.n_groups * n_columns_;
            for (int m = 0; m < kRankMetrics; ++m) prefetch_write(out_.rank + m * stride + at);
        }
    }

    static constexpr size_t kSmallCluster = 16;        // larger clusters take sweep_cluster
    static constexpr size_t kPairSegments = 8;         // lone_rows sums the overlap with every segment
    static constexpr int64_t kPrefetchDistance = 4;    // questions ahead
    static constexpr int64_t kPrefetchReferences = 8;  // at most this many per question

private:
    void load_references(int64_t question);
    void append_segment(int64_t doc, int64_t start, int64_t end, int64_t mult);
    void overlap(int64_t doc, int64_t lo, int64_t hi, Count& ov, Count& wov) const;
    template <bool Inclusive, bool kIdealGains>
    void evidence(int64_t& n_evidence, Count& cs_len, Count& cs_in_e, Count& cs_in_e_w);
    void rank_retrieved(int64_t question, int64_t limit);
    bool lone_rows(const RankedRow* rows, size_t n, RankedCounts* counts, Count* rank_gain, uint8_t* repeat);
    void insert_in_cluster(const RankedRow& row, RankedCounts& counts);
    void sweep_cluster(const RankedRow* rows, size_t n, RankedCounts* counts);
    template <Semantics S>
    void write_column(int64_t question, int64_t column, const RankedCounts& counts) const;
    Count gain(int64_t doc, int64_t lo, int64_t hi);
    CHUNKEVAL_NOINLINE Count interval_gain(size_t first_segment, int64_t doc, int64_t lo, int64_t hi);
    void cluster_ranks(RankedRow* rows, size_t n);
    int64_t rank_cutoff(int64_t n_evidence) const noexcept;
    void sort_ideal(int64_t n_evidence);
    void rank_metrics(int64_t question, int64_t lo, int64_t hi, int64_t limit, int64_t n_evidence);

    const RaggedSpanView& references_;
    const RaggedSpanView& retrieved_;
    const ChunkIndex* chunks_;
    const MetricsOptions& options_;
    const MetricsOutputs& out_;
    const int64_t n_columns_;

    // Scratch buffers, sized once and reused; the counts say how much of each is in use.
    std::vector<Span> refs_;
    std::vector<Boundary> boundaries_;
    std::vector<Segment> segments_;  // [0, n_segments_) sorted by (doc, start), disjoint
    size_t n_segments_ = 0;
    std::vector<DocSegments> doc_segments_;  // [0, n_doc_segments_) sorted by doc
    size_t n_doc_segments_ = 0;
    std::vector<RankedRow> ranked_;
    std::vector<RankedCounts> rank_counts_;  // what the row of each rank added
    std::vector<uint64_t> sort_keys_;
    std::vector<RankedRow> rows_by_rank_;
    std::vector<Span> cluster_union_;        // [0, cluster_size_): union of a cluster's rows so far
    size_t cluster_size_ = 0;
    struct LiveRow {
        int64_t rank;
        int64_t end;
    };
    std::vector<LiveRow> live_;  // sweep_cluster's heap of the rows covering the sweep position
    // Rank metrics (docs/engine.md §4): prefix sums of the segments' lengths (so that gain() is a
    // binary search), the ideal gains, and the distinct retrieved rows with their gains.
    std::vector<Count> segment_prefix_;
    bool prefix_ready_ = false;
    std::vector<Count> rank_gain_;      // per scored rank: |row ∩ E|
    std::vector<uint8_t> repeat_;       // per scored rank: the same span as an earlier row
    size_t n_repeats_ = 0;
    std::vector<Count> ideal_;
    size_t n_ideal_ = 0;
    // sort_ideal(): with up to 16 ideal gains (in_top_), top_graded_[m] is the graded ideal DCG of
    // the m largest, padded with zeros to n_top_ (4, 8 or 16); otherwise ideal_ is sorted in place.
    bool in_top_ = false;
    int64_t n_top_ = 0;
    double top_graded_[17] = {};
    std::vector<Count> kept_gain_;
    std::vector<int64_t> relevant_rank_;  // rank_metrics: the relevant ranks (1-based), in order
    std::vector<Count> relevant_gain_;    // and their gains
    std::vector<RankedRow> dedup_;
    Count evidence_len_ = 0;   // E_len = |∪ references|
    Count reference_sum_ = 0;  // ref_sum = Σ |reference|
};

void QuestionScorer::append_segment(int64_t doc, int64_t start, int64_t end, int64_t mult) {
    if (n_segments_ > 0) {
        Segment& last = segments_[n_segments_ - 1];
        if (last.doc == doc && last.end == start && last.mult == mult) {
            last.end = end;  // keep pieces maximal
            return;
        }
    }
    segments_[n_segments_++] = Segment{doc, start, end, mult};
}

void QuestionScorer::load_references(int64_t question) {
    const int64_t lo = references_.offsets[question];
    const int64_t hi = references_.offsets[question + 1];
    if (!(0 <= lo && lo <= hi && hi <= references_.spans.size)) {
        throw std::invalid_argument(offsets_changed_message("ref_offsets", question));
    }
    // At most kMaxRowsPerQuestion rows: validate_metrics_inputs checked every question's count.
    const size_t n = static_cast<size_t>(hi - lo);
    const SpanView& spans = references_.spans;
    Span* refs = scratch(refs_, n);
    scratch(segments_, 2 * n);  // n references make at most 2n - 1 segments
    scratch(doc_segments_, n);
    for (size_t i = 0; i < n; ++i) {
        const int64_t row = lo + static_cast<int64_t>(i);
        const int64_t start = spans.start[row];
        const int64_t end = spans.end[row];
        if (!span_row_ok(start, end)) {
            throw std::invalid_argument(bad_span_message("references", row, start, end));
        }
        refs[i] = Span{spans.doc[row], start, end};
    }
    n_segments_ = 0;
    n_doc_segments_ = 0;
    if (n == 1) {  // the common case, without the machinery
        segments_[0] = Segment{refs[0].doc, refs[0].start, refs[0].end, 1};
        doc_segments_[0] = DocSegments{refs[0].doc, 0, 1};
        n_segments_ = n_doc_segments_ = 1;
        evidence_len_ = reference_sum_ = length(refs[0].start, refs[0].end);
        return;
    }
    sort_small(refs, refs + n, [](const Span& a, const Span& b) {
        return a.doc != b.doc ? a.doc < b.doc : a.start < b.start;
    });

    for (size_t i = 0; i < n;) {
        const int64_t doc = refs[i].doc;
        const int64_t first_segment = static_cast<int64_t>(n_segments_);
        bool disjoint = true;  // the usual case: no two references of this doc overlap
        int64_t reach = refs[i].end;
        size_t j = i + 1;
        for (; j < n && refs[j].doc == doc; ++j) {
            disjoint = disjoint && refs[j].start >= reach;
            reach = std::max(reach, refs[j].end);
        }
        if (disjoint) {
            for (size_t r = i; r < j; ++r) append_segment(doc, refs[r].start, refs[r].end, 1);
        } else {
            // Sweep the boundaries: between two consecutive distinct positions the cover count is
            // constant, and a positive count there is a segment.
            Boundary* boundaries = scratch(boundaries_, 2 * (j - i));
            size_t n_boundaries = 0;
            for (size_t r = i; r < j; ++r) {
                boundaries[n_boundaries++] = Boundary{refs[r].start, +1};
                boundaries[n_boundaries++] = Boundary{refs[r].end, -1};
            }
            sort_small(boundaries, boundaries + n_boundaries,
                       [](const Boundary& a, const Boundary& b) { return a.pos < b.pos; });
            int64_t cover = 0;
            int64_t previous = boundaries[0].pos;
            for (size_t b = 0; b < n_boundaries; ++b) {
                if (cover > 0 && boundaries[b].pos > previous) append_segment(doc, previous, boundaries[b].pos, cover);
                cover += boundaries[b].delta;
                previous = boundaries[b].pos;
            }
        }
        doc_segments_[n_doc_segments_++] = DocSegments{doc, first_segment, static_cast<int64_t>(n_segments_)};
        i = j;
    }

    evidence_len_ = 0;
    reference_sum_ = 0;
    for (size_t s = 0; s < n_segments_; ++s) {
        evidence_len_ += length(segments_[s].start, segments_[s].end);
        reference_sum_ += length(segments_[s].start, segments_[s].end) * static_cast<Count>(segments_[s].mult);
    }
}

// ov and wov of [lo, hi) in `doc` (docs/engine.md §1), added to the running totals.
void QuestionScorer::overlap(int64_t doc, int64_t lo, int64_t hi, Count& ov, Count& wov) const {
    const DocSegments* group = doc_segments_.data();
    const DocSegments* const groups_end = group + n_doc_segments_;
    if (n_doc_segments_ <= 8) {
        while (group != groups_end && group->doc != doc) ++group;
    } else {
        group = std::lower_bound(group, groups_end, doc,
                                 [](const DocSegments& g, int64_t d) { return g.doc < d; });
        if (group != groups_end && group->doc != doc) group = groups_end;
    }
    if (group == groups_end) return;

    const Segment* segment = segments_.data() + group->first;
    const Segment* const last = segments_.data() + group->last;
    // Segments of one doc are disjoint and sorted, so their ends increase too.
    if (last - segment <= 8) {
        while (segment != last && segment->end <= lo) ++segment;
    } else {
        segment = std::partition_point(segment, last, [lo](const Segment& s) { return s.end <= lo; });
    }
    for (; segment != last && segment->start < hi; ++segment) {
        const Count piece = length(std::max(lo, segment->start), std::min(hi, segment->end));
        ov += piece;
        wov += piece * static_cast<Count>(segment->mult);
    }
}

// The overlap with E of chunk [lo, hi) of `doc`, first reported for the evidence interval whose
// segments start at `first_segment`. It overlaps no earlier interval (it would have been reported
// there), so its segments start at the interval's first: sum at most kGainScan of them (more: the
// prefix sums of gain()).
Count QuestionScorer::interval_gain(size_t first_segment, int64_t doc, int64_t lo, int64_t hi) {
    constexpr size_t kGainScan = 8;
    const Segment* segments = segments_.data();
    const size_t n_segments = n_segments_;
    Count g = 0;
    size_t s = first_segment;
    const size_t stop = std::min(n_segments, first_segment + kGainScan);
    for (; s < stop && segments[s].doc == doc && segments[s].start < hi; ++s) {
        const int64_t piece_lo = std::max(lo, segments[s].start);
        const int64_t piece_hi = std::min(hi, segments[s].end);
        if (piece_lo < piece_hi) g += length(piece_lo, piece_hi);
    }
    if (s == stop && s < n_segments && segments[s].doc == doc && segments[s].start < hi) return gain(doc, lo, hi);
    return g;
}

template <bool Inclusive, bool kIdealGains>
void QuestionScorer::evidence(int64_t& n_evidence, Count& cs_len, Count& cs_in_e, Count& cs_in_e_w) {
    n_evidence = 0;
    // The ideal gains, in locals while the chunks stream in (a member would be reloaded after
    // every store), and in ideal_ / n_ideal_ at the end.
    Count* ideal = ideal_.data();
    size_t ideal_room = ideal_.size();
    size_t n_ideal = 0;
    cs_len = 0;
    cs_in_e = 0;
    cs_in_e_w = 0;

    // C* is built while the chunk rows stream in: sorted rows are sorted by (doc, start), and the
    // queries below yield rows in increasing order once rows already seen are skipped (a chunk that
    // matches a later evidence interval and has a smaller row than one already seen also matches
    // the earlier interval that row came from). So a running maximum deduplicates, and consecutive
    // chunks merge into the pieces of C* without a buffer.
    int64_t last_row = -1;
    bool have_piece = false;
    int64_t piece_doc = 0;
    int64_t piece_start = 0;
    int64_t piece_end = 0;
    size_t segment_cursor = 0;  // C* pieces arrive in order: walk the segments alongside
    const Segment* segments = segments_.data();
    const size_t n_segments = n_segments_;

    auto flush_piece = [&]() {
        cs_len += length(piece_start, piece_end);
        while (segment_cursor < n_segments &&
               (segments[segment_cursor].doc < piece_doc ||
                (segments[segment_cursor].doc == piece_doc && segments[segment_cursor].end <= piece_start))) {
            ++segment_cursor;
        }
        for (size_t s = segment_cursor;
             s < n_segments && segments[s].doc == piece_doc && segments[s].start < piece_end; ++s) {
            const Count piece = length(std::max(piece_start, segments[s].start), std::min(piece_end, segments[s].end));
            cs_in_e += piece;
            cs_in_e_w += piece * static_cast<Count>(segments[s].mult);
        }
    };

    size_t k = 0;
    while (k < n_segments) {
        // Evidence interval: consecutive segments of one doc that overlap or touch.
        const int64_t doc = segments[k].doc;
        const int64_t start = segments[k].start;
        int64_t end = segments[k].end;
        const size_t first_segment = k;
        for (++k; k < n_segments && segments[k].doc == doc && segments[k].start <= end; ++k) {
            end = std::max(end, segments[k].end);
        }
        // One segment, and a chunk that ends before the next interval starts: its overlap with E is
        // its overlap with [start, end) (the common case; otherwise the segments are summed).
        const bool lone_segment = k == first_segment + 1;
        const int64_t next_start = k < n_segments && segments[k].doc == doc ? segments[k].start
                                                                            : std::numeric_limits<int64_t>::max();
        chunks_->query<Inclusive>(doc, end, start, [&](int64_t row) CHUNKEVAL_INLINE_LAMBDA {
            if (row <= last_row) return;
            last_row = row;
            ++n_evidence;
            const int64_t chunk_start = chunks_->start(row);
            const int64_t chunk_end = chunks_->end(row);
            if constexpr (kIdealGains) {
                // The ideal list: evidence chunks with a positive overlap (chroma's touching ones have 0).
                Count g = 0;
                if (lone_segment && chunk_end <= next_start) {
                    const int64_t lo = std::max(start, chunk_start);
                    const int64_t hi = std::min(end, chunk_end);
                    g = lo < hi ? length(lo, hi) : 0;
                } else {
                    g = interval_gain(first_segment, doc, chunk_start, chunk_end);  // out of line: rare
                }
                // Written always, kept only when positive: no branch on the gain.
                if (n_ideal == ideal_room) {
                    ideal = grow_scratch(ideal_, n_ideal + 1);
                    ideal_room = ideal_.size();
                }
                ideal[n_ideal] = g;
                n_ideal += static_cast<size_t>(g > 0);
            }
            if (have_piece && piece_doc == doc && chunk_start <= piece_end) {
                piece_end = std::max(piece_end, chunk_end);
                return;
            }
            if (have_piece) flush_piece();
            have_piece = true;
            piece_doc = doc;
            piece_start = chunk_start;
            piece_end = chunk_end;
        }, last_row);
    }
    if (have_piece) flush_piece();
    n_ideal_ = n_ideal;  // 0 without ideal gains
}

// The ranked-list pass of docs/engine.md §3, arranged for speed: instead of merging rows into one
// sorted union in rank order, sort the first `limit` rows by (doc, start) and split them into
// clusters of rows that overlap each other with positive length. Clusters are disjoint, so a row
// alone in its cluster adds all of itself at its rank; only the rows of a shared cluster (duplicates,
// overlapping chunks) are merged in rank order. rank_counts_[r] receives what rank r added: the
// same pieces, counted the same way, as the rank-order merge.
void QuestionScorer::rank_retrieved(int64_t question, int64_t limit) {
    const int64_t lo = retrieved_.offsets[question];
    const SpanView& spans = retrieved_.spans;
    const size_t n = static_cast<size_t>(limit);
    RankedRow* by_rank = scratch(rows_by_rank_, n);
    RankedRow* rows = scratch(ranked_, n);  // sorted by (doc, start)
    RankedCounts* counts = scratch(rank_counts_, n);
    // Sort keys: usually the doc id, the start and the rank fit in one 64-bit word (rank in the
    // low rank_bits, just enough for n rows; the start, below 2^32 by the bounds, in the next 32;
    // the doc id in the rest: below 2^26 for up to 64 rows, 2^12 at 2^20 rows), and comparing words
    // is cheaper than comparing and moving 32-byte rows. Wider doc ids take the general sort.
    constexpr int kStartBits = 32;
    // 6 bits up to 64 rows (nearly every list: then every shift is a constant), else the bit width
    // of n - 1.
    uint64_t* keys = scratch(sort_keys_, n);
    const auto pack = [&](auto rank_bits_tag) {
        const int rank_bits = rank_bits_tag;
        const int doc_shift = kStartBits + rank_bits;
        uint64_t wide = 0;
        for (size_t rank = 0; rank < n; ++rank) {
            const int64_t row = lo + static_cast<int64_t>(rank);
            const int64_t doc = spans.doc[row];
            const int64_t start = spans.start[row];
            const int64_t end = spans.end[row];
            if (!span_row_ok(start, end)) {
                throw std::invalid_argument(bad_span_message("retrieved", row, start, end));
            }
            by_rank[rank] = RankedRow{doc, start, end, static_cast<int64_t>(rank)};
            counts[rank] = RankedCounts{0, 0, 0, length(start, end)};
            wide |= static_cast<uint64_t>(doc) >> (64 - doc_shift);
            keys[rank] = static_cast<uint64_t>(doc) << doc_shift | static_cast<uint64_t>(start) << rank_bits |
                         static_cast<uint64_t>(rank);
        }
        return wide;
    };
    int rank_bits = 6;
    uint64_t too_wide = 0;
    if (n <= 64) {
        too_wide = pack(std::integral_constant<int, 6>{});
    } else {
        while ((size_t{1} << rank_bits) < n) ++rank_bits;
        too_wide = pack(rank_bits);
    }
    const uint64_t rank_mask = (uint64_t{1} << rank_bits) - 1;  // a packed key's rank
    if (too_wide != 0) {
        std::copy(by_rank, by_rank + n, rows);
        // Ties in (doc, start) by rank, as the packed keys order them: a row's repeats then follow
        // it in rank order, which lone_rows relies on.
        sort_small(rows, rows + n, [](const RankedRow& a, const RankedRow& b) {
            if (a.doc != b.doc) return a.doc < b.doc;
            return a.start != b.start ? a.start < b.start : a.rank < b.rank;
        });
    } else if (n <= 16) {
        // Sorted by the network of exactly n inputs, free of the data-dependent branches that make
        // insertion sort mispredict about once per row.
        network_sort_n<16>(keys, n, exchange_ascending);
        for (size_t i = 0; i < n; ++i) rows[i] = by_rank[keys[i] & rank_mask];
    } else {
        sort_small(keys, keys + n, [](uint64_t a, uint64_t b) { return a < b; });
        for (size_t i = 0; i < n; ++i) rows[i] = by_rank[keys[i] & rank_mask];
    }

    const Segment* segments = segments_.data();
    const size_t n_segments = n_segments_;
    const bool ranked = options_.ranked;
    n_repeats_ = 0;
    // Rank metrics: every rank's gain, and whether it repeats an earlier rank's span. lone_rows
    // writes both even without rank metrics: the stores cost less than a branch on it, with which
    // GCC also turns the min and max of its loop into branches.
    Count* const rank_gain = scratch(rank_gain_, n);
    uint8_t* const repeat = scratch(repeat_, n);
    if (too_wide == 0 && n_segments <= kPairSegments && lone_rows(rows, n, counts, rank_gain, repeat)) return;
    // No repeats until cluster_ranks marks them (cleared in one go: byte stores in the loop below
    // would alias everything it reads).
    if (ranked) std::fill_n(repeat, n, uint8_t{0});
    size_t segment_cursor = 0;  // lone rows arrive in (doc, start) order: walk the segments alongside
    for (size_t i = 0; i < n;) {
        const int64_t doc = rows[i].doc;
        int64_t reach = rows[i].end;
        size_t j = i + 1;
        for (; j < n && rows[j].doc == doc && rows[j].start < reach; ++j) reach = std::max(reach, rows[j].end);
        if (j == i + 1) {
            const RankedRow& row = rows[i];
            RankedCounts& c = counts[row.rank];
            c.retrieved_union = length(row.start, row.end);
            while (segment_cursor < n_segments &&
                   (segments[segment_cursor].doc < doc ||
                    (segments[segment_cursor].doc == doc && segments[segment_cursor].end <= row.start))) {
                ++segment_cursor;
            }
            for (size_t s = segment_cursor;
                 s < n_segments && segments[s].doc == doc && segments[s].start < row.end; ++s) {
                const Count piece = length(std::max(row.start, segments[s].start), std::min(row.end, segments[s].end));
                c.intersection += piece;
                c.weighted_intersection += piece * static_cast<Count>(segments[s].mult);
            }
            if (ranked) rank_gain[row.rank] = c.intersection;
        } else if (j - i <= kSmallCluster) {
            // Duplicates and a few overlapping chunks: merge in rank order, at most kSmallCluster
            // intervals to shift per row.
            sort_small(rows + i, rows + j, [](const RankedRow& a, const RankedRow& b) { return a.rank < b.rank; });
            scratch(cluster_union_, j - i + 1);
            cluster_size_ = 0;
            for (size_t t = i; t < j; ++t) insert_in_cluster(rows[t], counts[rows[t].rank]);
            if (ranked) cluster_ranks(rows + i, j - i);
        } else {
            sweep_cluster(rows + i, j - i, counts);
            if (ranked) cluster_ranks(rows + i, j - i);
        }
        i = j;
    }
}

// rank_retrieved's common case, without a data-dependent branch: no two distinct rows overlap
// (repeats may: a repeat sorts right after its first, by rank). Then every row is alone in its
// cluster or a repeat of the row before it, which adds nothing, and each row's overlap with E is
// summed over every segment (at most kPairSegments) instead of walking a cursor whose stops follow
// the data. The rows' doc ids are below 2^26 (rank_retrieved packed them into sort keys). Returns
// false, with the counts as it found them, when two distinct rows overlap or a segment's doc id is
// 2^30 or more.
bool QuestionScorer::lone_rows(const RankedRow* rows, size_t n, RankedCounts* counts, Count* rank_gain,
                               uint8_t* repeat) {
    // Positions on one line: position p of doc d at d * 2^33 + p (docs below 2^30, p <= 2^32), where
    // a row and a segment of different documents are disjoint, so no doc id needs comparing.
    constexpr int kLineShift = 33;
    const size_t n_segments = n_segments_;
    // Padded with empty segments ([0, 0): no row overlaps it) to 2, 4 or 8, so that the loop over
    // them has a fixed length for the compiler to unroll.
    int64_t segment_lo[kPairSegments] = {};
    int64_t segment_hi[kPairSegments] = {};
    Count segment_mult[kPairSegments] = {};
    uint64_t wide = 0;
    for (size_t s = 0; s < n_segments; ++s) {
        const Segment& segment = segments_[s];
        wide |= static_cast<uint64_t>(segment.doc) >> (63 - kLineShift);
        const int64_t base = static_cast<int64_t>(static_cast<uint64_t>(segment.doc) << kLineShift);
        segment_lo[s] = base + segment.start;
        segment_hi[s] = base + segment.end;
        segment_mult[s] = static_cast<Count>(segment.mult);
    }
    if (wide != 0) return false;

    // One pass: each row's counts, written as if no two distinct rows overlapped, and whether two
    // do (then the counts are reset and false returned). A row is a repeat when it is the row
    // before it again; the first row compares with an impossible one (start and end -1). While
    // no two distinct rows of a doc overlap, the row before has the largest end of the doc's rows
    // so far, so a row overlaps an earlier distinct one exactly when it starts before that end.
    bool overlapping = false;
    const auto pass = [&](auto weighted_tag, auto width_tag) {  // chroma needs the weighted overlap
        constexpr bool kWeighted = decltype(weighted_tag)::value;
        constexpr size_t kSegments = decltype(width_tag)::value;
        size_t n_repeats = 0;
        int64_t before_doc = n > 0 ? rows[0].doc : 0;
        int64_t before_start = -1;
        int64_t before_end = -1;
        for (size_t i = 0; i < n; ++i) {
            const RankedRow& row = rows[i];
            const bool same_doc = row.doc == before_doc;
            const bool repeated = same_doc & (row.start == before_start) & (row.end == before_end);
            overlapping |= same_doc & (row.start < before_end) & !repeated;
            before_doc = row.doc;
            before_start = row.start;
            before_end = row.end;

            const int64_t base = static_cast<int64_t>(static_cast<uint64_t>(row.doc) << kLineShift);
            const int64_t row_lo = base + row.start;
            const int64_t row_hi = base + row.end;
            Count ov = 0;
            Count wov = 0;
            for (size_t s = 0; s < kSegments; ++s) {
                const int64_t width = std::min(row_hi, segment_hi[s]) - std::max(row_lo, segment_lo[s]);
                const Count piece = static_cast<Count>(std::max<int64_t>(width, 0));
                ov += piece;
                if (kWeighted) wov += piece * segment_mult[s];
            }
            const Count keep = static_cast<Count>(repeated) - 1;  // all ones unless a repeat
            RankedCounts& c = counts[row.rank];
            c.intersection = ov & keep;
            c.weighted_intersection = wov & keep;
            c.retrieved_union = length(row.start, row.end) & keep;
            rank_gain[row.rank] = ov & keep;
            repeat[row.rank] = static_cast<uint8_t>(repeated);
            n_repeats += static_cast<size_t>(repeated);
        }
        n_repeats_ = n_repeats;
    };
    if (options_.semantics == Semantics::chroma) {
        with_padded_width<2, 4, kPairSegments>(n_segments, [&](auto width) { pass(std::true_type{}, width); });
    } else {
        with_padded_width<2, 4, kPairSegments>(n_segments, [&](auto width) { pass(std::false_type{}, width); });
    }
    if (overlapping) {
        for (size_t i = 0; i < n; ++i) counts[i] = RankedCounts{0, 0, 0, counts[i].retrieved_sum};
        n_repeats_ = 0;
        return false;
    }
    return true;
}

// A large cluster in O(m log m): sweep its rows (sorted by start) left to right, keeping a heap of
// the rows that cover the sweep position, smallest rank on top (rows that ended are dropped when
// they surface). Between two consecutive boundaries the covering rows do not change, and the piece
// is new to the union exactly at the smallest covering rank: that rank gets it. The rank-order
// merge gives each rank the same positions, so every count is the same integer.
void QuestionScorer::sweep_cluster(const RankedRow* rows, size_t n, RankedCounts* counts) {
    LiveRow* heap = scratch(live_, n);
    size_t size = 0;
    const auto later = [](const LiveRow& a, const LiveRow& b) { return a.rank > b.rank; };
    const int64_t doc = rows[0].doc;
    // Consecutive pieces of one rank are credited as one, so overlap() runs once per run.
    int64_t owner = -1;
    int64_t piece_lo = 0;
    int64_t piece_hi = 0;
    const auto flush = [&]() {
        if (owner < 0) return;
        RankedCounts& c = counts[owner];
        c.retrieved_union += length(piece_lo, piece_hi);
        overlap(doc, piece_lo, piece_hi, c.intersection, c.weighted_intersection);
    };
    size_t next = 0;
    int64_t pos = rows[0].start;
    while (true) {
        for (; next < n && rows[next].start == pos; ++next) {
            heap[size++] = LiveRow{rows[next].rank, rows[next].end};
            std::push_heap(heap, heap + size, later);
        }
        while (size > 0 && heap[0].end <= pos) {
            std::pop_heap(heap, heap + size, later);
            --size;
        }
        // A cluster has no gap (each row starts before the reach of the rows before it), so the
        // heap runs empty only past the last row.
        if (size == 0) break;
        const int64_t stop = next < n ? std::min(heap[0].end, rows[next].start) : heap[0].end;
        if (heap[0].rank == owner) {  // pieces are contiguous (no gap): pos == piece_hi
            piece_hi = stop;
        } else {
            flush();
            owner = heap[0].rank;
            piece_lo = pos;
            piece_hi = stop;
        }
        pos = stop;
    }
    flush();
}

// Merges a row into the union of its cluster's earlier rows (all of one doc, sorted, disjoint);
// the parts not covered yet count for the row's rank.
void QuestionScorer::insert_in_cluster(const RankedRow& row, RankedCounts& counts) {
    Span* intervals = cluster_union_.data();
    const size_t n = cluster_size_;
    const int64_t doc = row.doc;
    const int64_t start = row.start;
    const int64_t end = row.end;
    // First interval not entirely before [start, end); touching ones merge. At most kSmallCluster
    // intervals: a linear scan.
    size_t first = 0;
    while (first < n && intervals[first].end < start) ++first;
    size_t past = first;
    int64_t covered_to = start;  // [start, covered_to) is known covered or counted
    int64_t merged_start = start;
    int64_t merged_end = end;
    for (; past < n && intervals[past].start <= end; ++past) {
        const Span& s = intervals[past];
        if (s.start > covered_to) {
            counts.retrieved_union += length(covered_to, s.start);
            overlap(doc, covered_to, s.start, counts.intersection, counts.weighted_intersection);
        }
        covered_to = std::max(covered_to, s.end);
        merged_start = std::min(merged_start, s.start);
        merged_end = std::max(merged_end, s.end);
    }
    if (covered_to < end) {
        counts.retrieved_union += length(covered_to, end);
        overlap(doc, covered_to, end, counts.intersection, counts.weighted_intersection);
    }
    // intervals[first, past) and the row become one interval at `first`.
    const Span merged{doc, merged_start, merged_end};
    if (past == first) {
        for (size_t i = n; i > first; --i) intervals[i] = intervals[i - 1];
        cluster_size_ = n + 1;
    } else {
        const size_t removed = past - first - 1;
        for (size_t i = past; i < n; ++i) intervals[i - removed] = intervals[i];
        cluster_size_ = n - removed;
    }
    intervals[first] = merged;
}

template <Semantics S>
void QuestionScorer::write_column(int64_t question, int64_t column, const RankedCounts& c) const {
    const size_t at = static_cast<size_t>(question * n_columns_ + column);
    const double numerator = as_double(c.intersection);
    if (S == Semantics::set) {
        out_.recall[at] = numerator / as_double(evidence_len_);
        out_.precision[at] =
            c.retrieved_union > 0 ? numerator / as_double(c.retrieved_union) : 0.0;
        out_.iou[at] = numerator / as_double(evidence_len_ + c.retrieved_union - c.intersection);
    } else {
        out_.recall[at] = numerator / as_double(reference_sum_);
        out_.precision[at] = c.retrieved_sum > 0 ? numerator / as_double(c.retrieved_sum) : 0.0;
        // ref_sum - I_w is Chroma's "unused": each reference minus the retrieved union, summed.
        out_.iou[at] = numerator / as_double(c.retrieved_sum + (reference_sum_ - c.weighted_intersection));
    }
}

template <Semantics S>
void QuestionScorer::score(int64_t question) {
    load_references(question);
    prefix_ready_ = false;  // gain()'s prefix sums are over this question's segments

    int64_t n_evidence = -1;
    if (chunks_ != nullptr) {
        Count cs_len = 0;
        Count cs_in_e = 0;
        Count cs_in_e_w = 0;
        // The ideal gains of rank metrics are a second instantiation: the plain pass keeps its
        // registers.
        if (options_.ranked) {
            evidence<S == Semantics::chroma, true>(n_evidence, cs_len, cs_in_e, cs_in_e_w);
            // Sorted now, not in rank_metrics: the chain of dependent steps (sorting network,
            // running sums) then overlaps the ranked-list pass, which does not read it.
            sort_ideal(n_evidence);
        } else {
            evidence<S == Semantics::chroma, false>(n_evidence, cs_len, cs_in_e, cs_in_e_w);
        }
        out_.precision_omega[question] =
            as_double(cs_in_e) / as_double(evidence_len_ + cs_len - cs_in_e);
        out_.coverage[question] = S == Semantics::set
                                      ? as_double(cs_in_e) / as_double(evidence_len_)
                                      : as_double(cs_in_e_w) / as_double(reference_sum_);
    } else {
        out_.precision_omega[question] = std::numeric_limits<double>::quiet_NaN();
        out_.coverage[question] = std::numeric_limits<double>::quiet_NaN();
    }
    out_.n_evidence_chunks[question] = n_evidence;

    const int64_t lo = retrieved_.offsets[question];
    const int64_t hi = retrieved_.offsets[question + 1];
    if (!(0 <= lo && lo <= hi && hi <= retrieved_.spans.size)) {
        throw std::invalid_argument(offsets_changed_message("ret_offsets", question));
    }
    const int64_t n_retrieved = hi - lo;
    const bool list_mode = options_.k_mode == KMode::list;
    int64_t limit = n_retrieved;
    if (list_mode) {
        limit = std::min(n_retrieved, options_.ks[options_.n_ks - 1]);
    } else if (options_.k_mode == KMode::automatic) {
        limit = std::min(n_retrieved, n_evidence);
    }
    if (limit > kMaxRowsPerQuestion) {
        throw std::invalid_argument(too_many_rows_message("retrieved", question, limit));
    }
    // Rows past the deepest cut-off are not scored, but they are still input: check them too.
    const SpanView& spans = retrieved_.spans;
    for (int64_t row = lo + limit; row < hi; ++row) {
        if (!span_row_ok(spans.start[row], spans.end[row])) {
            throw std::invalid_argument(bad_span_message("retrieved", row, spans.start[row], spans.end[row]));
        }
    }
    rank_retrieved(question, limit);

    // Running sums over ranks give the counters at every cut-off; cut-offs beyond the list score
    // the whole list.
    RankedCounts total;
    const RankedCounts* added = rank_counts_.data();
    const int64_t n_cutoffs = list_mode ? options_.n_ks : 1;
    int64_t rank = 0;
    for (int64_t column = 0; column < n_cutoffs; ++column) {
        const int64_t upto = list_mode ? std::min(options_.ks[column], limit) : limit;
        for (; rank < upto; ++rank) {
            total.intersection += added[rank].intersection;
            total.weighted_intersection += added[rank].weighted_intersection;
            total.retrieved_union += added[rank].retrieved_union;
            total.retrieved_sum += added[rank].retrieved_sum;
        }
        write_column<S>(question, column, total);
    }
    if (options_.ranked) rank_metrics(question, lo, hi, limit, n_evidence);
}

// |[lo, hi) ∩ E| in `doc`: whole segments from the prefix sums (built on first use per question),
// the two end ones clipped. O(log n).
Count QuestionScorer::gain(int64_t doc, int64_t lo, int64_t hi) {
    if (n_segments_ <= 8) {  // a few segments: overlap()'s linear scans read at most 8 of them
        Count ov = 0;
        Count wov = 0;
        overlap(doc, lo, hi, ov, wov);
        return ov;
    }
    if (!prefix_ready_) {
        Count* prefix = scratch(segment_prefix_, n_segments_ + 1);
        prefix[0] = 0;
        for (size_t i = 0; i < n_segments_; ++i) prefix[i + 1] = prefix[i] + length(segments_[i].start, segments_[i].end);
        prefix_ready_ = true;
    }
    const DocSegments* const groups_begin = doc_segments_.data();
    const DocSegments* const groups_end = groups_begin + n_doc_segments_;
    const DocSegments* group = std::lower_bound(groups_begin, groups_end, doc,
                                                [](const DocSegments& g, int64_t d) { return g.doc < d; });
    if (group == groups_end || group->doc != doc) return 0;
    const Segment* const segments = segments_.data();
    const Segment* first = std::partition_point(segments + group->first, segments + group->last,
                                                [lo](const Segment& s) { return s.end <= lo; });
    const Segment* past = std::partition_point(first, segments + group->last,
                                               [hi](const Segment& s) { return s.start < hi; });
    if (first == past) return 0;
    const Count* prefix = segment_prefix_.data();
    Count total = prefix[past - segments] - prefix[first - segments];
    if (first->start < lo) total -= length(first->start, lo);
    if ((past - 1)->end > hi) total -= length(hi, (past - 1)->end);
    return total;
}

// The rank information of a cluster's rows (all of one doc; in rank order if at most kSmallCluster): a row is a repeat when an
// earlier rank has the same span, and every other row's gain is |row ∩ E|. Rows alone in their
// cluster never repeat, and their gain is what they added (rank_retrieved).
void QuestionScorer::cluster_ranks(RankedRow* rows, size_t n) {
    Count* gains = rank_gain_.data();
    uint8_t* repeat = repeat_.data();
    // With a few segments in all, a row's gain is read off the segments from the first that reaches
    // the cluster (found once per cluster); with more, gain()'s prefix sums bound the work.
    const Segment* const segments_end = segments_.data() + n_segments_;
    const bool scan = n_segments_ <= 8;
    const Segment* from = segments_.data();
    if (scan) {
        int64_t cluster_start = rows[0].start;
        for (size_t t = 1; t < n; ++t) cluster_start = std::min(cluster_start, rows[t].start);
        const int64_t doc = rows[0].doc;
        while (from != segments_end && (from->doc < doc || (from->doc == doc && from->end <= cluster_start))) ++from;
    }
    const auto row_gain = [&](const RankedRow& row) -> Count {
        if (!scan) return gain(row.doc, row.start, row.end);
        Count g = 0;
        for (const Segment* s = from; s != segments_end && s->doc == row.doc && s->start < row.end; ++s) {
            const int64_t lo = std::max(row.start, s->start);
            const int64_t hi = std::min(row.end, s->end);
            g += lo < hi ? length(lo, hi) : 0;
        }
        return g;
    };
    if (n <= kSmallCluster) {  // rank_retrieved sorted these rows by rank
        for (size_t t = 0; t < n; ++t) {
            bool repeated = false;
            for (size_t u = 0; u < t && !repeated; ++u) {
                repeated = rows[u].start == rows[t].start && rows[u].end == rows[t].end;
            }
            repeat[rows[t].rank] = repeated ? 1 : 0;
            n_repeats_ += repeated ? 1 : 0;
            gains[rows[t].rank] = repeated ? 0 : row_gain(rows[t]);
        }
        return;
    }
    RankedRow* sorted = scratch(dedup_, n);
    std::copy(rows, rows + n, sorted);
    std::sort(sorted, sorted + n, [](const RankedRow& a, const RankedRow& b) {
        if (a.start != b.start) return a.start < b.start;
        if (a.end != b.end) return a.end < b.end;
        return a.rank < b.rank;
    });
    for (size_t t = 0; t < n; ++t) {
        const bool repeated = t > 0 && sorted[t].start == sorted[t - 1].start && sorted[t].end == sorted[t - 1].end;
        repeat[sorted[t].rank] = repeated ? 1 : 0;
        n_repeats_ += repeated ? 1 : 0;
        gains[sorted[t].rank] = repeated ? 0 : row_gain(sorted[t]);
    }
}

// The deepest cut-off in ranks: the last of ks, n_evidence in "auto" mode, and every rank in "all"
// mode (whose ideal list is every relevant chunk).
int64_t QuestionScorer::rank_cutoff(int64_t n_evidence) const noexcept {
    if (options_.k_mode == KMode::list) return options_.ks[options_.n_ks - 1];
    if (options_.k_mode == KMode::automatic) return n_evidence;
    return std::numeric_limits<int64_t>::max();
}

// The ideal gains evidence() gathered, largest first (docs/engine.md §4); only as many as the deepest
// cut-off reads.
void QuestionScorer::sort_ideal(int64_t n_evidence) {
    const int64_t cutoff = rank_cutoff(n_evidence);
    Count* const gains_in_place = ideal_.data();
    const int64_t n_rel = static_cast<int64_t>(n_ideal_);
    const int64_t ideal_depth = std::min(n_rel, cutoff);
    // Up to 16 ideal gains are sorted as doubles (exact: every count is) in `top`, padded with zeros
    // to 4, 8 or 16 and sorted by the network of that many inputs: each exchange a max and a min in
    // registers, and every loop over them of a length that does not follow the data. The zeros sort
    // last and add +0.0 to the ideal sums, which changes no bit of them.
    double top[16];
    in_top_ = n_rel <= 16;
    if (in_top_) {
        // The buffer holds at least 16 (the constructor): reading past n_rel is safe, and masked.
        with_padded_width<4, 8, 16>(static_cast<size_t>(n_rel), [&](auto width) {
            constexpr int kWidth = static_cast<int>(decltype(width)::value);
            // An integer mask zeroes the padding without a branch on i < n_rel.
            for (int i = 0; i < kWidth; ++i) {
                top[i] = as_double(gains_in_place[i] & (Count{0} - static_cast<Count>(i < n_rel)));
            }
            network_sort<kWidth>(top, exchange_descending);
            // The running sums each cut-off reads, added in the order of the ideal ranks.
            top_graded_[0] = 0.0;
            for (int i = 0; i < kWidth; ++i) top_graded_[i + 1] = top_graded_[i] + top[i] * discounts().inverse[i + 1];
            n_top_ = kWidth;
        });
    } else if (n_rel <= 24) {  // ideal_depth > 0: every cut-off is at least 1, and n_evidence >= n_rel > 16
        sort_small(gains_in_place, gains_in_place + n_rel, [](Count a, Count b) { return a > b; });
    } else {
        std::partial_sort(gains_in_place, gains_in_place + ideal_depth, gains_in_place + n_rel,
                          [](Count a, Count b) { return a > b; });
    }
}

// docs/engine.md §4: the distinct rows in rank order (until the deepest cut-off has its ranks),
// their gains, and hit, mrr, map, ndcg and ndcg_graded at every cut-off. [lo, hi) are the
// question's retrieved rows, checked (and their spans validated) by score(); rank_retrieved has
// marked the repeats among the first `limit` and their gains.
void QuestionScorer::rank_metrics(int64_t question, int64_t lo, int64_t hi, int64_t limit, int64_t n_evidence) {
    const bool list_mode = options_.k_mode == KMode::list;
    const int64_t cutoff = rank_cutoff(n_evidence);
    const int64_t deepest = std::min(hi - lo, cutoff);  // rows that can take a rank
    // The gains of the ranks: rank_retrieved's per-row gains, skipping the repeats it marked (read
    // even when there are none, which costs less than the mispredicted branch on whether there
    // are), unless more rows than it scored are needed: then `skip` is null.
    const Count* gains = rank_gain_.data();
    const uint8_t* skip = repeat_.data();
    int64_t n_rows_read = limit;  // rows the loop below walks: ranks plus skipped repeats
    // score() scored limit == deepest rows, so with a repeat among them fewer than `deepest` ranks
    // are filled.
    if (n_repeats_ > 0 && limit < hi - lo) {
        // Repeats among the scored rows and more rows after them: the ranks read on. Sort the whole
        // list by (doc, start, end, rank); a row is a repeat when the one before it is the same span.
        const SpanView& spans = retrieved_.spans;
        const int64_t n_rows = hi - lo;
        RankedRow* rows = scratch(dedup_, static_cast<size_t>(n_rows));
        for (int64_t r = 0; r < n_rows; ++r) rows[r] = RankedRow{spans.doc[lo + r], spans.start[lo + r], spans.end[lo + r], r};
        std::sort(rows, rows + n_rows, [](const RankedRow& a, const RankedRow& b) {
            if (a.doc != b.doc) return a.doc < b.doc;
            if (a.start != b.start) return a.start < b.start;
            if (a.end != b.end) return a.end < b.end;
            return a.rank < b.rank;
        });
        uint8_t* repeat = scratch(repeat_, static_cast<size_t>(n_rows));
        for (int64_t r = 0; r < n_rows; ++r) {
            repeat[rows[r].rank] = r > 0 && rows[r].doc == rows[r - 1].doc && rows[r].start == rows[r - 1].start &&
                                   rows[r].end == rows[r - 1].end;
        }
        Count* compact = scratch(kept_gain_, static_cast<size_t>(deepest));
        int64_t n_kept = 0;
        for (int64_t r = 0; r < n_rows && n_kept < deepest; ++r) {
            if (!repeat[r]) compact[n_kept++] = gain(spans.doc[lo + r], spans.start[lo + r], spans.end[lo + r]);
        }
        gains = compact;
        skip = nullptr;
        n_rows_read = n_kept;
    }

    // The ideal gains, sorted by sort_ideal().
    const Count* const gains_in_place = ideal_.data();
    const int64_t n_rel = static_cast<int64_t>(n_ideal_);
    const bool in_top = in_top_;
    const int64_t n_top = n_top_;
    const double* const top_graded = top_graded_;

    const int64_t n_columns = n_columns_;
    const int64_t n_questions = references_.n_groups;
    double* const block = out_.rank + question * n_columns;
    const int64_t stride = n_questions * n_columns;
    double dcg = 0.0;
    double dcg_graded = 0.0;
    double ap = 0.0;
    double idcg = 0.0;
    double idcg_graded = 0.0;
    // The relevant ranks and their gains, in rank order, found without a data-dependent branch
    // (whether a row is relevant is mispredicted half the time): every row is written, and the
    // count moves on only past a relevant one. A skipped repeat takes no rank.
    // Two arrays rather than one of pairs: a store's address is then the count scaled, and no store
    // can change a gain or a skip mark (the buffers are distinct), so each is loaded once.
    const size_t n_slots = static_cast<size_t>(std::max<int64_t>(n_rows_read, 1));
    int64_t* __restrict found_rank = scratch(relevant_rank_, n_slots);
    Count* __restrict found_gain = scratch(relevant_gain_, n_slots);
    const Count* __restrict row_gain = gains;
    int64_t n_found = 0;
    if (skip == nullptr) {
        const int64_t rows = std::min(n_rows_read, cutoff);
        for (int64_t row = 0; row < rows; ++row) {
            const Count g = row_gain[row];
            found_rank[n_found] = row + 1;
            found_gain[n_found] = g;
            n_found += static_cast<int64_t>(g > 0);
        }
    } else {
        // Here the rows read are the `limit` scored ones, and limit <= cutoff, so every distinct row
        // takes a rank; a repeat's gain is 0, so it is never counted as relevant.
        const uint8_t* __restrict repeated = skip;
        int64_t n_skipped = 0;
        for (int64_t row = 0; row < n_rows_read; ++row) {
            const Count g = row_gain[row];
            n_skipped += static_cast<int64_t>(repeated[row]);
            found_rank[n_found] = row + 1 - n_skipped;
            found_gain[n_found] = g;
            n_found += static_cast<int64_t>(g > 0);
        }
    }

    int64_t hits = 0;
    int64_t first_hit = 0;
    int64_t ideal_rank = 0;  // ideal positions summed so far
    const int64_t n_cutoffs = list_mode ? options_.n_ks : 1;
    for (int64_t column = 0; column < n_cutoffs; ++column) {
        const int64_t k = list_mode ? options_.ks[column] : cutoff;
        for (; hits < n_found && found_rank[hits] <= k; ++hits) {
            const int64_t rank = found_rank[hits];
            if (hits == 0) first_hit = rank;
            const double w = inverse_discount(rank);
            ap += static_cast<double>(hits + 1) / static_cast<double>(rank);
            dcg += w;
            dcg_graded += as_double(found_gain[hits]) * w;
        }
        const int64_t upto = std::min(k, n_rel);
        if (in_top) {
            // The graded ideal sum runs over the padding too (terms +0.0, which change no bit).
            idcg_graded = top_graded[std::min(k, n_top)];
        } else {
            for (const int64_t in_table = std::min(upto, kDiscountTable - 1); ideal_rank < in_table;) {
                ++ideal_rank;
                idcg_graded += as_double(gains_in_place[ideal_rank - 1]) * discounts().inverse[ideal_rank];
            }
            while (ideal_rank < upto) {  // past the table: W computed, and the binary sum continued
                ++ideal_rank;
                const double w = inverse_discount(ideal_rank);
                idcg_graded += as_double(gains_in_place[ideal_rank - 1]) * w;
                idcg = (ideal_rank == kDiscountTable ? discounts().ideal[kDiscountTable - 1] : idcg) + w;
            }
        }
        if (upto < kDiscountTable) idcg = discounts().ideal[upto];
        block[column] = static_cast<double>(hits > 0);
        block[stride + column] = first_hit < kDiscountTable ? discounts().reciprocal[first_hit]
                                                            : 1.0 / static_cast<double>(first_hit);
        block[2 * stride + column] = n_rel > 0 ? ap / static_cast<double>(n_rel) : 0.0;
        block[3 * stride + column] = idcg > 0.0 ? dcg / idcg : 0.0;
        block[4 * stride + column] = idcg_graded > 0.0 ? dcg_graded / idcg_graded : 0.0;
    }
}

}  // namespace

int64_t metric_columns(KMode k_mode, int64_t n_ks) noexcept { return k_mode == KMode::list ? n_ks : 1; }

void validate_metrics_inputs(const RaggedSpanView& references, const RaggedSpanView& retrieved,
                             const ChunkIndex* chunks, const MetricsOptions& options) {
    if (references.n_groups < 0 || references.offsets == nullptr) {
        throw std::invalid_argument("ref_offsets must have n_questions + 1 >= 1 entries");
    }
    if (retrieved.n_groups < 0 || retrieved.offsets == nullptr) {
        throw std::invalid_argument("ret_offsets must have n_questions + 1 >= 1 entries");
    }
    if (references.n_groups != retrieved.n_groups) {
        throw std::invalid_argument("ref_offsets describes " + std::to_string(references.n_groups) +
                                    " questions but ret_offsets describes " +
                                    std::to_string(retrieved.n_groups) + "; both need n_questions + 1 entries");
    }
    if (references.spans.size < 0 || retrieved.spans.size < 0) {
        throw std::invalid_argument("span columns must not have a negative size");
    }
    validate_offsets("ref_offsets", references.offsets, references.n_groups, references.spans.size);
    validate_offsets("ret_offsets", retrieved.offsets, retrieved.n_groups, retrieved.spans.size);

    const int k_mode = static_cast<int>(options.k_mode);
    if (k_mode < 0 || k_mode > 2) {
        throw std::invalid_argument("k_mode is " + std::to_string(k_mode) + "; use 0 (list), 1 (all) or 2 (auto)");
    }
    const int semantics = static_cast<int>(options.semantics);
    if (semantics < 0 || semantics > 1) {
        throw std::invalid_argument("semantics is " + std::to_string(semantics) + "; use 0 (set) or 1 (chroma)");
    }
    if (options.k_mode == KMode::list) {
        if (options.n_ks < 1 || options.ks == nullptr) {
            throw std::invalid_argument("ks is empty; list mode needs at least one cut-off");
        }
        for (int64_t i = 0; i < options.n_ks; ++i) {
            if (options.ks[i] < 1) {
                throw std::invalid_argument("ks[" + std::to_string(i) + "] is " + std::to_string(options.ks[i]) +
                                            "; cut-offs must be >= 1");
            }
            if (i > 0 && options.ks[i] <= options.ks[i - 1]) {
                throw std::invalid_argument("ks[" + std::to_string(i) + "] is " + std::to_string(options.ks[i]) +
                                            ", not above ks[" + std::to_string(i - 1) + "] = " +
                                            std::to_string(options.ks[i - 1]) + "; cut-offs must be strictly increasing");
            }
        }
    }
    if (options.ranked && chunks == nullptr) {
        throw std::invalid_argument("ranked=True needs the chunking: rank metrics count the evidence chunks");
    }
    if (options.k_mode == KMode::automatic && chunks == nullptr) {
        throw std::invalid_argument("k_mode 2 (auto) needs the chunking: pass a ChunkIndex");
    }
    if (options.num_threads < 0) {
        throw std::invalid_argument("num_threads is " + std::to_string(options.num_threads) +
                                    "; use a positive count, or 0 for every hardware thread");
    }
    // Rows per question, in question order (auto mode's scored count is known only while scoring:
    // the scorer checks that one).
    const int64_t deepest =
        options.k_mode == KMode::list ? options.ks[options.n_ks - 1] : std::numeric_limits<int64_t>::max();
    for (int64_t q = 0; q < references.n_groups; ++q) {
        const int64_t n_references = references.offsets[q + 1] - references.offsets[q];
        if (n_references > kMaxRowsPerQuestion) {
            throw std::invalid_argument(too_many_rows_message("references", q, n_references));
        }
        const int64_t scored = std::min(retrieved.offsets[q + 1] - retrieved.offsets[q], deepest);
        if (options.k_mode != KMode::automatic && scored > kMaxRowsPerQuestion) {
            throw std::invalid_argument(too_many_rows_message("retrieved", q, scored));
        }
    }
}

constexpr int64_t kOutputPrefetch = 16;  // questions ahead

void span_metrics(const RaggedSpanView& references, const RaggedSpanView& retrieved,
                  const ChunkIndex* chunks, const MetricsOptions& options, const MetricsOutputs& out) {
    validate_metrics_inputs(references, retrieved, chunks, options);
    auto run = [&](const MetricsOptions& opts, auto semantics_tag) {
        constexpr Semantics S = decltype(semantics_tag)::value;
        // One scorer per thread, kept across the blocks it takes, so its scratch buffers are reused.
        std::vector<std::unique_ptr<QuestionScorer>> scorers(
            static_cast<size_t>(effective_threads(references.n_groups, opts.num_threads)));
        parallel_for(references.n_groups, opts.num_threads,
                     [&](int thread_id, int64_t begin, int64_t end, const std::atomic<bool>& stop) {
                         std::unique_ptr<QuestionScorer>& slot = scorers[static_cast<size_t>(thread_id)];
                         if (!slot) slot = std::make_unique<QuestionScorer>(references, retrieved, chunks, opts, out);
                         QuestionScorer& scorer = *slot;
                         for (int64_t question = begin; question < end; ++question) {
                             if (stop.load(std::memory_order_relaxed)) return;
                             if (question + QuestionScorer::kPrefetchDistance < end) {
                                 scorer.prefetch_evidence(question + QuestionScorer::kPrefetchDistance);
                             }
                             if (question + kOutputPrefetch < end) scorer.prefetch_outputs(question + kOutputPrefetch);
                             scorer.score<S>(question);
                         }
                     });
    };
    const auto run_all = [&](const MetricsOptions& opts) {
        if (opts.semantics == Semantics::set) {
            run(opts, std::integral_constant<Semantics, Semantics::set>{});
        } else {
            run(opts, std::integral_constant<Semantics, Semantics::chroma>{});
        }
    };
    try {
        run_all(options);
    } catch (const std::invalid_argument&) {
        // Span rows are checked as the workers read them, so with several threads the row reported
        // need not be the first bad one. Report the first, so the message never depends on timing:
        // the first bad span row, else the first question (in order) that fails on one thread.
        validate_span_rows("references", references.spans);
        validate_span_rows("retrieved", retrieved.spans);
        if (effective_threads(references.n_groups, options.num_threads) > 1) {
            MetricsOptions sequential = options;
            sequential.num_threads = 1;
            run_all(sequential);
        }
        throw;
    }
}

}  // namespace chunkeval
