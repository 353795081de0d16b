// An exception-safe parallel-for over contiguous blocks of items, taken in turn by plain std::threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace chunkeval {

// Below this many items a single thread does the work: starting threads would cost more.
constexpr int64_t kMinItemsForThreads = 2048;

// std::thread::hardware_concurrency(), or 1 where the platform cannot tell.
inline int hardware_concurrency() noexcept {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
}

// Number of threads parallel_for will really use for `n_items` when asked for `requested`
// (0 = every hardware thread).
inline int effective_threads(int64_t n_items, int requested) noexcept {
    int threads = requested <= 0 ? hardware_concurrency() : requested;
    if (n_items < kMinItemsForThreads) threads = 1;
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n_items)));
}

// Items per block handed out by parallel_for: small enough that a thread preempted by other work
// on the machine holds up the others by at most one short block, large enough that taking a block
// (one atomic add) costs nothing next to scoring it.
inline int64_t parallel_block(int64_t n_items, int threads) noexcept {
    return std::clamp<int64_t>(n_items / (int64_t{64} * threads), 256, 8192);
}

// Splits [0, n_items) into contiguous blocks that the threads take in order as they go, calling
//     body(thread_id, begin, end, stop)
// once per block, where `stop` is a const std::atomic<bool>& the body should poll between items:
// it turns true once any worker has thrown. The first exception thrown wins and is rethrown here
// after every thread has joined; the others are dropped. With one thread the body runs once, on
// the calling thread, over every item.
template <class Body>
void parallel_for(int64_t n_items, int requested_threads, Body&& body) {
    const int threads = effective_threads(n_items, requested_threads);
    std::atomic<bool> stop{false};
    if (threads == 1) {
        body(0, int64_t{0}, n_items, static_cast<const std::atomic<bool>&>(stop));
        return;
    }
    std::exception_ptr first_error;
    std::mutex error_mutex;
    const int64_t block = parallel_block(n_items, threads);
    std::atomic<int64_t> next{0};
    auto run_block = [&](int thread_id) {
        try {
            while (!stop.load(std::memory_order_relaxed)) {
                const int64_t begin = next.fetch_add(block, std::memory_order_relaxed);
                if (begin >= n_items) break;
                body(thread_id, begin, std::min(begin + block, n_items), static_cast<const std::atomic<bool>&>(stop));
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!first_error) first_error = std::current_exception();
            stop.store(true, std::memory_order_relaxed);
        }
    };
    std::vector<std::thread> workers;
    workers.reserve(static_cast<size_t>(threads - 1));
    try {
        for (int t = 1; t < threads; ++t) workers.emplace_back(run_block, t);
    } catch (...) {
        // Could not start a thread: stop the ones that did start, then report.
        stop.store(true, std::memory_order_relaxed);
        for (auto& worker : workers) worker.join();
        throw;
    }
    run_block(0);
    for (auto& worker : workers) worker.join();
    if (first_error) std::rethrow_exception(first_error);
}

}  // namespace chunkeval
