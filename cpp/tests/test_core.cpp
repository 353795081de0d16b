// C++ tests of the chunkeval core. No framework: CHECK records a failure and carries on, and the
// exit status is the number of failures (capped), so ctest reports every broken check at once.
//
// Expected values are worked out by hand in the comments and written as the same integer ratios
// the engine divides, so comparisons are exact (==), as the backends must be bit-identical.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "chunkeval/chunk_index.hpp"
#include "chunkeval/metrics.hpp"
#include "chunkeval/parallel.hpp"
#include "chunkeval/sorting_network.hpp"

using namespace chunkeval;

namespace {

int g_failures = 0;
int g_checks = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        ++g_checks;                                                              \
        if (!(cond)) {                                                           \
            ++g_failures;                                                        \
            std::printf("%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

// Exact equality of doubles, NaN equal to NaN.
#define CHECK_SAME(actual, expected)                                                              \
    do {                                                                                          \
        ++g_checks;                                                                               \
        const double a_ = (actual);                                                               \
        const double e_ = (expected);                                                             \
        if (!((std::isnan(a_) && std::isnan(e_)) || a_ == e_)) {                                  \
            ++g_failures;                                                                         \
            std::printf("%s:%d: %s is %.17g, expected %s = %.17g\n", __FILE__, __LINE__, #actual, \
                        a_, #expected, e_);                                                       \
        }                                                                                         \
    } while (0)

#define CHECK_THROWS(expr, needle)                                                                \
    do {                                                                                          \
        ++g_checks;                                                                               \
        bool threw_ = false;                                                                      \
        try {                                                                                     \
            expr;                                                                                 \
        } catch (const std::invalid_argument& error_) {                                           \
            threw_ = true;                                                                        \
            if (std::string(error_.what()).find(needle) == std::string::npos) {                   \
                ++g_failures;                                                                     \
                std::printf("%s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__,           \
                            error_.what(), needle);                                               \
            }                                                                                     \
        }                                                                                         \
        if (!threw_) {                                                                            \
            ++g_failures;                                                                         \
            std::printf("%s:%d: %s did not throw std::invalid_argument\n", __FILE__, __LINE__, #expr); \
        }                                                                                         \
    } while (0)

double ratio(int64_t a, int64_t b) { return static_cast<double>(a) / static_cast<double>(b); }

struct Question {
    std::vector<Span> refs;
    std::vector<Span> retrieved;
};

// Owns CSR columns built from a list of questions.
struct Batch {
    std::vector<int64_t> ref_offsets{0}, ref_doc, ref_start, ref_end;
    std::vector<int64_t> ret_offsets{0}, ret_doc, ret_start, ret_end;

    explicit Batch(const std::vector<Question>& questions) {
        for (const Question& q : questions) {
            for (const Span& s : q.refs) {
                ref_doc.push_back(s.doc);
                ref_start.push_back(s.start);
                ref_end.push_back(s.end);
            }
            for (const Span& s : q.retrieved) {
                ret_doc.push_back(s.doc);
                ret_start.push_back(s.start);
                ret_end.push_back(s.end);
            }
            ref_offsets.push_back(static_cast<int64_t>(ref_doc.size()));
            ret_offsets.push_back(static_cast<int64_t>(ret_doc.size()));
        }
    }
    RaggedSpanView references() const {
        return RaggedSpanView{ref_offsets.data(), static_cast<int64_t>(ref_offsets.size()) - 1,
                              SpanView{ref_doc.data(), ref_start.data(), ref_end.data(),
                                       static_cast<int64_t>(ref_doc.size())}};
    }
    RaggedSpanView retrieved() const {
        return RaggedSpanView{ret_offsets.data(), static_cast<int64_t>(ret_offsets.size()) - 1,
                              SpanView{ret_doc.data(), ret_start.data(), ret_end.data(),
                                       static_cast<int64_t>(ret_doc.size())}};
    }
};

struct Results {
    int64_t n_columns = 0;
    std::vector<double> recall, precision, iou, precision_omega, coverage;
    std::vector<int64_t> n_evidence_chunks;
    double r(int64_t q, int64_t c) const { return recall[static_cast<size_t>(q * n_columns + c)]; }
    double p(int64_t q, int64_t c) const { return precision[static_cast<size_t>(q * n_columns + c)]; }
    double j(int64_t q, int64_t c) const { return iou[static_cast<size_t>(q * n_columns + c)]; }
};

ChunkIndex make_index(const std::vector<Span>& chunks) {
    std::vector<int64_t> doc, start, end;
    for (const Span& s : chunks) {
        doc.push_back(s.doc);
        start.push_back(s.start);
        end.push_back(s.end);
    }
    return ChunkIndex(SpanView{doc.data(), start.data(), end.data(), static_cast<int64_t>(doc.size())});
}

Results score(const Batch& batch, const ChunkIndex* index, KMode mode, Semantics semantics,
              const std::vector<int64_t>& ks, int threads = 1) {
    Results res;
    const int64_t n = static_cast<int64_t>(batch.ref_offsets.size()) - 1;
    res.n_columns = metric_columns(mode, static_cast<int64_t>(ks.size()));
    const size_t cells = static_cast<size_t>(n * res.n_columns);
    res.recall.assign(cells, -7.0);
    res.precision.assign(cells, -7.0);
    res.iou.assign(cells, -7.0);
    res.precision_omega.assign(static_cast<size_t>(n), -7.0);
    res.coverage.assign(static_cast<size_t>(n), -7.0);
    res.n_evidence_chunks.assign(static_cast<size_t>(n), -7);
    MetricsOptions options;
    options.k_mode = mode;
    options.semantics = semantics;
    options.ks = ks.data();
    options.n_ks = static_cast<int64_t>(ks.size());
    options.num_threads = threads;
    MetricsOutputs out{res.recall.data(),          res.precision.data(), res.iou.data(),
                       res.precision_omega.data(), res.coverage.data(),  res.n_evidence_chunks.data()};
    span_metrics(batch.references(), batch.retrieved(), index, options, out);
    return res;
}

// The rank metrics of one call: rank[m][q * n_columns + c] for m = hit, mrr, map, ndcg, ndcg_graded.
struct RankResults {
    int64_t n_columns = 0;
    std::vector<double> values;
    int64_t n_questions = 0;
    double at(int metric, int64_t q, int64_t c) const {
        return values[static_cast<size_t>((metric * n_questions + q) * n_columns + c)];
    }
};

RankResults score_ranked(const Batch& batch, const ChunkIndex* index, KMode mode, Semantics semantics,
                         const std::vector<int64_t>& ks) {
    RankResults res;
    res.n_questions = static_cast<int64_t>(batch.ref_offsets.size()) - 1;
    res.n_columns = metric_columns(mode, static_cast<int64_t>(ks.size()));
    const size_t cells = static_cast<size_t>(res.n_questions * res.n_columns);
    std::vector<double> recall(cells), precision(cells), iou(cells);
    std::vector<double> omega(static_cast<size_t>(res.n_questions)), coverage(static_cast<size_t>(res.n_questions));
    std::vector<int64_t> n_evidence(static_cast<size_t>(res.n_questions));
    res.values.assign(static_cast<size_t>(kRankMetrics) * cells, -7.0);
    MetricsOptions options;
    options.k_mode = mode;
    options.semantics = semantics;
    options.ks = ks.data();
    options.n_ks = static_cast<int64_t>(ks.size());
    options.ranked = true;
    MetricsOutputs out{recall.data(), precision.data(), iou.data(), omega.data(),
                       coverage.data(), n_evidence.data(), res.values.data()};
    span_metrics(batch.references(), batch.retrieved(), index, options, out);
    return res;
}

// The discount W(i) = 1 / log2(i + 1) of docs/engine.md §4.
double W(int64_t i) { return 1.0 / std::log2(static_cast<double>(i + 1)); }

enum { kHit, kMrr, kMap, kNdcg, kGraded };

std::vector<Span> tiling(int64_t doc, int64_t length, int64_t width) {
    std::vector<Span> chunks;
    for (int64_t s = 0; s < length; s += width) chunks.push_back(Span{doc, s, std::min(s + width, length)});
    return chunks;
}

void test_worked_example() {
    // docs/metrics.md: chunks [0,10) [10,20) ... of a 100-char doc, reference [15,25),
    // retrieved [20,30) then [50,60).
    // @2: E = [15,25), |E| = 10; R = [20,30) ∪ [50,60), |R| = 20; I = |[20,25)| = 5
    //     recall 5/10, precision 5/20, iou 5/(10 + 20 - 5) = 5/25
    // @1: R = [20,30): recall 5/10, precision 5/10, iou 5/(10 + 10 - 5) = 5/15
    // C* = [10,20) ∪ [20,30) = [10,30): precision_omega = 10/(10 + 20 - 10) = 0.5, coverage 10/10,
    // 2 evidence chunks. @10 is the whole list, i.e. @2.
    const ChunkIndex index = make_index(tiling(0, 100, 10));
    const Batch batch({Question{{{0, 15, 25}}, {{0, 20, 30}, {0, 50, 60}}}});
    const Results res = score(batch, &index, KMode::list, Semantics::set, {1, 2, 10});
    CHECK_SAME(res.r(0, 0), 0.5);
    CHECK_SAME(res.p(0, 0), 0.5);
    CHECK_SAME(res.j(0, 0), ratio(5, 15));
    CHECK_SAME(res.r(0, 1), 0.5);
    CHECK_SAME(res.p(0, 1), 0.25);
    CHECK_SAME(res.j(0, 1), 0.2);
    CHECK_SAME(res.r(0, 2), 0.5);
    CHECK_SAME(res.p(0, 2), 0.25);
    CHECK_SAME(res.j(0, 2), 0.2);
    CHECK_SAME(res.precision_omega[0], 0.5);
    CHECK_SAME(res.coverage[0], 1.0);
    CHECK(res.n_evidence_chunks[0] == 2);

    // Without chunks: NaN, NaN, -1 and the same ranked metrics.
    const Results bare = score(batch, nullptr, KMode::all, Semantics::set, {});
    CHECK(bare.n_columns == 1);
    CHECK_SAME(bare.r(0, 0), 0.5);
    CHECK_SAME(bare.p(0, 0), 0.25);
    CHECK_SAME(bare.j(0, 0), 0.2);
    CHECK(std::isnan(bare.precision_omega[0]));
    CHECK(std::isnan(bare.coverage[0]));
    CHECK(bare.n_evidence_chunks[0] == -1);
}

void test_touching_spans() {
    // Chunks [0,10) [10,20) [20,30), reference [10,20), retrieved [0,10) then [10,20).
    // set: only [10,20) overlaps with positive length: 1 evidence chunk, C* = [10,20),
    //      precision_omega 10/10, coverage 10/10.
    // chroma: [0,10) and [20,30) touch the reference: 3 evidence chunks, C* = [0,30),
    //      precision_omega = 10/(10 + 30 - 10) = 1/3, coverage = 10/10.
    // @1 (touching chunk only): I = 0. set: recall 0, precision 0/10, iou 0/(10 + 10 - 0) = 0.
    //      chroma: ret_sum 10, recall 0, precision 0, iou 0/(10 + 10) = 0.
    // @2: I = 10. set: R_len 20, recall 1, precision 10/20, iou 10/(10 + 20 - 10) = 0.5.
    //      chroma: ret_sum 20, I_w 10, recall 1, precision 10/20, iou 10/(20 + (10 - 10)) = 0.5.
    const ChunkIndex index = make_index(tiling(0, 30, 10));
    const Batch batch({Question{{{0, 10, 20}}, {{0, 0, 10}, {0, 10, 20}}}});
    for (Semantics sem : {Semantics::set, Semantics::chroma}) {
        const Results res = score(batch, &index, KMode::list, sem, {1, 2});
        CHECK_SAME(res.r(0, 0), 0.0);
        CHECK_SAME(res.p(0, 0), 0.0);
        CHECK_SAME(res.j(0, 0), 0.0);
        CHECK_SAME(res.r(0, 1), 1.0);
        CHECK_SAME(res.p(0, 1), 0.5);
        CHECK_SAME(res.j(0, 1), 0.5);
        CHECK_SAME(res.coverage[0], 1.0);
        if (sem == Semantics::set) {
            CHECK(res.n_evidence_chunks[0] == 1);
            CHECK_SAME(res.precision_omega[0], 1.0);
        } else {
            CHECK(res.n_evidence_chunks[0] == 3);
            CHECK_SAME(res.precision_omega[0], ratio(10, 30));
        }
    }
    // auto mode: set cuts at min(1, 2) = 1 row, chroma at min(3, 2) = 2 rows.
    const Results set_auto = score(batch, &index, KMode::automatic, Semantics::set, {});
    CHECK_SAME(set_auto.r(0, 0), 0.0);
    CHECK_SAME(set_auto.j(0, 0), 0.0);
    const Results chroma_auto = score(batch, &index, KMode::automatic, Semantics::chroma, {});
    CHECK_SAME(chroma_auto.r(0, 0), 1.0);
    CHECK_SAME(chroma_auto.p(0, 0), 0.5);
}

void test_nested_chunks() {
    // Hierarchical chunks of one 100-char doc: [0,100), halves, quarters. Reference [30,40).
    // Evidence (both semantics): [0,100), [0,50), [25,50); [0,25) ends at 25 < 30 and [50,75)
    // starts at 50 > 40, so they do not even touch. C* = [0,100): cs_len 100, cs_in_E 10,
    // precision_omega = 10/(10 + 100 - 10) = 0.1, coverage 1.
    // Retrieved [0,100) then [25,50): @1 I = 10, R_len 100: recall 1, precision 0.1,
    // iou 10/(10 + 100 - 10) = 0.1; the second row is inside R: @2 the same under set.
    // chroma @2: ret_sum 125: precision 10/125, iou 10/(125 + 0) = 10/125.
    const ChunkIndex index =
        make_index({{0, 0, 100}, {0, 0, 50}, {0, 50, 100}, {0, 0, 25}, {0, 25, 50}, {0, 50, 75}, {0, 75, 100}});
    const Batch batch({Question{{{0, 30, 40}}, {{0, 0, 100}, {0, 25, 50}}}});
    for (Semantics sem : {Semantics::set, Semantics::chroma}) {
        const Results res = score(batch, &index, KMode::list, sem, {1, 2});
        CHECK(res.n_evidence_chunks[0] == 3);
        CHECK_SAME(res.precision_omega[0], 0.1);
        CHECK_SAME(res.coverage[0], 1.0);
        CHECK_SAME(res.r(0, 0), 1.0);
        CHECK_SAME(res.p(0, 0), 0.1);
        CHECK_SAME(res.j(0, 0), 0.1);
        CHECK_SAME(res.r(0, 1), 1.0);
        CHECK_SAME(res.p(0, 1), sem == Semantics::set ? 0.1 : ratio(10, 125));
        CHECK_SAME(res.j(0, 1), sem == Semantics::set ? 0.1 : ratio(10, 125));
    }
}

void test_duplicate_retrieval() {
    // Reference [0,10), chunks of width 10, retrieved [0,10), [0,10), [10,20).
    // set:    @1 R_len 10, I 10: 1, 1, 1. @2 the duplicate adds nothing: 1, 1, 1.
    //         @3 R_len 20: recall 1, precision 10/20, iou 10/(10 + 20 - 10) = 0.5.
    // chroma: @1 ret_sum 10: 1, 1, 10/(10 + 0) = 1. @2 ret_sum 20: recall 1, precision 0.5,
    //         iou 10/20. @3 ret_sum 30: precision 10/30, iou 10/30.
    const ChunkIndex index = make_index(tiling(0, 40, 10));
    const Batch batch({Question{{{0, 0, 10}}, {{0, 0, 10}, {0, 0, 10}, {0, 10, 20}}}});
    const Results set = score(batch, &index, KMode::list, Semantics::set, {1, 2, 3});
    CHECK_SAME(set.p(0, 0), 1.0);
    CHECK_SAME(set.j(0, 0), 1.0);
    CHECK_SAME(set.p(0, 1), 1.0);
    CHECK_SAME(set.j(0, 1), 1.0);
    CHECK_SAME(set.r(0, 2), 1.0);
    CHECK_SAME(set.p(0, 2), 0.5);
    CHECK_SAME(set.j(0, 2), 0.5);
    const Results chroma = score(batch, &index, KMode::list, Semantics::chroma, {1, 2, 3});
    CHECK_SAME(chroma.j(0, 0), 1.0);
    CHECK_SAME(chroma.p(0, 1), 0.5);
    CHECK_SAME(chroma.j(0, 1), 0.5);
    CHECK_SAME(chroma.r(0, 2), 1.0);
    CHECK_SAME(chroma.p(0, 2), ratio(10, 30));
    CHECK_SAME(chroma.j(0, 2), ratio(10, 30));
    // Two identical chunk rows are two chunks: chroma evidence of [0,10) with [0,10) listed twice
    // and [10,20) touching = 3.
    const ChunkIndex doubled = make_index({{0, 0, 10}, {0, 0, 10}, {0, 10, 20}, {0, 20, 30}});
    const Results twice = score(batch, &doubled, KMode::all, Semantics::chroma, {});
    CHECK(twice.n_evidence_chunks[0] == 3);
    // C* = [0,20): precision_omega 10/(10 + 20 - 10) = 0.5
    CHECK_SAME(twice.precision_omega[0], 0.5);
}

void test_other_document() {
    // Reference doc 0 [0,10); retrieved doc 1 [0,10), then doc 0 [5,15).
    // set:    @1 I 0, R_len 10: 0, 0, 0/(10 + 10) = 0.
    //         @2 R_len 20, I = |[5,10)| = 5: recall 0.5, precision 0.25, iou 5/(10 + 20 - 5) = 0.2
    // chroma: @2 ret_sum 20, I 5, I_w 5: recall 0.5, precision 0.25, iou 5/(20 + 10 - 5) = 0.2
    const Batch batch({Question{{{0, 0, 10}}, {{1, 0, 10}, {0, 5, 15}}}});
    for (Semantics sem : {Semantics::set, Semantics::chroma}) {
        const Results res = score(batch, nullptr, KMode::list, sem, {1, 2});
        CHECK_SAME(res.r(0, 0), 0.0);
        CHECK_SAME(res.p(0, 0), 0.0);
        CHECK_SAME(res.j(0, 0), 0.0);
        CHECK_SAME(res.r(0, 1), 0.5);
        CHECK_SAME(res.p(0, 1), 0.25);
        CHECK_SAME(res.j(0, 1), 0.2);
    }
}

void test_empty_retrieval() {
    // Reference [0,10), nothing retrieved: I = 0, R = ∅: recall 0, precision 0 (by definition),
    // iou 0/(10 + 0 - 0) = 0, at every cut-off and in every mode; auto mode cuts at min(n, 0) = 0.
    // Chunks of width 10. set: one evidence chunk [0,10), precision_omega 10/10, coverage 1.
    // chroma: [10,20) touches the reference too: 2 chunks, C* = [0,20), precision_omega
    // 10/(10 + 20 - 10) = 0.5, coverage 10/10.
    const ChunkIndex index = make_index(tiling(0, 30, 10));
    const Batch batch({Question{{{0, 0, 10}}, {}}});
    for (Semantics sem : {Semantics::set, Semantics::chroma}) {
        for (KMode mode : {KMode::list, KMode::all, KMode::automatic}) {
            const Results res = score(batch, &index, mode, sem, {1, 5});
            for (int64_t c = 0; c < res.n_columns; ++c) {
                CHECK_SAME(res.r(0, c), 0.0);
                CHECK_SAME(res.p(0, c), 0.0);
                CHECK_SAME(res.j(0, c), 0.0);
            }
            CHECK(res.n_evidence_chunks[0] == (sem == Semantics::set ? 1 : 2));
            CHECK_SAME(res.precision_omega[0], sem == Semantics::set ? 1.0 : 0.5);
            CHECK_SAME(res.coverage[0], 1.0);
        }
    }
}

void test_references_in_two_docs() {
    // References doc 0 [0,10) and doc 1 [20,30); chunks doc 0 [0,10) [10,20), doc 1 [0,25) [25,50).
    // Retrieved doc 1 [0,25), then doc 0 [0,10). E_len = ref_sum = 20.
    // @1: I = |[20,25)| = 5, R_len = ret_sum = 25. set: 5/20, 5/25, 5/(20 + 25 - 5) = 5/40.
    //     chroma: I_w 5: 5/20, 5/25, 5/(25 + 20 - 5) = 5/40.
    // @2: I = 15, R_len = ret_sum = 35. set: 15/20, 15/35, 15/(20 + 35 - 15) = 15/40.
    //     chroma: 15/20, 15/35, 15/(35 + 20 - 15) = 15/40.
    // set evidence: doc 0 [0,10); doc 1 [0,25) and [25,50): 3. C* = doc 0 [0,10) + doc 1 [0,50):
    //     cs_len 60, cs_in_E 20, precision_omega 20/(20 + 60 - 20) = 20/60.
    // chroma evidence adds doc 0 [10,20) (touches at 10): 4. C* = doc 0 [0,20) + doc 1 [0,50):
    //     cs_len 70, precision_omega 20/(20 + 70 - 20) = 20/70. Coverage 1 in both.
    const ChunkIndex index = make_index({{1, 25, 50}, {0, 10, 20}, {1, 0, 25}, {0, 0, 10}});  // unsorted on purpose
    const Batch batch({Question{{{1, 20, 30}, {0, 0, 10}}, {{1, 0, 25}, {0, 0, 10}}}});
    for (Semantics sem : {Semantics::set, Semantics::chroma}) {
        const Results res = score(batch, &index, KMode::list, sem, {1, 2});
        CHECK_SAME(res.r(0, 0), ratio(5, 20));
        CHECK_SAME(res.p(0, 0), ratio(5, 25));
        CHECK_SAME(res.j(0, 0), ratio(5, 40));
        CHECK_SAME(res.r(0, 1), ratio(15, 20));
        CHECK_SAME(res.p(0, 1), ratio(15, 35));
        CHECK_SAME(res.j(0, 1), ratio(15, 40));
        CHECK_SAME(res.coverage[0], 1.0);
        CHECK(res.n_evidence_chunks[0] == (sem == Semantics::set ? 3 : 4));
        CHECK_SAME(res.precision_omega[0], sem == Semantics::set ? ratio(20, 60) : ratio(20, 70));
        // auto: min(3 or 4, 2) = 2 rows, i.e. @2
        const Results automatic = score(batch, &index, KMode::automatic, sem, {});
        CHECK_SAME(automatic.j(0, 0), ratio(15, 40));
    }
    CHECK(index.n_docs() == 2);
    CHECK(index.size() == 4);
}

void test_chroma_overlapping_references() {
    // References [0,10) and [5,15): segments [0,5) x1, [5,10) x2, [10,15) x1; E_len 15, ref_sum 20.
    // Retrieved [0,10): I = 10, I_w = 5 + 5*2 = 15, ret_sum = R_len = 10.
    // chroma: recall 10/20 (the denominator counts [5,10) twice), precision 10/10,
    //         iou 10/(10 + (20 - 15)) = 10/15.
    // set:    recall 10/15, precision 10/10, iou 10/(15 + 10 - 10) = 10/15.
    // Chunks [0,8) and [9,20) (the chunker dropped position 8): both are evidence in both semantics.
    // C* = [0,8) ∪ [9,20): cs_len 19; cs_in_E = 8 + |[9,15)| = 14; precision_omega 14/(15 + 19 - 14) = 0.7.
    // set coverage 14/15; chroma coverage: cs_in_E_w = ([0,5) 5 + [5,8) 3*2) + ([9,10) 1*2 + [10,15) 5)
    // = 11 + 7 = 18, 18/20 = 0.9 (= 1 - (|[8,9)| + |[8,9)|)/20).
    const ChunkIndex index = make_index({{0, 0, 8}, {0, 9, 20}});
    const Batch batch({Question{{{0, 5, 15}, {0, 0, 10}}, {{0, 0, 10}}}});
    const Results chroma = score(batch, &index, KMode::list, Semantics::chroma, {1});
    CHECK_SAME(chroma.r(0, 0), 0.5);
    CHECK_SAME(chroma.p(0, 0), 1.0);
    CHECK_SAME(chroma.j(0, 0), ratio(10, 15));
    CHECK(chroma.n_evidence_chunks[0] == 2);
    CHECK_SAME(chroma.precision_omega[0], ratio(14, 20));
    CHECK_SAME(chroma.coverage[0], ratio(18, 20));
    const Results set = score(batch, &index, KMode::list, Semantics::set, {1});
    CHECK_SAME(set.r(0, 0), ratio(10, 15));
    CHECK_SAME(set.p(0, 0), 1.0);
    CHECK_SAME(set.j(0, 0), ratio(10, 15));
    CHECK(set.n_evidence_chunks[0] == 2);
    CHECK_SAME(set.precision_omega[0], ratio(14, 20));
    CHECK_SAME(set.coverage[0], ratio(14, 15));
}

void test_invalid_input() {
    const ChunkIndex index = make_index(tiling(0, 30, 10));
    const Batch good({Question{{{0, 0, 10}}, {{0, 0, 10}}}, Question{{{0, 5, 9}}, {}}});
    const std::vector<int64_t> ks{1, 2};

    Batch empty_ref = good;
    empty_ref.ref_end[1] = empty_ref.ref_start[1];
    CHECK_THROWS(score(empty_ref, &index, KMode::list, Semantics::set, ks), "references row 1");
    Batch negative = good;
    negative.ret_start[0] = -1;
    CHECK_THROWS(score(negative, &index, KMode::list, Semantics::set, ks), "retrieved row 0");
    Batch reversed = good;
    reversed.ret_start[0] = 20;
    CHECK_THROWS(score(reversed, &index, KMode::list, Semantics::chroma, ks), "retrieved row 0");

    Batch first_offset = good;
    first_offset.ref_offsets[0] = 1;
    CHECK_THROWS(score(first_offset, &index, KMode::list, Semantics::set, ks), "ref_offsets[0]");
    Batch decreasing = good;
    decreasing.ret_offsets = {0, 1, 0};
    CHECK_THROWS(score(decreasing, &index, KMode::list, Semantics::set, ks), "ret_offsets[2]");
    Batch past_end = good;
    past_end.ref_offsets.back() = 7;  // more rows than there are
    CHECK_THROWS(score(past_end, &index, KMode::list, Semantics::set, ks), "ref_offsets[-1]");
    Batch mismatch = good;
    mismatch.ret_offsets.push_back(1);
    CHECK_THROWS(score(mismatch, &index, KMode::list, Semantics::set, ks), "questions");

    CHECK_THROWS(score(good, &index, KMode::list, Semantics::set, {2, 2}), "ks[1]");
    CHECK_THROWS(score(good, &index, KMode::list, Semantics::set, {0, 1}), "ks[0]");
    CHECK_THROWS(score(good, &index, KMode::list, Semantics::set, {}), "ks is empty");
    CHECK_THROWS(score(good, nullptr, KMode::automatic, Semantics::set, {}), "auto");
    CHECK_THROWS(score(good, &index, static_cast<KMode>(7), Semantics::set, ks), "k_mode");
    CHECK_THROWS(score(good, &index, KMode::list, static_cast<Semantics>(-1), ks), "semantics");
    CHECK_THROWS(score(good, &index, KMode::list, Semantics::set, ks, -2), "num_threads");

    CHECK_THROWS(make_index({{0, 0, 10}, {0, 5, 5}}), "chunks row 1");
    CHECK_THROWS(make_index({{0, -3, 10}}), "chunks row 0");

    // Rows past the deepest cut-off are still checked.
    Batch deep = good;
    deep.ret_doc.push_back(0);
    deep.ret_start.push_back(9);
    deep.ret_end.push_back(3);
    deep.ret_offsets.back() = 2;
    CHECK_THROWS(score(deep, &index, KMode::list, Semantics::set, {1}), "retrieved row 1");

    // With threads, the first bad row is the one reported, whichever worker met which first.
    std::vector<Question> many(5000, Question{{{0, 0, 10}}, {{0, 0, 10}}});
    many[4000].refs[0] = Span{0, 4, 4};
    many[100].refs[0] = Span{0, 9, 2};
    const Batch big(many);
    for (int threads : {1, 2, 4}) {
        CHECK_THROWS(score(big, &index, KMode::list, Semantics::set, ks, threads), "references row 100:");
    }
}

// ---- randomized comparison with a brute-force oracle over 64-position documents ----

uint64_t mask(int64_t start, int64_t end) {
    const uint64_t width = static_cast<uint64_t>(end - start);
    return (width >= 64 ? ~uint64_t{0} : ((uint64_t{1} << width) - 1)) << start;
}
int64_t popcount(uint64_t x) { return static_cast<int64_t>(__builtin_popcountll(x)); }

constexpr int kDocs = 3;

struct Oracle {
    int64_t n_evidence = 0;
    double precision_omega = 0, coverage = 0;
};

Oracle oracle_evidence(const Question& q, const std::vector<Span>& chunks, Semantics sem) {
    uint64_t evidence[kDocs] = {};
    int64_t ref_sum = 0;
    for (const Span& r : q.refs) {
        evidence[r.doc] |= mask(r.start, r.end);
        ref_sum += r.end - r.start;
    }
    uint64_t chosen[kDocs] = {};
    Oracle o;
    for (const Span& c : chunks) {
        bool hit = false;
        for (const Span& r : q.refs) {
            if (r.doc != c.doc) continue;
            hit = hit || (sem == Semantics::set ? std::max(r.start, c.start) < std::min(r.end, c.end)
                                                : std::max(r.start, c.start) <= std::min(r.end, c.end));
        }
        if (hit) {
            ++o.n_evidence;
            chosen[c.doc] |= mask(c.start, c.end);
        }
    }
    int64_t inter = 0, uni = 0, e_len = 0, weighted = 0;
    for (int d = 0; d < kDocs; ++d) {
        inter += popcount(chosen[d] & evidence[d]);
        uni += popcount(chosen[d] | evidence[d]);
        e_len += popcount(evidence[d]);
    }
    for (const Span& r : q.refs) weighted += popcount(mask(r.start, r.end) & chosen[r.doc]);
    o.precision_omega = ratio(inter, uni);
    o.coverage = sem == Semantics::set ? ratio(inter, e_len) : ratio(weighted, ref_sum);
    return o;
}

// recall, precision, iou of the first k rows, straight from the definitions in docs/metrics.md.
// The rank metrics (hit, mrr, map, ndcg, ndcg_graded) of docs/metrics.md at cut-off k (k < 0: every
// rank and the whole ideal list), by brute force on position masks: a row's gain is the popcount of
// its positions in the evidence, repeats are found by comparing with every earlier row, the ideal
// list is every chunk with a positive gain, sorted.
std::vector<double> oracle_rank(const Question& q, const std::vector<Span>& chunks, int64_t k) {
    uint64_t evidence[kDocs] = {};
    for (const Span& r : q.refs) evidence[r.doc] |= mask(r.start, r.end);
    const auto gain = [&](const Span& s) {
        return static_cast<int64_t>(__builtin_popcountll(evidence[s.doc] & mask(s.start, s.end)));
    };
    std::vector<int64_t> ideal;
    for (const Span& c : chunks) {
        if (gain(c) > 0) ideal.push_back(gain(c));
    }
    std::sort(ideal.begin(), ideal.end(), [](int64_t a, int64_t b) { return a > b; });
    std::vector<int64_t> gains;  // of the distinct rows, in rank order
    for (size_t i = 0; i < q.retrieved.size(); ++i) {
        bool seen = false;
        for (size_t j = 0; j < i; ++j) {
            const Span& a = q.retrieved[i];
            const Span& b = q.retrieved[j];
            seen = seen || (a.doc == b.doc && a.start == b.start && a.end == b.end);
        }
        if (!seen) gains.push_back(gain(q.retrieved[i]));
    }
    const auto depth_of = [k](size_t n) { return k < 0 ? n : std::min(n, static_cast<size_t>(k)); };
    double hit = 0, mrr = 0, ap = 0, dcg = 0, dcg_graded = 0, idcg = 0, idcg_graded = 0;
    int64_t hits = 0;
    for (size_t i = 1; i <= depth_of(gains.size()); ++i) {
        const int64_t g = gains[i - 1];
        if (g == 0) continue;
        ++hits;
        if (hit == 0) {
            hit = 1;
            mrr = 1.0 / static_cast<double>(i);
        }
        ap += static_cast<double>(hits) / static_cast<double>(i);
        dcg += W(static_cast<int64_t>(i));
        dcg_graded += static_cast<double>(g) * W(static_cast<int64_t>(i));
    }
    for (size_t j = 1; j <= depth_of(ideal.size()); ++j) {
        idcg += W(static_cast<int64_t>(j));
        idcg_graded += static_cast<double>(ideal[j - 1]) * W(static_cast<int64_t>(j));
    }
    return {hit, mrr, ideal.empty() ? 0.0 : ap / static_cast<double>(ideal.size()), idcg > 0 ? dcg / idcg : 0.0,
            idcg_graded > 0 ? dcg_graded / idcg_graded : 0.0};
}

void oracle_ranked(const Question& q, int64_t k, Semantics sem, double& recall, double& precision, double& iou) {
    uint64_t evidence[kDocs] = {}, retrieved[kDocs] = {}, intersections[kDocs] = {};
    int64_t ref_sum = 0, ret_sum = 0;
    for (const Span& r : q.refs) {
        evidence[r.doc] |= mask(r.start, r.end);
        ref_sum += r.end - r.start;
    }
    const size_t rows = std::min(q.retrieved.size(), static_cast<size_t>(k));
    for (size_t i = 0; i < rows; ++i) {
        const Span& c = q.retrieved[i];
        retrieved[c.doc] |= mask(c.start, c.end);
        ret_sum += c.end - c.start;
        for (const Span& r : q.refs) {
            if (r.doc == c.doc) intersections[c.doc] |= mask(r.start, r.end) & mask(c.start, c.end);
        }
    }
    int64_t inter = 0, e_len = 0, r_len = 0, uni = 0, n_union = 0, unused = 0;
    for (int d = 0; d < kDocs; ++d) {
        inter += popcount(evidence[d] & retrieved[d]);
        e_len += popcount(evidence[d]);
        r_len += popcount(retrieved[d]);
        uni += popcount(evidence[d] | retrieved[d]);
        n_union += popcount(intersections[d]);
    }
    for (const Span& r : q.refs) unused += (r.end - r.start) - popcount(mask(r.start, r.end) & intersections[r.doc]);
    if (sem == Semantics::set) {
        recall = ratio(inter, e_len);
        precision = r_len > 0 ? ratio(inter, r_len) : 0.0;
        iou = ratio(inter, uni);
    } else {
        recall = ratio(n_union, ref_sum);
        precision = ret_sum > 0 ? ratio(n_union, ret_sum) : 0.0;
        iou = ratio(n_union, ret_sum + unused);
    }
}

Span random_span(std::mt19937_64& rng, int max_len) {
    const int64_t doc = static_cast<int64_t>(rng() % kDocs);
    const int64_t len = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(max_len));
    const int64_t start = static_cast<int64_t>(rng() % static_cast<uint64_t>(64 - len + 1));
    return Span{doc, start, start + len};
}

void test_random_against_oracle() {
    std::mt19937_64 rng(12345);
    for (int round = 0; round < 60; ++round) {
        // A chunking: tilings of random width, sometimes with random extra (overlapping, nested,
        // duplicated) chunks, sometimes with gaps.
        std::vector<Span> chunks;
        for (int64_t d = 0; d < kDocs; ++d) {
            const int64_t width = 1 + static_cast<int64_t>(rng() % 20);
            for (const Span& s : tiling(d, 64, width)) {
                if (rng() % 8 != 0) chunks.push_back(s);  // drop some: gaps
            }
        }
        const int extra = static_cast<int>(rng() % 12);
        for (int i = 0; i < extra; ++i) chunks.push_back(random_span(rng, 64));
        if (!chunks.empty() && rng() % 3 == 0) chunks.push_back(chunks[rng() % chunks.size()]);
        const ChunkIndex index = make_index(chunks);

        std::vector<Question> questions(200);
        for (Question& q : questions) {
            const int n_refs = 1 + static_cast<int>(rng() % 4);
            for (int i = 0; i < n_refs; ++i) q.refs.push_back(random_span(rng, 20));
            // Mostly short lists; a few long ones (past the 64-row key packing and 24-row
            // insertion sort limits).
            const int n_ret = rng() % 12 == 0 ? 60 + static_cast<int>(rng() % 50) : static_cast<int>(rng() % 9);
            for (int i = 0; i < n_ret; ++i) {
                if (rng() % 4 != 0 && !chunks.empty()) {
                    q.retrieved.push_back(chunks[rng() % chunks.size()]);
                } else {
                    q.retrieved.push_back(random_span(rng, 30));
                }
            }
        }
        const Batch batch(questions);
        const std::vector<int64_t> ks{1, 2, 3, 5, 8, 20, 70};
        for (Semantics sem : {Semantics::set, Semantics::chroma}) {
            const Results list = score(batch, &index, KMode::list, sem, ks);
            const Results all = score(batch, &index, KMode::all, sem, {});
            const Results automatic = score(batch, &index, KMode::automatic, sem, {});
            for (size_t qi = 0; qi < questions.size(); ++qi) {
                const Question& q = questions[qi];
                const int64_t row = static_cast<int64_t>(qi);
                const Oracle o = oracle_evidence(q, chunks, sem);
                CHECK(list.n_evidence_chunks[qi] == o.n_evidence);
                CHECK_SAME(list.precision_omega[qi], o.precision_omega);
                CHECK_SAME(list.coverage[qi], o.coverage);
                double r, p, j;
                for (size_t c = 0; c < ks.size(); ++c) {
                    oracle_ranked(q, ks[c], sem, r, p, j);
                    CHECK_SAME(list.r(row, static_cast<int64_t>(c)), r);
                    CHECK_SAME(list.p(row, static_cast<int64_t>(c)), p);
                    CHECK_SAME(list.j(row, static_cast<int64_t>(c)), j);
                }
                oracle_ranked(q, static_cast<int64_t>(q.retrieved.size()), sem, r, p, j);
                CHECK_SAME(all.r(row, 0), r);
                CHECK_SAME(all.p(row, 0), p);
                CHECK_SAME(all.j(row, 0), j);
                oracle_ranked(q, o.n_evidence, sem, r, p, j);
                CHECK_SAME(automatic.r(row, 0), r);
                CHECK_SAME(automatic.p(row, 0), p);
                CHECK_SAME(automatic.j(row, 0), j);
            }
        }
        if (g_failures > 20) return;
    }
}

void test_chunk_index_queries() {
    // Nested and overlapping chunks, many per doc so the tree (not the sorted-ends shortcut and not
    // just the leaf scan) is exercised; compared with a linear scan for both comparison kinds.
    // Rounds 0 mod 3: nested (a few long chunks over many short ones); 1 mod 3: random short
    // chunks; 2 mod 3: chunks whose ends never decrease but whose sizes are wildly uneven (gaps,
    // overlaps, 1 to 300 wide), so the interpolation guess is off and the gallop has to recover.
    std::mt19937_64 rng(99);
    for (int round = 0; round < 30; ++round) {
        std::vector<Span> chunks;
        const int n = 1 + static_cast<int>(rng() % 700);
        if (round % 3 == 2) {
            for (int64_t doc = 0; doc < 3; ++doc) {
                int64_t start = static_cast<int64_t>(rng() % 5);
                int64_t end = start;
                for (int i = 0; i < n / 3 + 1; ++i) {
                    const int64_t width = 1 + static_cast<int64_t>(rng() % (rng() % 4 == 0 ? 300 : 8));
                    end = std::max(end, start + width);  // ends never decrease
                    chunks.push_back(Span{doc, start, end});
                    start += static_cast<int64_t>(rng() % 12);  // gaps, overlaps, equal starts
                    if (start >= end) end = start;
                }
            }
        } else {
            const bool nested = round % 3 == 0;
            for (int i = 0; i < n; ++i) {
                const int64_t doc = static_cast<int64_t>(rng() % 3);
                const int64_t len = 1 + static_cast<int64_t>(rng() % (nested && rng() % 10 == 0 ? 900 : 30));
                const int64_t start = static_cast<int64_t>(rng() % 1000);
                chunks.push_back(Span{doc, start, start + len});
            }
        }
        const ChunkIndex index = make_index(chunks);
        CHECK(index.size() == static_cast<int64_t>(chunks.size()));
        for (int query = 0; query < 300; ++query) {
            const int64_t doc = static_cast<int64_t>(rng() % 4);  // doc 3 is unknown
            const int64_t y = static_cast<int64_t>(rng() % (round % 3 == 2 ? 3000 : 1100));
            const int64_t x = y + static_cast<int64_t>(rng() % 60);
            for (bool inclusive : {false, true}) {
                std::vector<int64_t> got;
                int64_t previous = -1;
                bool increasing = true;
                auto emit = [&](int64_t row) {
                    increasing = increasing && row > previous;
                    previous = row;
                    got.push_back(row);
                };
                if (inclusive) {
                    index.query<true>(doc, x, y, emit);
                } else {
                    index.query<false>(doc, x, y, emit);
                }
                CHECK(increasing);
                int64_t expected = 0;
                int64_t sum_start = 0, sum_end = 0;
                for (const Span& c : chunks) {
                    if (c.doc != doc) continue;
                    if (inclusive ? (c.start <= x && c.end >= y) : (c.start < x && c.end > y)) {
                        ++expected;
                        sum_start += c.start;
                        sum_end += c.end;
                    }
                }
                int64_t got_start = 0, got_end = 0;
                for (int64_t row : got) {
                    got_start += index.start(row);
                    got_end += index.end(row);
                }
                CHECK(static_cast<int64_t>(got.size()) == expected);
                CHECK(got_start == sum_start);
                CHECK(got_end == sum_end);
                // Skipping the rows up to after_row emits exactly the later ones, in order.
                if (!got.empty()) {
                    const int64_t after = got[rng() % got.size()] - static_cast<int64_t>(rng() % 2);
                    std::vector<int64_t> later;
                    for (int64_t row : got) {
                        if (row > after) later.push_back(row);
                    }
                    std::vector<int64_t> skipped;
                    auto keep = [&](int64_t row) { skipped.push_back(row); };
                    if (inclusive) {
                        index.query<true>(doc, x, y, keep, after);
                    } else {
                        index.query<false>(doc, x, y, keep, after);
                    }
                    CHECK(skipped == later);
                }
            }
        }
    }
}

void test_far_coordinates() {
    // The same questions with doc ids spread far apart (not dense 0..n-1) and every position moved
    // up to the bound 2^32: metrics only depend on lengths and on which doc a span is in, so every
    // number must stay the same, while the index's doc lookup and the retrieved-row sort take their
    // general paths (ids past 2^26 do not fit the packed sort key).
    std::mt19937_64 rng(2024);
    std::vector<Span> chunks;
    for (int64_t d = 0; d < kDocs; ++d) {
        for (const Span& s : tiling(d, 64, 5 + d)) chunks.push_back(s);
        chunks.push_back(random_span(rng, 64));
    }
    std::vector<Question> questions(300);
    for (Question& q : questions) {
        const int n_refs = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < n_refs; ++i) q.refs.push_back(random_span(rng, 20));
        const int n_ret = static_cast<int>(rng() % 14);
        for (int i = 0; i < n_ret; ++i) q.retrieved.push_back(chunks[rng() % chunks.size()]);
    }
    const int64_t shift = kMaxPosition - 64;  // the last position, 2^32, is an end
    auto far = [shift](Span s) { return Span{(s.doc + 1) * (int64_t{1} << 40) + s.doc * 12345, s.start + shift, s.end + shift}; };
    std::vector<Span> far_chunks;
    for (const Span& s : chunks) far_chunks.push_back(far(s));
    std::vector<Question> far_questions = questions;
    for (Question& q : far_questions) {
        for (Span& s : q.refs) s = far(s);
        for (Span& s : q.retrieved) s = far(s);
    }
    const ChunkIndex index = make_index(chunks);
    const ChunkIndex far_index = make_index(far_chunks);
    const Batch batch(questions);
    const Batch far_batch(far_questions);
    for (Semantics sem : {Semantics::set, Semantics::chroma}) {
        const Results near_results = score(batch, &index, KMode::list, sem, {1, 4, 9, 30});
        const Results far_results = score(far_batch, &far_index, KMode::list, sem, {1, 4, 9, 30});
        CHECK(near_results.recall == far_results.recall);
        CHECK(near_results.precision == far_results.precision);
        CHECK(near_results.iou == far_results.iou);
        CHECK(near_results.precision_omega == far_results.precision_omega);
        CHECK(near_results.coverage == far_results.coverage);
        CHECK(near_results.n_evidence_chunks == far_results.n_evidence_chunks);
    }
}

void test_threads_agree() {
    // Same numbers with 1, 2 and 3 threads on a batch big enough to be split.
    std::mt19937_64 rng(7);
    std::vector<Span> chunks;
    for (int64_t d = 0; d < kDocs; ++d) {
        for (const Span& s : tiling(d, 64, 7)) chunks.push_back(s);
    }
    const ChunkIndex index = make_index(chunks);
    std::vector<Question> questions(9000);
    for (Question& q : questions) {
        const int n_refs = 1 + static_cast<int>(rng() % 3);
        for (int i = 0; i < n_refs; ++i) q.refs.push_back(random_span(rng, 15));
        for (int i = 0; i < 10; ++i) q.retrieved.push_back(chunks[rng() % chunks.size()]);
    }
    const Batch batch(questions);
    const Results one = score(batch, &index, KMode::list, Semantics::chroma, {1, 3, 5, 10}, 1);
    for (int threads : {2, 3, 0}) {
        const Results many = score(batch, &index, KMode::list, Semantics::chroma, {1, 3, 5, 10}, threads);
        CHECK(many.recall == one.recall);
        CHECK(many.precision == one.precision);
        CHECK(many.iou == one.iou);
        CHECK(many.precision_omega == one.precision_omega);
        CHECK(many.coverage == one.coverage);
        CHECK(many.n_evidence_chunks == one.n_evidence_chunks);
    }
    CHECK(effective_threads(100, 8) == 1);
    CHECK(effective_threads(5000, 3) == 3);
}


void test_parallel_for_blocks() {
    // Every item in exactly one block, blocks no longer than parallel_block(), taken by every
    // thread when there are enough of them, and the first exception rethrown after the join.
    CHECK(parallel_block(1000000, 2) == 7812);
    CHECK(parallel_block(9000, 2) == 256);
    CHECK(parallel_block(int64_t{1} << 30, 2) == 8192);
    for (const int64_t n : {int64_t{2048}, int64_t{2049}, int64_t{10007}, int64_t{100000}}) {
        for (const int threads : {2, 3, 8}) {
            std::vector<std::atomic<int>> visits(static_cast<size_t>(n));
            std::vector<std::atomic<int64_t>> per_thread(8);
            std::atomic<bool> too_long{false};
            parallel_for(n, threads, [&](int thread_id, int64_t begin, int64_t end, const std::atomic<bool>&) {
                if (end - begin > parallel_block(n, effective_threads(n, threads))) too_long = true;
                per_thread[static_cast<size_t>(thread_id)] += end - begin;
                for (int64_t i = begin; i < end; ++i) ++visits[static_cast<size_t>(i)];
            });
            bool once = true;
            for (const auto& v : visits) once = once && v.load() == 1;
            CHECK(once);
            CHECK(!too_long.load());
            int64_t total = 0;
            for (const auto& t : per_thread) total += t.load();
            CHECK(total == n);
        }
    }
    bool caught = false;
    try {
        parallel_for(100000, 2, [](int, int64_t begin, int64_t end, const std::atomic<bool>&) {
            if (begin <= 54321 && 54321 < end) throw std::invalid_argument("item 54321");
        });
    } catch (const std::invalid_argument& e) {
        caught = std::string(e.what()) == "item 54321";
    }
    CHECK(caught);
}

// ---- issue 8: bounds, exactness at the bounds, long lists ----

void test_bounds_rejected() {
    // Regression: with no upper bound, three references [0, 2^63 - 1) in docs 0, 1, 2 and two of
    // them retrieved summed past 2^64 (uint64 wrap) and gave recall 2.0; and [0, 2^53 + 1) against
    // [1, 2^53 + 1) rounded the counts and gave recall 1.0. Both now name the row and the bound.
    const int64_t huge = INT64_MAX;
    const Batch wrap({Question{{{0, 0, huge}, {1, 0, huge}, {2, 0, huge}}, {{0, 0, huge}, {1, 0, huge}}}});
    CHECK_THROWS(score(wrap, nullptr, KMode::all, Semantics::set, {}),
                 "references row 0: end 9223372036854775807 is past the bound 2**32 (4294967296)");
    const int64_t a = (int64_t{1} << 53) + 1;
    const Batch rounding({Question{{{0, 0, a}}, {{0, 1, a}}}});
    CHECK_THROWS(score(rounding, nullptr, KMode::all, Semantics::chroma, {}),
                 "references row 0: end 9007199254740993 is past the bound 2**32");
    // One past the bound, in each array; the retrieved row past the deepest cut-off too.
    const Batch ref_past({Question{{{0, 5, kMaxPosition + 1}}, {{0, 0, 10}}}});
    CHECK_THROWS(score(ref_past, nullptr, KMode::all, Semantics::set, {}), "references row 0: end 4294967297");
    const Batch ret_past({Question{{{0, 0, 10}}, {{0, 0, 10}, {0, 0, kMaxPosition + 1}}}});
    CHECK_THROWS(score(ret_past, nullptr, KMode::all, Semantics::set, {}), "retrieved row 1: end 4294967297");
    CHECK_THROWS(score(ret_past, nullptr, KMode::list, Semantics::set, {1}), "retrieved row 1: end 4294967297");
    CHECK_THROWS(make_index({{0, 0, 10}, {3, kMaxPosition, kMaxPosition + 7}}), "chunks row 1: end 4294967303");
    // A start at the bound is a span past it; a reversed span says so first.
    const Batch start_at({Question{{{0, kMaxPosition, kMaxPosition}}, {}}});
    CHECK_THROWS(score(start_at, nullptr, KMode::all, Semantics::set, {}), "is empty or reversed");
    // The end 2^32 itself is fine.
    const Batch at_bound({Question{{{0, kMaxPosition - 10, kMaxPosition}}, {{0, kMaxPosition - 5, kMaxPosition}}}});
    const Results res = score(at_bound, nullptr, KMode::all, Semantics::set, {});
    CHECK_SAME(res.r(0, 0), 0.5);
    CHECK_SAME(res.p(0, 0), 1.0);
}

void test_exact_at_the_bounds() {
    // The first example at the largest legal length: three references [0, 2^32) in docs
    // 0, 1, 2, two of them retrieved. I = 2 * 2^32, E_len = 3 * 2^32: recall exactly 2/3 (it was
    // 2.0 with a wrapped sum), precision 1, iou 2/3.
    const int64_t m = kMaxPosition;
    const Batch three({Question{{{0, 0, m}, {1, 0, m}, {2, 0, m}}, {{0, 0, m}, {1, 0, m}}}});
    for (Semantics sem : {Semantics::set, Semantics::chroma}) {
        const Results res = score(three, nullptr, KMode::all, sem, {});
        CHECK_SAME(res.r(0, 0), 2.0 / 3.0);
        CHECK_SAME(res.p(0, 0), 1.0);
        CHECK_SAME(res.j(0, 0), 2.0 / 3.0);
    }

    // The largest counts the bounds allow: 2^20 references [0, 2^32) in docs 0..2^20-1 (E_len =
    // ref_sum = 2^52), all but the last retrieved, then the last twice (2^20 + 1 rows, k = 2^20).
    // @2^20 - 1: I = (2^20 - 1) 2^32: recall = precision-denominator ratio (2^20 - 1) / 2^20,
    // precision 1, iou (2^20 - 1) / 2^20. @2^20: everything: 1, 1, 1. The extra row is not scored.
    // Chunks = the references: C* = E, precision_omega 1, coverage 1, 2^20 evidence chunks.
    {
        const int64_t n = kMaxRowsPerQuestion;
        Batch batch({Question{}});
        for (int64_t d = 0; d < n; ++d) {
            batch.ref_doc.push_back(d);
            batch.ref_start.push_back(0);
            batch.ref_end.push_back(m);
            batch.ret_doc.push_back(n - 1 - d);  // ranked in reverse doc order
            batch.ret_start.push_back(0);
            batch.ret_end.push_back(m);
        }
        batch.ret_doc.push_back(0);
        batch.ret_start.push_back(0);
        batch.ret_end.push_back(m);
        batch.ref_offsets = {0, n};
        batch.ret_offsets = {0, n + 1};
        const ChunkIndex index(SpanView{batch.ref_doc.data(), batch.ref_start.data(), batch.ref_end.data(), n});
        for (Semantics sem : {Semantics::set, Semantics::chroma}) {
            const Results res = score(batch, &index, KMode::list, sem, {n - 1, n});
            CHECK_SAME(res.r(0, 0), ratio(n - 1, n));
            CHECK_SAME(res.p(0, 0), 1.0);
            CHECK_SAME(res.j(0, 0), ratio(n - 1, n));
            CHECK_SAME(res.r(0, 1), 1.0);
            CHECK_SAME(res.p(0, 1), 1.0);
            CHECK_SAME(res.j(0, 1), 1.0);
            CHECK(res.n_evidence_chunks[0] == n);
            CHECK_SAME(res.precision_omega[0], 1.0);
            CHECK_SAME(res.coverage[0], 1.0);
        }
        // k_mode all scores 2^20 + 1 rows: one too many.
        CHECK_THROWS(score(batch, &index, KMode::all, Semantics::set, {}),
                     "retrieved: question 0 scores 1048577 rows, more than 2**20 (1048576) per question");
        CHECK_THROWS(score(batch, &index, KMode::list, Semantics::set, {n + 1}), "pass a smaller k");
        // auto: min(2^20 evidence chunks, 2^20 + 1 rows) = 2^20: fine, and the whole union.
        const Results automatic = score(batch, &index, KMode::automatic, Semantics::set, {});
        CHECK_SAME(automatic.r(0, 0), 1.0);
        // One more reference row: too many.
        batch.ref_doc.push_back(0);
        batch.ref_start.push_back(0);
        batch.ref_end.push_back(1);
        batch.ref_offsets = {0, n + 1};
        CHECK_THROWS(score(batch, &index, KMode::list, Semantics::set, {1}),
                     "references: question 0 has 1048577 rows, more than 2**20 (1048576) per question");
    }

    // The deepest nesting: 2^20 copies of [0, 2^32) in one doc, so one segment of mult 2^20 and
    // ref_sum = 2^52; retrieved [0, 2^32) once: I = 2^32, I_w = 2^52.
    // set: recall 1, precision 1, iou 1. chroma: recall I / ref_sum = 2^-20, precision 1,
    // iou = I / (ret_sum + ref_sum - I_w) = 2^32 / 2^32 = 1.
    {
        const int64_t n = kMaxRowsPerQuestion;
        Batch batch({Question{}});
        batch.ref_doc.assign(static_cast<size_t>(n), 7);
        batch.ref_start.assign(static_cast<size_t>(n), 0);
        batch.ref_end.assign(static_cast<size_t>(n), m);
        batch.ret_doc = {7};
        batch.ret_start = {0};
        batch.ret_end = {m};
        batch.ref_offsets = {0, n};
        batch.ret_offsets = {0, 1};
        const ChunkIndex index = make_index({{7, 0, m}});
        const Results set = score(batch, &index, KMode::all, Semantics::set, {});
        CHECK_SAME(set.r(0, 0), 1.0);
        CHECK_SAME(set.j(0, 0), 1.0);
        const Results chroma = score(batch, &index, KMode::all, Semantics::chroma, {});
        CHECK_SAME(chroma.r(0, 0), std::ldexp(1.0, -20));
        CHECK_SAME(chroma.p(0, 0), 1.0);
        CHECK_SAME(chroma.j(0, 0), 1.0);
        CHECK_SAME(chroma.coverage[0], 1.0);
    }
}

void test_auto_mode_row_bound() {
    // auto mode scores min(n_evidence_chunks, len) rows, known only while scoring: 2^20 + 1 unit
    // chunks under one reference and as many retrieved rows must be refused there, in question
    // order (question 1; question 0 is fine).
    const int64_t n = kMaxRowsPerQuestion + 1;
    Batch batch({Question{{{0, 0, 5}}, {{0, 0, 5}}}, Question{}});
    std::vector<Span> chunks;
    for (int64_t i = 0; i < n; ++i) {
        chunks.push_back(Span{1, i, i + 1});
        batch.ret_doc.push_back(1);
        batch.ret_start.push_back(i);
        batch.ret_end.push_back(i + 1);
    }
    batch.ref_doc.push_back(1);
    batch.ref_start.push_back(0);
    batch.ref_end.push_back(n);
    batch.ref_offsets = {0, 1, 2};
    batch.ret_offsets = {0, 1, 1 + n};
    const ChunkIndex index = make_index(chunks);
    for (Semantics sem : {Semantics::set, Semantics::chroma}) {
        CHECK_THROWS(score(batch, &index, KMode::automatic, sem, {}),
                     "retrieved: question 1 scores 1048577 rows, more than 2**20 (1048576)");
    }
    const Results capped = score(batch, &index, KMode::list, Semantics::set, {n - 1});
    CHECK_SAME(capped.r(1, 0), ratio(n - 1, n));
    CHECK(capped.n_evidence_chunks[1] == n);
}

// An independent count for long lists over short documents: the smallest rank covering each
// position, then per-cut-off counts from it (no clusters, no sweep, no merge).
void oracle_long_list(const Question& q, int64_t n_docs, int64_t doc_length, const std::vector<int64_t>& ks,
                      Semantics sem, std::vector<double>& recall, std::vector<double>& precision,
                      std::vector<double>& iou) {
    std::vector<int64_t> min_rank(static_cast<size_t>(n_docs * doc_length), INT64_MAX);
    std::vector<int64_t> mult(static_cast<size_t>(n_docs * doc_length), 0);
    int64_t ref_sum = 0;
    for (const Span& r : q.refs) {
        ref_sum += r.end - r.start;
        for (int64_t p = r.start; p < r.end; ++p) ++mult[static_cast<size_t>(r.doc * doc_length + p)];
    }
    std::vector<int64_t> ret_prefix(q.retrieved.size() + 1, 0);
    for (size_t rank = 0; rank < q.retrieved.size(); ++rank) {
        const Span& s = q.retrieved[rank];
        ret_prefix[rank + 1] = ret_prefix[rank] + (s.end - s.start);
        for (int64_t p = s.start; p < s.end; ++p) {
            int64_t& m = min_rank[static_cast<size_t>(s.doc * doc_length + p)];
            m = std::min(m, static_cast<int64_t>(rank));
        }
    }
    int64_t e_len = 0;
    for (int64_t m : mult) e_len += m > 0 ? 1 : 0;
    recall.clear();
    precision.clear();
    iou.clear();
    for (int64_t k : ks) {
        int64_t inter = 0, weighted = 0, r_len = 0;
        for (size_t p = 0; p < min_rank.size(); ++p) {
            if (min_rank[p] >= k) continue;
            ++r_len;
            inter += mult[p] > 0 ? 1 : 0;
            weighted += mult[p];
        }
        const int64_t ret_sum = ret_prefix[static_cast<size_t>(std::min<int64_t>(k, static_cast<int64_t>(q.retrieved.size())))];
        if (sem == Semantics::set) {
            recall.push_back(ratio(inter, e_len));
            precision.push_back(r_len > 0 ? ratio(inter, r_len) : 0.0);
            iou.push_back(ratio(inter, e_len + r_len - inter));
        } else {
            recall.push_back(ratio(inter, ref_sum));
            precision.push_back(ret_sum > 0 ? ratio(inter, ret_sum) : 0.0);
            iou.push_back(ratio(inter, ret_sum + (ref_sum - weighted)));
        }
    }
}

void test_long_lists_against_oracle() {
    // Lists of 17 to 5000 rows over short documents, so clusters of every size (the rank-order
    // merge up to 16 rows, the sweep above), heavy duplication, nesting, equal starts, rows that
    // touch, and doc ids that do and do not fit the packed sort key at each rank width. Every
    // fifth round spreads the question over 12 documents (more than 8: the binary-search lookups).
    std::mt19937_64 rng(8);
    const std::vector<int64_t> ks{1, 2, 16, 17, 100, 1000, 5000};
    for (int round = 0; round < 40; ++round) {
        const int64_t doc_length = 50 + static_cast<int64_t>(rng() % 400);
        const int64_t n_docs = round % 5 == 1 ? 12 : kDocs;
        Question q;
        const int n_refs = 1 + static_cast<int>(rng() % 40);
        for (int i = 0; i < n_refs; ++i) {
            const int64_t doc = static_cast<int64_t>(rng() % static_cast<uint64_t>(n_docs));
            const int64_t len = 1 + static_cast<int64_t>(rng() % 30);
            const int64_t start = static_cast<int64_t>(rng() % static_cast<uint64_t>(doc_length - len + 1));
            q.refs.push_back(Span{doc, start, start + len});
        }
        const int n_ret = 17 + static_cast<int>(rng() % (round % 4 == 0 ? 5000 : 300));
        const int64_t max_len = round % 3 == 0 ? doc_length : 1 + static_cast<int64_t>(rng() % 20);
        for (int i = 0; i < n_ret; ++i) {
            const int64_t doc = static_cast<int64_t>(rng() % static_cast<uint64_t>(n_docs));
            const int64_t len = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(max_len));
            const int64_t start = static_cast<int64_t>(rng() % static_cast<uint64_t>(doc_length - len + 1));
            q.retrieved.push_back(Span{doc, start, start + len});
        }
        // Doc ids moved to a base where the packed key is just wide enough or just too narrow.
        const int rank_bits = n_ret <= 64 ? 6 : (n_ret <= 512 ? 9 : 13);
        const int64_t limit = int64_t{1} << (32 - rank_bits);
        const int64_t bases[] = {0, limit - n_docs, limit - 1, -5};
        const int64_t base = bases[round % 4];
        Question moved = q;
        for (Span& s : moved.refs) s.doc += base;
        for (Span& s : moved.retrieved) s.doc += base;
        const Batch batch({moved});
        for (Semantics sem : {Semantics::set, Semantics::chroma}) {
            std::vector<double> r, p, j;
            oracle_long_list(q, n_docs, doc_length, ks, sem, r, p, j);
            const Results res = score(batch, nullptr, KMode::list, sem, ks);
            for (size_t c = 0; c < ks.size(); ++c) {
                CHECK_SAME(res.r(0, static_cast<int64_t>(c)), r[c]);
                CHECK_SAME(res.p(0, static_cast<int64_t>(c)), p[c]);
                CHECK_SAME(res.j(0, static_cast<int64_t>(c)), j[c]);
            }
        }
        if (g_failures > 20) return;
    }
}

void test_one_cluster_right_to_left() {
    // Regression for the quadratic rank-order merge: 2^20 rows (the most a question scores) in one
    // cluster, ranked right to left: rank r is [N - 1 - r, N + 1 - r), so each row overlaps the
    // next and every insert landed at the front. This took minutes; it must now finish at once.
    // Reference [0, N). First k rows: union [N - k, N + 1), R_len k + 1, I = k, ret_sum 2k.
    // set: recall k/N, precision k/(k + 1), iou k/(N + k + 1 - k) = k/(N + 1).
    // chroma: recall k/N, precision k/2k, iou k/(2k + N - k) = k/(N + k).
    const int64_t n = kMaxRowsPerQuestion;
    Batch batch({Question{{{0, 0, n}}, {}}});
    for (int64_t r = 0; r < n; ++r) {
        batch.ret_doc.push_back(0);
        batch.ret_start.push_back(n - 1 - r);
        batch.ret_end.push_back(n + 1 - r);
    }
    batch.ret_offsets = {0, n};
    const std::vector<int64_t> ks{1, 1000, n};
    const Results set = score(batch, nullptr, KMode::list, Semantics::set, ks);
    const Results chroma = score(batch, nullptr, KMode::list, Semantics::chroma, ks);
    for (size_t c = 0; c < ks.size(); ++c) {
        const int64_t k = ks[c];
        const auto col = static_cast<int64_t>(c);
        CHECK_SAME(set.r(0, col), ratio(k, n));
        CHECK_SAME(set.p(0, col), ratio(k, k + 1));
        CHECK_SAME(set.j(0, col), ratio(k, n + 1));
        CHECK_SAME(chroma.r(0, col), ratio(k, n));
        CHECK_SAME(chroma.p(0, col), 0.5);
        CHECK_SAME(chroma.j(0, col), ratio(k, n + k));
    }
}


void test_many_references_under_many_chunks() {
    // Regression for output-sensitive quadratic time in the evidence pass: K copies of one chunk
    // [0, 2R) over R disjoint references [2i, 2i + 1) made every reference's query emit all K
    // copies again (K * R = 2^32 emits). Every copy and nothing else is evidence; C* = [0, 2R):
    // cs_len 2R, cs_in_E = E_len = R: precision_omega R / (R + 2R - R) = 1/2, coverage 1.
    // With the unit chunks [2i, 2i + 1) as well, ends go down in start order (the tree path):
    // K + R evidence chunks, the same C*.
    const int64_t r = 1 << 16;
    const int64_t k = 1 << 16;
    Batch batch({Question{}});
    for (int64_t i = 0; i < r; ++i) {
        batch.ref_doc.push_back(0);
        batch.ref_start.push_back(2 * i);
        batch.ref_end.push_back(2 * i + 1);
    }
    batch.ref_offsets = {0, r};
    std::vector<Span> copies(static_cast<size_t>(k), Span{0, 0, 2 * r});
    std::vector<Span> with_units = copies;
    for (int64_t i = 0; i < r; ++i) with_units.push_back(Span{0, 2 * i, 2 * i + 1});
    for (Semantics sem : {Semantics::set, Semantics::chroma}) {
        const ChunkIndex flat = make_index(copies);
        const Results a = score(batch, &flat, KMode::all, sem, {});
        CHECK(a.n_evidence_chunks[0] == k);
        CHECK_SAME(a.precision_omega[0], 0.5);
        CHECK_SAME(a.coverage[0], 1.0);
        const ChunkIndex nested = make_index(with_units);
        const Results b = score(batch, &nested, KMode::all, sem, {});
        CHECK(b.n_evidence_chunks[0] == k + r);
        CHECK_SAME(b.precision_omega[0], 0.5);
        CHECK_SAME(b.coverage[0], 1.0);
    }
}


void test_empty_chunking_and_misuse() {
    // An empty chunking: no evidence. precision_omega = 0/(E_len + 0 - 0) = 0, coverage 0, and
    // auto mode scores min(0, len) = 0 rows: recall 0, precision 0 (nothing retrieved), iou 0.
    const ChunkIndex empty = make_index({});
    CHECK(empty.size() == 0);
    CHECK(empty.n_docs() == 0);
    const Batch batch({Question{{{4, 0, 10}}, {{4, 0, 10}}}});
    for (Semantics sem : {Semantics::set, Semantics::chroma}) {
        const Results res = score(batch, &empty, KMode::automatic, sem, {});
        CHECK(res.n_evidence_chunks[0] == 0);
        CHECK_SAME(res.precision_omega[0], 0.0);
        CHECK_SAME(res.coverage[0], 0.0);
        CHECK_SAME(res.r(0, 0), 0.0);
        CHECK_SAME(res.p(0, 0), 0.0);
        CHECK_SAME(res.j(0, 0), 0.0);
    }
    // Sparse doc ids (binary search) and a doc between two known ones: no evidence there.
    // Doc 50's chunk [0,10) is the evidence of reference doc 50 [2,4): 1 chunk, C* = [0,10),
    // precision_omega 2/10; doc 20 lies between 10 and 50 and has no chunks.
    const ChunkIndex sparse = make_index({{10, 0, 10}, {50, 0, 10}, {900000, 0, 10}});
    const Batch between({Question{{{50, 2, 4}}, {}}, Question{{{20, 2, 4}}, {}}});
    const Results res = score(between, &sparse, KMode::all, Semantics::set, {});
    CHECK(res.n_evidence_chunks[0] == 1);
    CHECK_SAME(res.precision_omega[0], ratio(2, 10));
    CHECK(res.n_evidence_chunks[1] == 0);
    CHECK_SAME(res.coverage[1], 0.0);

    // The C++ API called without the Python layer's checks.
    const std::vector<int64_t> ks{1};
    MetricsOptions options;
    options.ks = ks.data();
    options.n_ks = 1;
    RaggedSpanView no_offsets{};
    no_offsets.n_groups = 0;
    const RaggedSpanView good = batch.references();
    CHECK_THROWS(validate_metrics_inputs(no_offsets, good, nullptr, options), "ref_offsets must have");
    CHECK_THROWS(validate_metrics_inputs(good, no_offsets, nullptr, options), "ret_offsets must have");
    RaggedSpanView negative = good;
    negative.spans.size = -1;
    CHECK_THROWS(validate_metrics_inputs(negative, good, nullptr, options), "negative size");
    CHECK_THROWS(ChunkIndex(SpanView{nullptr, nullptr, nullptr, -3}), "chunks has a negative size");
    RaggedSpanView null_offsets = good;
    null_offsets.offsets = nullptr;
    CHECK_THROWS(validate_metrics_inputs(null_offsets, good, nullptr, options), "ref_offsets must have");
    CHECK_THROWS(validate_metrics_inputs(good, null_offsets, nullptr, options), "ret_offsets must have");
    CHECK_THROWS(validate_metrics_inputs(good, negative, nullptr, options), "negative size");
    MetricsOptions bad = options;
    bad.k_mode = static_cast<KMode>(-1);
    CHECK_THROWS(validate_metrics_inputs(good, good, nullptr, bad), "k_mode is -1");
    bad = options;
    bad.semantics = static_cast<Semantics>(2);
    CHECK_THROWS(validate_metrics_inputs(good, good, nullptr, bad), "semantics is 2");
    bad = options;
    bad.ks = nullptr;
    CHECK_THROWS(validate_metrics_inputs(good, good, nullptr, bad), "ks is empty");

    // A bad row in a list longer than 64 rows (the wider packed key), and past the deepest
    // cut-off, in both semantics.
    Question long_list{{{0, 0, 10}}, std::vector<Span>(100, Span{0, 0, 10})};
    long_list.retrieved[70] = Span{0, 3, 3};
    const Batch long_batch({long_list});
    for (Semantics sem : {Semantics::set, Semantics::chroma}) {
        CHECK_THROWS(score(long_batch, nullptr, KMode::all, sem, {}), "retrieved row 70: [start, end) = [3, 3)");
        CHECK_THROWS(score(long_batch, nullptr, KMode::list, sem, {5}), "retrieved row 70");
    }
}


// ---- a differential fuzzer: `chunkeval_test_core --fuzz N [SEED]` ----
//
// N random batches, each compared number for number with the bitmask oracles above: a random
// chunking (tilings with gaps, nested and duplicated chunks), 1 to 8 questions with 1 to 6
// references and 0 to 20 retrieved rows (1 batch in 16: 60 to 110, past the packed-key and
// small-cluster limits), random semantics, k mode and cut-offs, and then every position moved by
// the same random shift up to the bound 2^32 and every doc id mapped to a dense, sparse, packed-key
// edge or negative id. Metrics depend only on lengths and on which doc a span is in, so the oracle
// on the unmoved batch is the expected answer. Exit status: 0 when every number matched.
int fuzz(int64_t batches, uint64_t seed) {
    std::mt19937_64 rng(seed);
    int64_t compared = 0;
    for (int64_t b = 0; b < batches && g_failures == 0; ++b) {
        std::vector<Span> chunks;
        for (int64_t d = 0; d < kDocs; ++d) {
            const int64_t width = 1 + static_cast<int64_t>(rng() % 20);
            for (const Span& c : tiling(d, 64, width)) {
                if (rng() % 8 != 0) chunks.push_back(c);
            }
        }
        const int extra = static_cast<int>(rng() % 6);
        for (int i = 0; i < extra; ++i) chunks.push_back(random_span(rng, 64));
        if (!chunks.empty() && rng() % 3 == 0) chunks.push_back(chunks[rng() % chunks.size()]);

        std::vector<Question> questions(1 + rng() % 8);
        for (Question& q : questions) {
            const int n_refs = 1 + static_cast<int>(rng() % 6);
            for (int i = 0; i < n_refs; ++i) q.refs.push_back(random_span(rng, 20));
            const int n_ret = rng() % 16 == 0 ? 60 + static_cast<int>(rng() % 50) : static_cast<int>(rng() % 21);
            for (int i = 0; i < n_ret; ++i) {
                q.retrieved.push_back(rng() % 4 != 0 && !chunks.empty() ? chunks[rng() % chunks.size()]
                                                                          : random_span(rng, 30));
            }
        }
        const int64_t shift = static_cast<int64_t>(rng() % static_cast<uint64_t>(kMaxPosition - 63));
        int64_t doc_ids[kDocs];
        switch (rng() % 4) {
            case 0: for (int64_t d = 0; d < kDocs; ++d) doc_ids[d] = d; break;
            case 1: for (int64_t d = 0; d < kDocs; ++d) doc_ids[d] = d * 1000003 + 7; break;
            case 2: for (int64_t d = 0; d < kDocs; ++d) doc_ids[d] = (int64_t{1} << 26) - 2 + d; break;
            default: for (int64_t d = 0; d < kDocs; ++d) doc_ids[d] = -1 - d * (int64_t{1} << 40); break;
        }
        auto move = [&](Span s) { return Span{doc_ids[s.doc], s.start + shift, s.end + shift}; };
        std::vector<Span> moved_chunks;
        for (const Span& c : chunks) moved_chunks.push_back(move(c));
        std::vector<Question> moved = questions;
        for (Question& q : moved) {
            for (Span& r : q.refs) r = move(r);
            for (Span& r : q.retrieved) r = move(r);
        }
        const ChunkIndex index = make_index(moved_chunks);
        const Batch batch(moved);
        const Semantics sem = rng() % 2 == 0 ? Semantics::set : Semantics::chroma;
        const KMode mode = static_cast<KMode>(rng() % 3);
        std::vector<int64_t> ks;
        for (int64_t k = 1 + static_cast<int64_t>(rng() % 3); k <= 120; k += 1 + static_cast<int64_t>(rng() % 25)) {
            ks.push_back(k);
        }
        const Results res = score(batch, &index, mode, sem, ks, 1 + static_cast<int>(rng() % 2));
        const RankResults ranks = score_ranked(batch, &index, mode, sem, ks);
        for (size_t qi = 0; qi < questions.size(); ++qi) {
            const Question& q = questions[qi];
            const auto row = static_cast<int64_t>(qi);
            const Oracle o = oracle_evidence(q, chunks, sem);
            CHECK(res.n_evidence_chunks[qi] == o.n_evidence);
            CHECK_SAME(res.precision_omega[qi], o.precision_omega);
            CHECK_SAME(res.coverage[qi], o.coverage);
            for (int64_t c = 0; c < res.n_columns; ++c) {
                const int64_t k = mode == KMode::list   ? ks[static_cast<size_t>(c)]
                                  : mode == KMode::all  ? static_cast<int64_t>(q.retrieved.size())
                                                        : o.n_evidence;
                double r, p, j;
                oracle_ranked(q, k, sem, r, p, j);
                CHECK_SAME(res.r(row, c), r);
                CHECK_SAME(res.p(row, c), p);
                CHECK_SAME(res.j(row, c), j);
                ++compared;
                const std::vector<double> want = oracle_rank(q, chunks, mode == KMode::all ? -1 : k);
                for (int m = 0; m < kRankMetrics; ++m) CHECK_SAME(ranks.at(m, row, c), want[static_cast<size_t>(m)]);
            }
        }
        if (g_failures != 0) std::printf("fuzz: batch %" PRId64 " (seed %" PRIu64 ") differs\n", b, seed);
    }
    std::printf("fuzz: %" PRId64 " batches, %" PRId64 " question cut-offs compared, %d failures\n", batches, compared,
                g_failures);
    return g_failures == 0 ? 0 : 1;
}

}  // namespace

void test_rank_worked_example() {
    // docs/metrics.md's example with a repeat: chunks [0,10) [10,20) ..., reference [15,25),
    // retrieved [20,30) [20,30) [50,60) [10,20). The repeat takes no rank: ranks are [20,30)
    // (gain 5), [50,60) (0), [10,20) (5). Relevant chunks of C: [10,20) and [20,30), ideal gains 5, 5.
    const ChunkIndex index = make_index(tiling(0, 100, 10));
    const Batch batch({Question{{{0, 15, 25}}, {{0, 20, 30}, {0, 20, 30}, {0, 50, 60}, {0, 10, 20}}}});
    const RankResults res = score_ranked(batch, &index, KMode::list, Semantics::set, {1, 2, 3});
    for (int64_t c = 0; c < 3; ++c) {
        CHECK_SAME(res.at(kHit, 0, c), 1.0);
        CHECK_SAME(res.at(kMrr, 0, c), 1.0);
    }
    CHECK_SAME(res.at(kMap, 0, 0), (0.0 + ratio(1, 1)) / 2.0);
    CHECK_SAME(res.at(kMap, 0, 1), (0.0 + ratio(1, 1)) / 2.0);
    CHECK_SAME(res.at(kMap, 0, 2), (0.0 + ratio(1, 1) + ratio(2, 3)) / 2.0);
    CHECK_SAME(res.at(kNdcg, 0, 0), (0.0 + W(1)) / (0.0 + W(1)));
    CHECK_SAME(res.at(kNdcg, 0, 1), (0.0 + W(1)) / (0.0 + W(1) + W(2)));
    CHECK_SAME(res.at(kNdcg, 0, 2), (0.0 + W(1) + W(3)) / (0.0 + W(1) + W(2)));
    CHECK_SAME(res.at(kGraded, 0, 2), (0.0 + 5.0 * W(1) + 5.0 * W(3)) / (0.0 + 5.0 * W(1) + 5.0 * W(2)));
}

void test_rank_graded_and_modes() {
    // Reference [15,28): chunk [10,20) has gain 5, [20,30) gain 8; the ideal order is 8, 5.
    const ChunkIndex index = make_index(tiling(0, 100, 10));
    const Batch batch({Question{{{0, 15, 28}}, {{0, 10, 20}, {0, 20, 30}}}});
    const RankResults two = score_ranked(batch, &index, KMode::list, Semantics::set, {2});
    CHECK_SAME(two.at(kNdcg, 0, 0), 1.0);
    CHECK_SAME(two.at(kGraded, 0, 0), (0.0 + 5.0 * W(1) + 8.0 * W(2)) / (0.0 + 8.0 * W(1) + 5.0 * W(2)));
    // @1 reads only the first ideal gain (8): the partial sort must still put the largest first.
    const RankResults one = score_ranked(batch, &index, KMode::list, Semantics::set, {1});
    CHECK_SAME(one.at(kGraded, 0, 0), (0.0 + 5.0 * W(1)) / (0.0 + 8.0 * W(1)));
    // "all" mode: the ideal list is every relevant chunk, however short the retrieved list.
    const Batch short_list({Question{{{0, 15, 28}}, {{0, 20, 30}}}});
    const RankResults all = score_ranked(short_list, &index, KMode::all, Semantics::set, {});
    CHECK_SAME(all.at(kNdcg, 0, 0), (0.0 + W(1)) / (0.0 + W(1) + W(2)));
    CHECK_SAME(all.at(kMap, 0, 0), (0.0 + ratio(1, 1)) / 2.0);
    // "auto": the cut-off is n_evidence_chunks (2) ranks.
    const Batch long_list({Question{{{0, 15, 28}}, {{0, 50, 60}, {0, 60, 70}, {0, 20, 30}}}});
    const RankResults automatic = score_ranked(long_list, &index, KMode::automatic, Semantics::set, {});
    CHECK_SAME(automatic.at(kHit, 0, 0), 0.0);
    CHECK_SAME(automatic.at(kMrr, 0, 0), 0.0);
    CHECK_SAME(automatic.at(kNdcg, 0, 0), 0.0);
    // A cut-off past the list keeps growing the ideal DCG (trec_eval's ndcg_cut).
    const RankResults deep = score_ranked(short_list, &index, KMode::list, Semantics::set, {1, 5});
    CHECK_SAME(deep.at(kNdcg, 0, 0), (0.0 + W(1)) / (0.0 + W(1)));
    CHECK_SAME(deep.at(kNdcg, 0, 1), (0.0 + W(1)) / (0.0 + W(1) + W(2)));
}

void test_rank_chroma_and_repeats() {
    // Chroma counts the touching chunks [0,10) and [20,30) as evidence chunks of reference [10,20),
    // but relevance needs a positive overlap: only [10,20) is relevant (n_rel = 1).
    const ChunkIndex index = make_index(tiling(0, 100, 10));
    const Batch touching({Question{{{0, 10, 20}}, {{0, 0, 10}, {0, 10, 20}}}});
    const RankResults chroma = score_ranked(touching, &index, KMode::list, Semantics::chroma, {2});
    CHECK_SAME(chroma.at(kHit, 0, 0), 1.0);
    CHECK_SAME(chroma.at(kMrr, 0, 0), 0.5);
    CHECK_SAME(chroma.at(kMap, 0, 0), (0.0 + ratio(1, 2)) / 1.0);
    CHECK_SAME(chroma.at(kNdcg, 0, 0), (0.0 + W(2)) / (0.0 + W(1)));
    // k = 2 over [a, a, b]: the repeat frees a rank, so b (the third row) takes rank 2.
    const Batch repeats({Question{{{0, 15, 25}}, {{0, 10, 20}, {0, 10, 20}, {0, 20, 30}}}});
    const RankResults two = score_ranked(repeats, &index, KMode::list, Semantics::set, {2});
    CHECK_SAME(two.at(kMap, 0, 0), (0.0 + ratio(1, 1) + ratio(2, 2)) / 2.0);
    CHECK_SAME(two.at(kNdcg, 0, 0), 1.0);
    // More than 32 distinct rows with repeats spread through them (the sort-based path): 40 rows,
    // each chunk of [0,400) twice in a row; the reference [15,25) makes ranks 2 and 3 relevant.
    const ChunkIndex wide = make_index(tiling(0, 400, 10));
    Question many{{{0, 15, 25}}, {}};
    for (int64_t c = 0; c < 40; ++c) {
        many.retrieved.push_back(Span{0, 10 * c, 10 * c + 10});
        many.retrieved.push_back(Span{0, 10 * c, 10 * c + 10});
    }
    const RankResults sorted = score_ranked(Batch({many}), &wide, KMode::list, Semantics::set, {3, 40});
    CHECK_SAME(sorted.at(kMrr, 0, 0), 0.5);
    CHECK_SAME(sorted.at(kMap, 0, 1), (0.0 + ratio(1, 2) + ratio(2, 3)) / 2.0);
    CHECK_SAME(sorted.at(kNdcg, 0, 1), (0.0 + W(2) + W(3)) / (0.0 + W(1) + W(2)));
    // Without chunks there is no ideal list.
    MetricsOptions options;
    const int64_t ks[] = {1};
    options.ks = ks;
    options.n_ks = 1;
    options.ranked = true;
    std::vector<double> cells(8);
    std::vector<int64_t> counts(1);
    std::vector<double> rank(5);
    MetricsOutputs out{cells.data(), cells.data() + 1, cells.data() + 2, cells.data() + 3,
                       cells.data() + 4, counts.data(), rank.data()};
    CHECK_THROWS(span_metrics(repeats.references(), repeats.retrieved(), nullptr, options, out),
                 "ranked=True needs the chunking");
}

// The pruned Batcher networks: their sizes, and by the 0-1 principle (a comparator network sorts
// every input if it sorts every input of 0s and 1s) that each one sorts; then random keys with
// duplicates against std::sort (the exchanges only swap, so the output is a permutation).
void test_sorting_networks() {
    CHECK(Network<2>::kSize == 1);
    CHECK(Network<4>::kSize == 5);
    CHECK(Network<8>::kSize == 19);
    CHECK(Network<10>::kSize == 32);
    CHECK(Network<16>::kSize == 63);
    for (size_t n = 0; n <= 16; ++n) {
        int64_t unsorted = 0;
        for (uint32_t bits = 0; bits < (uint32_t{1} << n); ++bits) {
            uint64_t v[16];
            for (size_t i = 0; i < n; ++i) v[i] = (bits >> i) & 1;
            network_sort_n<16>(v, n, exchange_ascending);
            for (size_t i = 1; i < n; ++i) unsorted += v[i - 1] > v[i] ? 1 : 0;
        }
        CHECK(unsorted == 0);
    }
    int64_t unsorted = 0;
    for (uint32_t bits = 0; bits < (uint32_t{1} << 16); ++bits) {
        double w4[4], w8[8], w16[16];
        for (int i = 0; i < 16; ++i) {
            w16[i] = static_cast<double>((bits >> i) & 1);
            if (i < 8) w8[i] = w16[i];
            if (i < 4) w4[i] = w16[i];
        }
        network_sort<4>(w4, exchange_descending);
        network_sort<8>(w8, exchange_descending);
        network_sort<16>(w16, exchange_descending);
        for (int i = 1; i < 16; ++i) {
            unsorted += w16[i - 1] < w16[i] ? 1 : 0;
            if (i < 8) unsorted += w8[i - 1] < w8[i] ? 1 : 0;
            if (i < 4) unsorted += w4[i - 1] < w4[i] ? 1 : 0;
        }
    }
    CHECK(unsorted == 0);
    std::mt19937_64 rng(7);
    int64_t wrong = 0;
    for (int trial = 0; trial < 2000; ++trial) {
        const size_t n = static_cast<size_t>(trial % 17);
        uint64_t v[16];
        std::vector<uint64_t> expected;
        for (size_t i = 0; i < n; ++i) {
            v[i] = rng() % 6;  // duplicates on purpose
            expected.push_back(v[i]);
        }
        std::sort(expected.begin(), expected.end());
        network_sort_n<16>(v, n, exchange_ascending);
        wrong += std::equal(expected.begin(), expected.end(), v) ? 0 : 1;
    }
    CHECK(wrong == 0);
}

int main(int argc, char** argv) {
    if (argc >= 3 && std::string(argv[1]) == "--fuzz") {
        return fuzz(std::stoll(argv[2]), argc >= 4 ? std::stoull(argv[3]) : 1);
    }
    const std::vector<std::pair<const char*, std::function<void()>>> tests = {
        {"worked_example", test_worked_example},
        {"touching_spans", test_touching_spans},
        {"nested_chunks", test_nested_chunks},
        {"duplicate_retrieval", test_duplicate_retrieval},
        {"other_document", test_other_document},
        {"empty_retrieval", test_empty_retrieval},
        {"references_in_two_docs", test_references_in_two_docs},
        {"chroma_overlapping_references", test_chroma_overlapping_references},
        {"invalid_input", test_invalid_input},
        {"chunk_index_queries", test_chunk_index_queries},
        {"random_against_oracle", test_random_against_oracle},
        {"far_coordinates", test_far_coordinates},
        {"threads_agree", test_threads_agree},
        {"parallel_for_blocks", test_parallel_for_blocks},
        {"bounds_rejected", test_bounds_rejected},
        {"exact_at_the_bounds", test_exact_at_the_bounds},
        {"auto_mode_row_bound", test_auto_mode_row_bound},
        {"long_lists_against_oracle", test_long_lists_against_oracle},
        {"one_cluster_right_to_left", test_one_cluster_right_to_left},
        {"many_references_under_many_chunks", test_many_references_under_many_chunks},
        {"empty_chunking_and_misuse", test_empty_chunking_and_misuse},
        {"rank_worked_example", test_rank_worked_example},
        {"rank_graded_and_modes", test_rank_graded_and_modes},
        {"rank_chroma_and_repeats", test_rank_chroma_and_repeats},
        {"sorting_networks", test_sorting_networks},
    };
    for (const auto& [name, test] : tests) {
        const int before = g_failures;
        try {
            test();
        } catch (const std::exception& error) {
            ++g_failures;
            std::printf("%s: unexpected exception: %s\n", name, error.what());
        }
        std::printf("%-32s %s\n", name, g_failures == before ? "ok" : "FAILED");
    }
    std::printf("%d checks, %d failures\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
