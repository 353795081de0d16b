// chunkeval_bench: throughput of the span-metrics kernel on a seeded synthetic workload.
//
// The workload: `docs` documents of random length, each tiled by fixed 400-char windows (about
// chunks/docs chunks per document); per question 1..refs-max references of 50..600 chars inside one
// random document, and k retrieved chunks, mostly near a reference, some from anywhere. Questions
// are generated and scored in blocks of --batch, so the 10x run (--scale 10) stays small in memory;
// times add up over blocks. Every configuration runs on 1 thread and on --threads threads in the
// same process, next to a "streaming floor": one pass summing every int64 of the question arrays.
// See bench/README.md for what each number means.
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "chunkeval/chunk_index.hpp"
#include "chunkeval/metrics.hpp"
#include "chunkeval/parallel.hpp"

using namespace chunkeval;

namespace {

constexpr int64_t kWindow = 400;  // chunk width of the synthetic chunker

struct Config {
    int64_t docs = 1000;
    int64_t chunks = 1000000;
    int64_t questions = 1000000;
    int64_t k = 10;
    int64_t refs_max = 5;
    int64_t threads = 0;  // 0 = hardware threads
    int64_t seed = 42;
    int64_t scale = 1;
    int64_t batch = 1000000;
    int64_t repeat = 1;
    int64_t long_rows = int64_t{1} << 20;  // rows of the one-question long-list cases (0: skip them)
    int64_t only = -1;                     // run only this scenario (its 0-based row in the table)
    int64_t huge_pages = 1;                // 1: the arrays on huge pages, as numpy allocates them
};

// ---- memory laid out as a Python caller's ----
//
// On Linux numpy asks for transparent huge pages (madvise) over every array of 4 MiB or more, so
// the arrays a Python caller hands the core sit on 2 MiB pages; a std::vector's do not (the kernel's
// usual THP mode is "madvise"). With --huge-pages 1 the bench's arrays get what numpy gives, with 0
// plain pages. The page size moves the streaming floor far more than the kernel (a sequential pass
// misses the TLB once per page, and under a VM's nested paging each miss is a two-level walk), so
// the kernel and the floor are always measured over the same pages.
bool g_huge_pages = true;

template <class T>
struct NumpyLike {
    using value_type = T;
    NumpyLike() = default;
    template <class U>
    NumpyLike(const NumpyLike<U>&) noexcept {}
    T* allocate(size_t n) {
        const size_t bytes = n * sizeof(T);
        void* p = nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        constexpr size_t kHugePage = size_t{1} << 21;
        if (g_huge_pages && bytes >= (size_t{4} << 20)) {
            p = std::aligned_alloc(kHugePage, (bytes + kHugePage - 1) / kHugePage * kHugePage);
            if (p != nullptr) madvise(p, bytes, MADV_HUGEPAGE);  // before the first touch
        }
#endif
        if (p == nullptr) p = std::malloc(std::max<size_t>(bytes, 1));
        if (p == nullptr) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, size_t) noexcept { std::free(p); }
    friend bool operator==(const NumpyLike&, const NumpyLike&) noexcept { return true; }
    friend bool operator!=(const NumpyLike&, const NumpyLike&) noexcept { return false; }
};
template <class T>
using Column = std::vector<T, NumpyLike<T>>;

// The process's memory on huge pages, in MiB (Linux; -1 where it cannot tell).
double huge_page_mib() {
    FILE* f = std::fopen("/proc/self/smaps_rollup", "r");
    if (f == nullptr) return -1;
    char line[256];
    double kib = -1;
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::sscanf(line, "AnonHugePages: %lf kB", &kib) == 1) break;
    }
    std::fclose(f);
    return kib < 0 ? -1 : kib / 1024.0;
}

void usage() {
    std::printf(
        "usage: chunkeval_bench [--docs N] [--chunks N] [--questions N] [--k N] [--refs-max N]\n"
        "                       [--threads N] [--seed N] [--scale N] [--batch N] [--repeat N]\n"
        "                       [--long-rows N] [--only N] [--huge-pages 0|1]\n"
        "Each flag also reads from CHUNKEVAL_BENCH_<FLAG> (e.g. CHUNKEVAL_BENCH_REFS_MAX); flags win.\n"
        "--scale multiplies docs, chunks and questions. --batch is the questions generated and scored\n"
        "at a time. --repeat keeps the fastest of N runs of each measurement. --long-rows is the length\n"
        "of the one-question retrieved lists timed at the end (at most 2^20; 0 skips them). --only runs\n"
        "one scenario, by its 0-based row in the table (for profilers; the others print zeros).\n"
        "--huge-pages 1 (the default) puts the arrays on transparent huge pages where Linux offers them,\n"
        "as numpy does for a Python caller's arrays; 0 leaves them on plain pages.\n");
}

int64_t parse_int(const char* text, const char* what) {
    char* end = nullptr;
    const long long value = std::strtoll(text, &end, 10);
    if (end == text || *end != '\0') {
        std::fprintf(stderr, "chunkeval_bench: %s needs an integer, got '%s'\n", what, text);
        std::exit(2);
    }
    return static_cast<int64_t>(value);
}

Config parse_config(int argc, char** argv) {
    Config config;
    struct Flag {
        const char* name;
        const char* env;
        int64_t* value;
    };
    const Flag flags[] = {
        {"--docs", "CHUNKEVAL_BENCH_DOCS", &config.docs},
        {"--chunks", "CHUNKEVAL_BENCH_CHUNKS", &config.chunks},
        {"--questions", "CHUNKEVAL_BENCH_QUESTIONS", &config.questions},
        {"--k", "CHUNKEVAL_BENCH_K", &config.k},
        {"--refs-max", "CHUNKEVAL_BENCH_REFS_MAX", &config.refs_max},
        {"--threads", "CHUNKEVAL_BENCH_THREADS", &config.threads},
        {"--seed", "CHUNKEVAL_BENCH_SEED", &config.seed},
        {"--scale", "CHUNKEVAL_BENCH_SCALE", &config.scale},
        {"--batch", "CHUNKEVAL_BENCH_BATCH", &config.batch},
        {"--repeat", "CHUNKEVAL_BENCH_REPEAT", &config.repeat},
        {"--long-rows", "CHUNKEVAL_BENCH_LONG_ROWS", &config.long_rows},
        {"--only", "CHUNKEVAL_BENCH_ONLY", &config.only},
        {"--huge-pages", "CHUNKEVAL_BENCH_HUGE_PAGES", &config.huge_pages},
    };
    for (const Flag& flag : flags) {
        if (const char* env = std::getenv(flag.env)) *flag.value = parse_int(env, flag.env);
    }
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            usage();
            std::exit(0);
        }
        bool known = false;
        for (const Flag& flag : flags) {
            if (std::strcmp(argv[i], flag.name) == 0 && i + 1 < argc) {
                *flag.value = parse_int(argv[++i], flag.name);
                known = true;
            }
        }
        if (!known) {
            std::fprintf(stderr, "chunkeval_bench: unknown or incomplete argument '%s'\n", argv[i]);
            usage();
            std::exit(2);
        }
    }
    if (config.threads <= 0) config.threads = hardware_concurrency();
    if (config.docs < 1 || config.chunks < config.docs || config.questions < 1 || config.k < 1 ||
        config.refs_max < 1 || config.scale < 1 || config.batch < 1 || config.repeat < 1 || config.long_rows < 0 ||
        config.long_rows > kMaxRowsPerQuestion || (config.huge_pages != 0 && config.huge_pages != 1)) {
        std::fprintf(stderr,
                     "chunkeval_bench: need docs >= 1, chunks >= docs, every count >= 1, long-rows in [0, 2^20], "
                     "huge-pages 0 or 1\n");
        std::exit(2);
    }
    g_huge_pages = config.huge_pages == 1;
    config.docs *= config.scale;
    config.chunks *= config.scale;
    config.questions *= config.scale;
    return config;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double peak_rss_mib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

std::string si(double value) {
    char text[32];
    if (value >= 1e9) {
        std::snprintf(text, sizeof text, "%.2f G", value / 1e9);
    } else if (value >= 1e6) {
        std::snprintf(text, sizeof text, "%.2f M", value / 1e6);
    } else if (value >= 1e3) {
        std::snprintf(text, sizeof text, "%.2f k", value / 1e3);
    } else {
        std::snprintf(text, sizeof text, "%.2f ", value);
    }
    return text;
}

// ---- the synthetic corpus ----

struct Corpus {
    Column<int64_t> doc_length;
    Column<int64_t> chunk_doc, chunk_start, chunk_end;
};

Corpus make_corpus(const Config& config, std::mt19937_64& rng) {
    Corpus corpus;
    const double mean_chunks = static_cast<double>(config.chunks) / static_cast<double>(config.docs);
    std::uniform_real_distribution<double> spread(0.5, 1.5);
    corpus.doc_length.resize(static_cast<size_t>(config.docs));
    for (int64_t d = 0; d < config.docs; ++d) {
        // At least two windows, so every reference length fits in every document.
        const double windows = std::max(2.0, mean_chunks * spread(rng));
        corpus.doc_length[static_cast<size_t>(d)] =
            static_cast<int64_t>(windows * static_cast<double>(kWindow)) - static_cast<int64_t>(rng() % kWindow);
        const int64_t length = corpus.doc_length[static_cast<size_t>(d)];
        for (int64_t s = 0; s < length; s += kWindow) {
            corpus.chunk_doc.push_back(d);
            corpus.chunk_start.push_back(s);
            corpus.chunk_end.push_back(std::min(s + kWindow, length));
        }
    }
    return corpus;
}

struct Questions {
    Column<int64_t> ref_offsets, ref_doc, ref_start, ref_end;
    Column<int64_t> ret_offsets, ret_doc, ret_start, ret_end;
    int64_t pairs = 0;  // Σ_q refs_q * k_q

    int64_t n() const { return static_cast<int64_t>(ref_offsets.size()) - 1; }
    size_t bytes() const {
        return 8 * (ref_offsets.size() + 3 * ref_doc.size() + ret_offsets.size() + 3 * ret_doc.size());
    }
    RaggedSpanView references() const {
        return RaggedSpanView{ref_offsets.data(), n(),
                              SpanView{ref_doc.data(), ref_start.data(), ref_end.data(),
                                       static_cast<int64_t>(ref_doc.size())}};
    }
    RaggedSpanView retrieved() const {
        return RaggedSpanView{ret_offsets.data(), n(),
                              SpanView{ret_doc.data(), ret_start.data(), ret_end.data(),
                                       static_cast<int64_t>(ret_doc.size())}};
    }
};

void make_questions(const Config& config, const Corpus& corpus, int64_t count, std::mt19937_64& rng,
                    Questions& q) {
    const size_t refs_guess = static_cast<size_t>(count * (config.refs_max + 1) / 2);
    const size_t ret_rows = static_cast<size_t>(count * config.k);
    q.ref_offsets.assign(1, 0);
    q.ret_offsets.assign(1, 0);
    for (auto* column : {&q.ref_doc, &q.ref_start, &q.ref_end}) {
        column->clear();
        column->reserve(refs_guess);
    }
    for (auto* column : {&q.ret_doc, &q.ret_start, &q.ret_end}) {
        column->clear();
        column->reserve(ret_rows);
    }
    q.ref_offsets.reserve(static_cast<size_t>(count + 1));
    q.ret_offsets.reserve(static_cast<size_t>(count + 1));
    q.pairs = 0;
    const uint64_t n_docs = static_cast<uint64_t>(config.docs);
    auto push_chunk = [&](int64_t doc, int64_t window) {
        const int64_t length = corpus.doc_length[static_cast<size_t>(doc)];
        const int64_t last_window = (length - 1) / kWindow;
        window = std::clamp<int64_t>(window, 0, last_window);
        q.ret_doc.push_back(doc);
        q.ret_start.push_back(window * kWindow);
        q.ret_end.push_back(std::min(window * kWindow + kWindow, length));
    };
    for (int64_t i = 0; i < count; ++i) {
        const int64_t doc = static_cast<int64_t>(rng() % n_docs);
        const int64_t length = corpus.doc_length[static_cast<size_t>(doc)];
        const int64_t n_refs = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(config.refs_max));
        const size_t first_ref = q.ref_doc.size();
        for (int64_t r = 0; r < n_refs; ++r) {
            const int64_t ref_length = 50 + static_cast<int64_t>(rng() % 551);
            const int64_t start = static_cast<int64_t>(rng() % static_cast<uint64_t>(length - ref_length + 1));
            q.ref_doc.push_back(doc);
            q.ref_start.push_back(start);
            q.ref_end.push_back(start + ref_length);
        }
        for (int64_t j = 0; j < config.k; ++j) {
            if (rng() % 10 < 7) {
                // Near a reference: its window, or up to three windows either side.
                const size_t ref = first_ref + static_cast<size_t>(rng() % static_cast<uint64_t>(n_refs));
                const int64_t offset = static_cast<int64_t>(rng() % 7) - 3;
                push_chunk(doc, q.ref_start[ref] / kWindow + offset);
            } else {
                const int64_t other = static_cast<int64_t>(rng() % n_docs);
                const int64_t windows = (corpus.doc_length[static_cast<size_t>(other)] + kWindow - 1) / kWindow;
                push_chunk(other, static_cast<int64_t>(rng() % static_cast<uint64_t>(windows)));
            }
        }
        q.pairs += n_refs * config.k;
        q.ref_offsets.push_back(static_cast<int64_t>(q.ref_doc.size()));
        q.ret_offsets.push_back(static_cast<int64_t>(q.ret_doc.size()));
    }
}

// ---- measurements ----

struct Outputs {
    Column<double> recall, precision, iou, precision_omega, coverage, rank;
    Column<int64_t> n_evidence_chunks;

    void resize(int64_t n, int64_t columns, bool ranked = false) {
        const size_t cells = static_cast<size_t>(n * columns);
        rank.resize(ranked ? static_cast<size_t>(kRankMetrics) * cells : 0);
        recall.resize(cells);
        precision.resize(cells);
        iou.resize(cells);
        precision_omega.resize(static_cast<size_t>(n));
        coverage.resize(static_cast<size_t>(n));
        n_evidence_chunks.resize(static_cast<size_t>(n));
    }
    MetricsOutputs view() {
        return MetricsOutputs{recall.data(),   precision.data(),         iou.data(),
                              precision_omega.data(), coverage.data(), n_evidence_chunks.data(),
                              rank.empty() ? nullptr : rank.data()};
    }
    bool operator==(const Outputs& o) const {
        auto same = [](const Column<double>& a, const Column<double>& b) {
            return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
        };
        return same(recall, o.recall) && same(precision, o.precision) && same(iou, o.iou) &&
               same(precision_omega, o.precision_omega) && same(coverage, o.coverage) && same(rank, o.rank) &&
               n_evidence_chunks == o.n_evidence_chunks;
    }
};

struct Scenario {
    const char* name;
    Semantics semantics;
    std::vector<int64_t> ks;
    bool ranked = false;  // also the rank metrics (hit, mrr, map, ndcg, ndcg_graded)
    int base = -1;        // for a ranked scenario: the same scenario without rank metrics
};

// Wall and CPU seconds (CPU summed over the process's threads), each the best of --repeat runs.
struct Measurement {
    double wall = 0;
    double cpu = 0;
    Measurement& operator+=(const Measurement& o) {
        wall += o.wall;
        cpu += o.cpu;
        return *this;
    }
};

struct Timing {
    Measurement one_thread;
    Measurement many_threads;
};

double process_cpu_seconds() {
    timespec now{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

// One pass over every int64 of the question arrays: the least any kernel that reads its input must
// spend. Sums in contiguous blocks per thread, like the kernel.
int64_t stream_sum(const Questions& q, int threads) {
    const Column<int64_t>* columns[] = {&q.ref_offsets, &q.ref_doc, &q.ref_start, &q.ref_end,
                                             &q.ret_offsets, &q.ret_doc, &q.ret_start, &q.ret_end};
    std::vector<int64_t> partial(static_cast<size_t>(threads), 0);
    for (const Column<int64_t>* column : columns) {
        const int64_t* data = column->data();
        const int64_t n = static_cast<int64_t>(column->size());
        // Force the split even for short columns: the floor should use the threads it is given.
        const int use = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, n)));
        if (use == 1) {  // on the calling thread, as the kernel runs with one thread
            for (int64_t i = 0; i < n; ++i) partial[0] += data[i];
            continue;
        }
        std::vector<std::thread> workers;
        for (int t = 0; t < use; ++t) {
            workers.emplace_back([&, t] {
                const int64_t begin = n * t / use;
                const int64_t end = n * (t + 1) / use;
                int64_t sum = 0;
                for (int64_t i = begin; i < end; ++i) sum += data[i];
                partial[static_cast<size_t>(t)] += sum;
            });
        }
        for (auto& worker : workers) worker.join();
    }
    int64_t total = 0;
    for (int64_t p : partial) total += p;
    return total;
}

template <class F>
Measurement best_of(int64_t repeat, F&& run) {
    Measurement best{std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
    for (int64_t r = 0; r < repeat; ++r) {
        const double cpu_start = process_cpu_seconds();
        const auto start = std::chrono::steady_clock::now();
        run();
        best.wall = std::min(best.wall, seconds_since(start));
        best.cpu = std::min(best.cpu, process_cpu_seconds() - cpu_start);
    }
    return best;
}

// The middle value (the upper one of an even count); 0 for none.
double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2), values.end());
    return values[values.size() / 2];
}

// One question with a long retrieved list, on one thread: the ranked-list pass must be O(n log n)
// whatever the layout (issue 8: a cluster ranked right to left was quadratic, > 60 s at 2^20 rows).
// Cases: random corpus chunks (many small clusters of duplicates), random spans of 1..2000 chars
// inside one 2^22-char document (one giant cluster, nested and overlapping), and one cluster
// ranked right to left (each row overlaps the next, every new row lands in front).
void bench_long_lists(const Config& config, const Corpus& corpus, const ChunkIndex& index, std::mt19937_64& rng) {
    const int64_t n = config.long_rows;
    if (n == 0) return;
    const uint64_t n_docs = static_cast<uint64_t>(config.docs);
    struct Case {
        const char* name;
        Column<int64_t> doc, start, end;
    };
    std::vector<Case> cases(3);
    cases[0].name = "random corpus chunks";
    cases[1].name = "random spans, 1 doc";
    cases[2].name = "1 cluster right-to-left";
    constexpr int64_t kLongDoc = int64_t{1} << 22;
    for (int64_t r = 0; r < n; ++r) {
        const int64_t doc = static_cast<int64_t>(rng() % n_docs);
        const int64_t length = corpus.doc_length[static_cast<size_t>(doc)];
        const int64_t window = static_cast<int64_t>(rng() % static_cast<uint64_t>((length + kWindow - 1) / kWindow));
        cases[0].doc.push_back(doc);
        cases[0].start.push_back(window * kWindow);
        cases[0].end.push_back(std::min(window * kWindow + kWindow, length));
        const int64_t width = 1 + static_cast<int64_t>(rng() % 2000);
        const int64_t start = static_cast<int64_t>(rng() % static_cast<uint64_t>(kLongDoc - width));
        cases[1].doc.push_back(0);
        cases[1].start.push_back(start);
        cases[1].end.push_back(start + width);
        cases[2].doc.push_back(0);
        cases[2].start.push_back(n - 1 - r);
        cases[2].end.push_back(n + 1 - r);
    }
    // Eight references in doc 0, inside every case's range.
    std::vector<int64_t> ref_doc(8, 0), ref_start, ref_end, ref_offsets{0, 8};  // small
    for (int i = 0; i < 8; ++i) {
        const int64_t start = static_cast<int64_t>(rng() % static_cast<uint64_t>(std::max<int64_t>(1, n - 600)));
        ref_start.push_back(start);
        ref_end.push_back(start + 50 + static_cast<int64_t>(rng() % 551));
    }
    const std::vector<int64_t> ret_offsets{0, n};
    std::vector<int64_t> ks;  // 1, 10, 100, 1000 below n, then n: strictly increasing whatever n is
    for (const int64_t k : {int64_t{1}, int64_t{10}, int64_t{100}, int64_t{1000}}) {
        if (k < n) ks.push_back(k);
    }
    ks.push_back(n);
    std::string ks_text;
    for (const int64_t k : ks) ks_text += (ks_text.empty() ? "" : ",") + std::to_string(k);
    std::printf("\nlong lists: one question, %" PRId64 " retrieved rows, ks=[%s], 1 thread\n", n, ks_text.c_str());
    std::printf("%-26s %-7s %9s %9s %12s\n", "case", "sem", "wall s", "cpu s", "rows/s");
    for (Case& c : cases) {
        const RaggedSpanView references{ref_offsets.data(), 1, SpanView{ref_doc.data(), ref_start.data(), ref_end.data(), 8}};
        const RaggedSpanView retrieved{ret_offsets.data(), 1, SpanView{c.doc.data(), c.start.data(), c.end.data(), n}};
        for (Semantics semantics : {Semantics::set, Semantics::chroma}) {
            Outputs out;
            out.resize(1, static_cast<int64_t>(ks.size()));
            MetricsOptions options;
            options.k_mode = KMode::list;
            options.semantics = semantics;
            options.ks = ks.data();
            options.n_ks = static_cast<int64_t>(ks.size());
            options.num_threads = 1;
            const Measurement m = best_of(config.repeat, [&] {
                span_metrics(references, retrieved, &index, options, out.view());
            });
            std::printf("%-26s %-7s %9.3f %9.3f %12s\n", c.name, semantics == Semantics::set ? "set" : "chroma",
                        m.wall, m.cpu, si(static_cast<double>(n) / m.wall).c_str());
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    const Config config = parse_config(argc, argv);
    const int threads = static_cast<int>(config.threads);
    std::printf("chunkeval_bench: docs=%" PRId64 " chunks~%" PRId64 " questions=%" PRId64 " k=%" PRId64
                " refs-max=%" PRId64 " threads=%d seed=%" PRId64 " scale=%" PRId64 " batch=%" PRId64
                " repeat=%" PRId64 " (hardware threads: %d)\n",
                config.docs, config.chunks, config.questions, config.k, config.refs_max, threads, config.seed,
                config.scale, config.batch, config.repeat, hardware_concurrency());

    std::mt19937_64 rng(static_cast<uint64_t>(config.seed));
    auto start = std::chrono::steady_clock::now();
    Corpus corpus = make_corpus(config, rng);
    const double corpus_seconds = seconds_since(start);
    const int64_t n_chunks = static_cast<int64_t>(corpus.chunk_doc.size());
    start = std::chrono::steady_clock::now();
    const ChunkIndex index(SpanView{corpus.chunk_doc.data(), corpus.chunk_start.data(), corpus.chunk_end.data(),
                                    n_chunks});
    const double index_seconds = seconds_since(start);
    const double chunk_mb = 24.0 * static_cast<double>(n_chunks) / 1e6;
    // The index holds its own copy; the generator only needs the document lengths from here on.
    Column<int64_t>().swap(corpus.chunk_doc);
    Column<int64_t>().swap(corpus.chunk_start);
    Column<int64_t>().swap(corpus.chunk_end);
    std::printf("corpus: %" PRId64 " chunks in %" PRId64 " docs (%.2f s to generate); index built in %.3f s\n",
                n_chunks, index.n_docs(), corpus_seconds, index_seconds);

    const std::vector<Scenario> scenarios = {
        {"set    ks=[1,3,5,10]", Semantics::set, {1, 3, 5, 10}},
        {"chroma ks=[1,3,5,10]", Semantics::chroma, {1, 3, 5, 10}},
        {"set    ks=[10]", Semantics::set, {10}},
        {"chroma ks=[10]", Semantics::chroma, {10}},
        {"set    ks=[10] +rank", Semantics::set, {10}, true, 2},
        {"chroma ks=[10] +rank", Semantics::chroma, {10}, true, 3},
        {"set    [1,3,5,10] +rank", Semantics::set, {1, 3, 5, 10}, true, 0},
    };
    std::vector<int64_t> list_ks = {1, 3, 5, 10};
    std::vector<Timing> timings(scenarios.size());
    std::vector<Timing> paired(scenarios.size());  // ranked scenarios: (with, without) rank metrics, alternated
    std::vector<std::vector<double>> pair_ratios(scenarios.size());  // with / without, pair by pair (wall)
    std::vector<std::vector<double>> scaling_ratios(scenarios.size());  // 1 thread / all threads, pair by pair
    Timing floor;
    int64_t n_refs = 0, n_ret = 0, pairs = 0, mismatches = 0;
    size_t question_bytes = 0, ref_bytes = 0, ret_bytes = 0;
    double generate_seconds = 0, checksum = 0;
    int64_t floor_sum = 0;

    Questions questions;
    Outputs single, multi;
    for (int64_t done = 0; done < config.questions; done += config.batch) {
        const int64_t count = std::min(config.batch, config.questions - done);
        start = std::chrono::steady_clock::now();
        make_questions(config, corpus, count, rng, questions);
        generate_seconds += seconds_since(start);
        n_refs += static_cast<int64_t>(questions.ref_doc.size());
        n_ret += static_cast<int64_t>(questions.ret_doc.size());
        pairs += questions.pairs;
        question_bytes += questions.bytes();
        ref_bytes += 24 * questions.ref_doc.size();
        ret_bytes += 24 * questions.ret_doc.size();

        floor.one_thread += best_of(config.repeat, [&] { floor_sum += stream_sum(questions, 1); });
        floor.many_threads += best_of(config.repeat, [&] { floor_sum += stream_sum(questions, threads); });

        for (size_t s = 0; s < scenarios.size(); ++s) {
            if (config.only >= 0 && static_cast<int64_t>(s) != config.only) continue;
            const Scenario& scenario = scenarios[s];
            MetricsOptions options;
            options.k_mode = KMode::list;
            options.semantics = scenario.semantics;
            options.ks = scenario.ks.data();
            options.n_ks = static_cast<int64_t>(scenario.ks.size());
            options.ranked = scenario.ranked;
            const int64_t columns = metric_columns(options.k_mode, options.n_ks);
            single.resize(count, columns, scenario.ranked);
            multi.resize(count, columns, scenario.ranked);
            // 1 thread and all threads timed in alternation, so that a machine whose speed drifts
            // between calls slows both alike; the best of each is kept, and each pair's ratio.
            Measurement best_one{1e300, 1e300}, best_many{1e300, 1e300};
            for (int64_t r = 0; r < config.repeat; ++r) {
                options.num_threads = 1;
                const Measurement a = best_of(1, [&] {
                    span_metrics(questions.references(), questions.retrieved(), &index, options, single.view());
                });
                options.num_threads = threads;
                const Measurement b = best_of(1, [&] {
                    span_metrics(questions.references(), questions.retrieved(), &index, options, multi.view());
                });
                best_one = {std::min(best_one.wall, a.wall), std::min(best_one.cpu, a.cpu)};
                best_many = {std::min(best_many.wall, b.wall), std::min(best_many.cpu, b.cpu)};
                scaling_ratios[s].push_back(a.wall / b.wall);
            }
            timings[s].one_thread += best_one;
            timings[s].many_threads += best_many;
            if (!(single == multi)) ++mismatches;
            for (size_t i = 0; i < single.iou.size(); i += 97) checksum += single.iou[i];
            if (scenario.base >= 0) {
                // The cost of the rank metrics, timed in alternation with the same call without them
                // (1 thread), so that a noisy machine slows both alike; the best of each is kept.
                MetricsOptions plain = options;
                plain.ranked = false;
                plain.num_threads = options.num_threads = 1;
                Outputs without;
                without.resize(count, columns);
                Measurement best_with{1e300, 1e300}, best_without{1e300, 1e300};
                for (int64_t r = 0; r < 2 * config.repeat + 1; ++r) {
                    const Measurement a = best_of(1, [&] {
                        span_metrics(questions.references(), questions.retrieved(), &index, plain, without.view());
                    });
                    const Measurement b = best_of(1, [&] {
                        span_metrics(questions.references(), questions.retrieved(), &index, options, single.view());
                    });
                    best_without.wall = std::min(best_without.wall, a.wall);
                    best_without.cpu = std::min(best_without.cpu, a.cpu);
                    best_with.wall = std::min(best_with.wall, b.wall);
                    best_with.cpu = std::min(best_with.cpu, b.cpu);
                    pair_ratios[s].push_back(b.wall / a.wall);
                }
                paired[s].one_thread += best_with;
                paired[s].many_threads += best_without;
            }
        }
    }

    const double n_questions = static_cast<double>(config.questions);
    std::printf("workload: %" PRId64 " questions, %" PRId64 " references (%.2f per question), %" PRId64
                " retrieved rows, %" PRId64 " chunk-reference pairs (sum of refs x k); generated in %.2f s\n",
                config.questions, n_refs, static_cast<double>(n_refs) / n_questions, n_ret, pairs, generate_seconds);
    std::printf("input bytes: questions %.1f MB (references %.1f, retrieved %.1f, offsets %.1f); chunks %.1f MB\n",
                static_cast<double>(question_bytes) / 1e6, static_cast<double>(ref_bytes) / 1e6,
                static_cast<double>(ret_bytes) / 1e6,
                static_cast<double>(question_bytes - ref_bytes - ret_bytes) / 1e6, chunk_mb);
    std::printf("streaming floor (sum of every question int64): 1 thread %.4f s wall, %.4f s cpu (%.2f GB/s); "
                "%d threads %.4f s wall, %.4f s cpu (%.2f GB/s)\n",
                floor.one_thread.wall, floor.one_thread.cpu,
                static_cast<double>(question_bytes) / floor.one_thread.wall / 1e9, threads, floor.many_threads.wall,
                floor.many_threads.cpu, static_cast<double>(question_bytes) / floor.many_threads.wall / 1e9);
    std::printf("(rates use wall time; q/cpu-s uses CPU seconds summed over threads, which a busy machine "
                "inflates less; x floor = kernel / floor at the same thread count, wall and cpu; scaling = the median "
                "of the --repeat (1 thread, all threads) pairs' wall ratios, the two calls of a pair back to back)\n\n");

    std::printf("%-24s %3s %8s %8s %12s %12s %12s %12s %7s %6s %8s\n", "scenario (all metrics)", "thr", "wall s",
                "cpu s", "questions/s", "q/s/thread", "q/cpu-s", "pairs/s", "x floor", "(cpu)", "scaling");
    for (size_t s = 0; s < scenarios.size(); ++s) {
        const Timing& t = timings[s];
        for (int run = 0; run < 2; ++run) {
            const int used = run == 0 ? 1 : threads;
            const Measurement& m = run == 0 ? t.one_thread : t.many_threads;
            const Measurement& f = run == 0 ? floor.one_thread : floor.many_threads;
            char scaling[16] = "";
            if (run == 1) std::snprintf(scaling, sizeof scaling, "%.2fx", median(scaling_ratios[s]));
            std::printf("%-24s %3d %8.3f %8.3f %12s %12s %12s %12s %7.1f %6.1f %8s\n", scenarios[s].name, used, m.wall,
                        m.cpu, si(n_questions / m.wall).c_str(), si(n_questions / m.wall / used).c_str(),
                        si(n_questions / m.cpu).c_str(), si(static_cast<double>(pairs) / m.wall).c_str(),
                        m.wall / f.wall, m.cpu / f.cpu, scaling);
        }
    }
    std::printf("\nrank metrics' cost (1 thread; the call with them / the same call without, timed in alternation: "
                "the median of the %" PRId64 " back-to-back pairs' ratios, which a machine whose speed drifts "
                "between calls moves least, their range, and the best of each; wall):",
                2 * config.repeat + 1);
    for (size_t s = 0; s < scenarios.size(); ++s) {
        if (scenarios[s].base < 0 || paired[s].many_threads.wall == 0) continue;
        const Timing& p = paired[s];
        const std::vector<double>& ratios = pair_ratios[s];
        std::printf("\n  %s: %.3fx (pairs %.3f-%.3f; best of each %.3fx: %.3f s against %.3f s)", scenarios[s].name,
                    median(ratios), *std::min_element(ratios.begin(), ratios.end()),
                    *std::max_element(ratios.begin(), ratios.end()), p.one_thread.wall / p.many_threads.wall,
                    p.one_thread.wall, p.many_threads.wall);
    }
    std::printf("\n");
    std::printf("\n1-thread and %d-thread outputs identical: %s; checksum %.6f (floor %" PRId64 ")\n", threads,
                mismatches == 0 ? "yes" : "NO", checksum, floor_sum);
    const double huge = huge_page_mib();
    std::printf("pages: --huge-pages %" PRId64 " (%s); %s\n", config.huge_pages,
                config.huge_pages == 1 ? "asked for, as numpy does for a Python caller's arrays" : "plain pages",
                huge < 0 ? "the huge pages in use are not reported on this platform"
                         : ("on huge pages now: " + std::to_string(static_cast<int64_t>(huge)) + " MiB").c_str());
    bench_long_lists(config, corpus, index, rng);
    std::printf("peak RSS: %.1f MiB\n", peak_rss_mib());
    return mismatches == 0 ? 0 : 1;
}
