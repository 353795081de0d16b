// Branch-free sorting networks for a handful of values, built at compile time: Batcher's odd-even
// merge sort, pruned to any number of inputs. The core sorts a question's retrieved rows (packed
// keys) and its ideal gains with them: an insertion sort's data-dependent branches mispredict about
// once per element, while a network's exchanges are conditional moves or min/max.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace chunkeval {

// Calls exchange(a, b) for each exchange of Batcher's odd-even merge sort of w = 2^m inputs, in order.
template <class Exchange>
constexpr void batcher_exchanges(int w, Exchange exchange) {
    for (int p = 1; p < w; p <<= 1)
        for (int k = p; k >= 1; k >>= 1)
            for (int j = k % p; j + k < w; j += 2 * k)
                for (int i = 0; i < k && i + j + k < w; ++i)
                    if ((i + j) / (2 * p) == (i + j + k) / (2 * p)) exchange(i + j, i + j + k);
}

// The smallest power of two >= n (n >= 1).
constexpr int power_of_two_at_least(int n) {
    int w = 1;
    while (w < n) w <<= 1;
    return w;
}

// The network for N inputs as a fixed list of exchanges, built at compile time: Batcher's network
// for the next power of two, less every exchange that touches an input past N. Those inputs would
// be padding holding the largest key, and no exchange moves the largest key down, so they never
// swap: the pruned list sorts N inputs (N = 4, 8, 16: 5, 19 and 63 exchanges; N = 10: 32).
template <int N>
struct Network {
    static constexpr int kWidth = power_of_two_at_least(N);
    static constexpr int kSize = [] {
        int count = 0;
        batcher_exchanges(kWidth, [&count](int, int b) { count += b < N ? 1 : 0; });
        return count;
    }();
    uint8_t first[kSize > 0 ? kSize : 1] = {};  // N = 1 has no exchange
    uint8_t second[kSize > 0 ? kSize : 1] = {};
    constexpr Network() {
        int at = 0;
        batcher_exchanges(kWidth, [&](int a, int b) {
            if (b >= N) return;
            first[at] = static_cast<uint8_t>(a);
            second[at] = static_cast<uint8_t>(b);
            ++at;
        });
    }
};

// Sorts v[0..N) by the network's exchanges: exchange(a, b) puts the pair in order in place, free of
// branches (an insertion sort's data-dependent branches mispredict about once per element).
template <int N, class T, class Exchange>
void network_sort(T* v, Exchange exchange) noexcept {
    static constexpr Network<N> network;
#if defined(__GNUC__)
#pragma GCC unroll 64
#endif
    for (int e = 0; e < Network<N>::kSize; ++e) exchange(v[network.first[e]], v[network.second[e]]);
}

// Sorts v[0..n), n <= N, by the network of exactly n inputs (n < 2: nothing to do). A ranked list has
// the same length in nearly every question, so the choice predicts well.
template <int N, class T, class Exchange>
void network_sort_n(T* v, size_t n, Exchange exchange) noexcept {
    if constexpr (N >= 2) {
        if (n == N) {
            network_sort<N>(v, exchange);
        } else {
            network_sort_n<N - 1>(v, n, exchange);
        }
    }
}

// The exchange of an ascending sort of unsigned keys: a compare and two conditional moves.
inline void exchange_ascending(uint64_t& a, uint64_t& b) noexcept {
    const uint64_t x = a;
    const uint64_t y = b;
    const bool swap = y < x;
    a = swap ? y : x;
    b = swap ? x : y;
}

// The exchange of a descending sort of doubles without NaN: a max and a min.
inline void exchange_descending(double& a, double& b) noexcept {
    const double x = a;
    const double y = b;
    a = std::max(x, y);
    b = std::min(x, y);
}

}  // namespace chunkeval
