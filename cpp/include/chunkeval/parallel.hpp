// An exception-safe parallel-for over contiguous blocks of items, on plain std::threads.
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

// Splits [0, n_items) into one contiguous block per thread and calls
//     body(thread_id, begin, end, stop)
// in each, where `stop` is a const std::atomic<bool>& the body should poll between items: it turns
// true once any worker has thrown. The first exception thrown wins and is rethrown here after every
// thread has joined; the others are dropped. With one thread the body runs on the calling thread.
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
    auto run_block = [&](int thread_id) {
        const int64_t block = n_items / threads;
        const int64_t extra = n_items % threads;  // the first `extra` blocks get one more item
        const int64_t begin = block * thread_id + std::min<int64_t>(thread_id, extra);
        const int64_t end = begin + block + (thread_id < extra ? 1 : 0);
        try {
            body(thread_id, begin, end, static_cast<const std::atomic<bool>&>(stop));
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
