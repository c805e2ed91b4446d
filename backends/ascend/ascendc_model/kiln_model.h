// kiln's CPU model of the AscendC runtime state: the Unified Buffer of the core running a block,
// the GM buffers the op was given, and the loud failure every broken constraint ends in.
// See README.md.
#pragma once
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace kiln_model {

constexpr size_t UB_BYTES = 196608;
constexpr size_t UB_USABLE = UB_BYTES - 256 - 8192;
constexpr uint32_t AIV_CORES = 48;
constexpr uint32_t AIC_CORES = 24;

[[noreturn]] inline void fail(const char* fmt, ...)
{
    std::fprintf(stderr, "AscendC CPU model: ");
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
    std::exit(3);
}

enum class BufState { Free, Allocated, Queued, Dequeued, Calc };

inline const char* state_name(BufState s)
{
    switch (s) {
        case BufState::Free: return "free (not allocated, or freed)";
        case BufState::Allocated: return "allocated";
        case BufState::Queued: return "enqueued (not yet dequeued)";
        case BufState::Dequeued: return "dequeued";
        case BufState::Calc: return "a TBuf";
    }
    return "?";
}

struct Buf {
    size_t off;
    size_t bytes;
    BufState state;
    uint32_t gen;
    int queue;  // -1 for a TBuf
};

struct State {
    alignas(64) uint8_t ub[UB_BYTES];
    size_t ub_used = 0;
    size_t ub_peak = 0;
    std::vector<Buf> bufs;
    int queues = 0;
    uint32_t block_idx = 0;
    uint32_t block_num = 1;
    int kernel_type = 0;
    std::vector<std::pair<const uint8_t*, size_t>> gm;
};

inline State& st()
{
    static State* s = new State();
    return *s;
}

/// A fresh core for the next block: UB poisoned with NaN bytes, nothing allocated.
inline void reset_core()
{
    State& s = st();
    std::memset(s.ub, 0xFF, UB_BYTES);
    s.ub_used = 0;
    s.bufs.clear();
    s.queues = 0;
}

inline void check_gm(const void* p, size_t bytes, const char* api)
{
    const uint8_t* q = static_cast<const uint8_t*>(p);
    for (auto& b : st().gm) {
        if (q >= b.first && q + bytes <= b.first + b.second) {
            return;
        }
    }
    fail("%s: %zu bytes at GM %p lie outside every buffer the op was given", api, bytes, p);
}

inline size_t alloc_ub(size_t bytes, const char* what)
{
    State& s = st();
    size_t len = (bytes + 31) / 32 * 32;
    if (s.ub_used + len > UB_USABLE) {
        fail("%s: %zu more bytes of Unified Buffer on top of %zu exceed the %zu usable (192 KiB less 256 B and the 8 KiB reserve)",
             what, len, s.ub_used, UB_USABLE);
    }
    size_t off = s.ub_used;
    s.ub_used += len;
    if (s.ub_used > s.ub_peak) {
        s.ub_peak = s.ub_used;
    }
    return off;
}

}  // namespace kiln_model
