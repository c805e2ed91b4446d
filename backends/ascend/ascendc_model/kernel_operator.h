// kiln's CPU model of the AscendC kernel API subset kiln's kernels use (ASCEND.md §4.1, §4.2):
// TPipe, TQue, TBuf, GlobalTensor, LocalTensor, DataCopy, DataCopyPad, the level-2 (count)
// vector instructions, Duplicate, Cast, PipeBarrier, GetBlockIdx/GetBlockNum. Written from the
// documentation, not from Huawei's headers; every documented constraint fails loudly.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <type_traits>
#include <vector>

#include "kiln_model.h"

#define __aicore__
#define __global__
#define __gm__
using GM_ADDR = uint8_t*;
using half = _Float16;

enum KernelType {
    KERNEL_TYPE_AIV_ONLY = 1,
    KERNEL_TYPE_AIC_ONLY,
    KERNEL_TYPE_MIX_AIV_1_0,
    KERNEL_TYPE_MIX_AIC_1_0,
    KERNEL_TYPE_MIX_AIC_1_1,
    KERNEL_TYPE_MIX_AIC_1_2,
};
#define KERNEL_TASK_TYPE_DEFAULT(t) (::kiln_model::st().kernel_type = (t))

// The runner defines KILN_TILING_TYPE as the op's tiling data class before the kernel.
#define GET_TILING_DATA(var, ptr) \
    KILN_TILING_TYPE var;         \
    std::memcpy(&var, (ptr), sizeof(var))

enum pipe_t { PIPE_S, PIPE_V, PIPE_M, PIPE_MTE1, PIPE_MTE2, PIPE_MTE3, PIPE_ALL };

namespace AscendC {

enum class TPosition { GM, A1, A2, B1, B2, C1, C2, CO1, CO2, VECIN, VECOUT, VECCALC, SPM, TSCM, C2PIPE2GM, C2PIPE2LOCAL };
using QuePosition = TPosition;

enum class RoundMode { CAST_NONE, CAST_RINT, CAST_FLOOR, CAST_CEIL, CAST_ROUND, CAST_TRUNC, CAST_ODD };

inline int64_t GetBlockIdx() { return ::kiln_model::st().block_idx; }
inline int64_t GetBlockNum() { return ::kiln_model::st().block_num; }

template <pipe_t P>
inline void PipeBarrier() {}

template <typename T>
class LocalTensor {
public:
    LocalTensor() = default;
    LocalTensor(int buf, size_t off, size_t len, uint32_t gen) : buf_(buf), off_(off), len_(len), gen_(gen) {}

    LocalTensor operator[](uint32_t offset) const
    {
        if (offset > len_) {
            ::kiln_model::fail("LocalTensor[%u] is past the tensor's %zu elements", offset, len_);
        }
        return LocalTensor(buf_, off_ + offset * sizeof(T), len_ - offset, gen_);
    }

    /// The elements, after checking that the tensor may be used now by `api` for `n` of them.
    T* use(const char* api, int64_t n) const
    {
        if (buf_ < 0) {
            ::kiln_model::fail("%s: a LocalTensor that no queue or TBuf gave", api);
        }
        auto& s = ::kiln_model::st();
        if (static_cast<size_t>(buf_) >= s.bufs.size()) {
            ::kiln_model::fail("%s: a LocalTensor of a pipe that no longer exists", api);
        }
        const auto& b = s.bufs[buf_];
        if (b.gen != gen_ || b.state == ::kiln_model::BufState::Free || b.state == ::kiln_model::BufState::Queued) {
            ::kiln_model::fail("%s: a tensor of queue %d used while it is %s", api, b.queue,
                               b.gen != gen_ ? "freed" : ::kiln_model::state_name(b.state));
        }
        if (n < 0 || static_cast<size_t>(n) > len_) {
            ::kiln_model::fail("%s: %lld elements of a local tensor of %zu", api, static_cast<long long>(n), len_);
        }
        return reinterpret_cast<T*>(s.ub + off_);
    }

    size_t ub_offset() const { return off_; }
    int buf() const { return buf_; }
    uint32_t gen() const { return gen_; }
    size_t GetSize() const { return len_; }

private:
    int buf_ = -1;
    size_t off_ = 0;
    size_t len_ = 0;
    uint32_t gen_ = 0;
};

template <typename T>
class GlobalTensor {
public:
    void SetGlobalBuffer(__gm__ T* p, uint64_t len)
    {
        ::kiln_model::check_gm(p, len * sizeof(T), "SetGlobalBuffer");
        p_ = p;
        len_ = len;
    }

    GlobalTensor operator[](uint64_t offset) const
    {
        if (offset > len_) {
            ::kiln_model::fail("GlobalTensor[%llu] is past the tensor's %llu elements", static_cast<unsigned long long>(offset),
                               static_cast<unsigned long long>(len_));
        }
        GlobalTensor g;
        g.p_ = p_ + offset;
        g.len_ = len_ - offset;
        return g;
    }

    T GetValue(uint64_t i) const { return *at(i, 1, "GlobalTensor::GetValue"); }
    void SetValue(uint64_t i, T v) { *at(i, 1, "GlobalTensor::SetValue") = v; }

    T* at(uint64_t i, uint64_t n, const char* api) const
    {
        if (p_ == nullptr) {
            ::kiln_model::fail("%s: a GlobalTensor with no buffer set", api);
        }
        if (i + n > len_) {
            ::kiln_model::fail("%s: elements [%llu, %llu) of a GlobalTensor of %llu", api, static_cast<unsigned long long>(i),
                               static_cast<unsigned long long>(i + n), static_cast<unsigned long long>(len_));
        }
        ::kiln_model::check_gm(p_ + i, n * sizeof(T), api);
        return p_ + i;
    }

private:
    T* p_ = nullptr;
    uint64_t len_ = 0;
};

template <TPosition POS, int32_t DEPTH>
class TQue {
public:
    template <typename T>
    LocalTensor<T> AllocTensor()
    {
        auto& s = ::kiln_model::st();
        check_init("AllocTensor");
        for (int b : bufs_) {
            if (s.bufs[b].state == ::kiln_model::BufState::Free) {
                s.bufs[b].state = ::kiln_model::BufState::Allocated;
                return LocalTensor<T>(b, s.bufs[b].off, s.bufs[b].bytes / sizeof(T), s.bufs[b].gen);
            }
        }
        ::kiln_model::fail("AllocTensor: all %zu buffers of queue %d are in use (a FreeTensor is missing)", bufs_.size(), id_);
    }

    template <typename T>
    void EnQue(const LocalTensor<T>& t)
    {
        auto& s = ::kiln_model::st();
        check_mine(t.buf(), "EnQue");
        auto& b = s.bufs[t.buf()];
        if (b.gen != t.gen() || b.state != ::kiln_model::BufState::Allocated) {
            ::kiln_model::fail("EnQue: queue %d's tensor is %s, not freshly allocated", id_, ::kiln_model::state_name(b.state));
        }
        if (static_cast<int32_t>(fifo_.size()) >= DEPTH) {
            ::kiln_model::fail("EnQue: queue %d already holds its depth of %d tensors", id_, DEPTH);
        }
        b.state = ::kiln_model::BufState::Queued;
        fifo_.push_back(t.buf());
    }

    template <typename T>
    LocalTensor<T> DeQue()
    {
        auto& s = ::kiln_model::st();
        check_init("DeQue");
        if (fifo_.empty()) {
            ::kiln_model::fail("DeQue: queue %d is empty (no EnQue before it)", id_);
        }
        int b = fifo_.front();
        fifo_.pop_front();
        s.bufs[b].state = ::kiln_model::BufState::Dequeued;
        return LocalTensor<T>(b, s.bufs[b].off, s.bufs[b].bytes / sizeof(T), s.bufs[b].gen);
    }

    template <typename T>
    void FreeTensor(const LocalTensor<T>& t)
    {
        auto& s = ::kiln_model::st();
        check_mine(t.buf(), "FreeTensor");
        auto& b = s.bufs[t.buf()];
        if (b.gen != t.gen() || b.state != ::kiln_model::BufState::Dequeued) {
            ::kiln_model::fail("FreeTensor: queue %d's tensor is %s, not dequeued", id_, b.gen != t.gen() ? "already freed" : ::kiln_model::state_name(b.state));
        }
        b.state = ::kiln_model::BufState::Free;
        b.gen++;
    }

    void init(int id, const std::vector<int>& bufs)
    {
        id_ = id;
        bufs_ = bufs;
    }

private:
    void check_init(const char* api) const
    {
        if (bufs_.empty()) {
            ::kiln_model::fail("%s: a queue no InitBuffer gave buffers", api);
        }
    }

    void check_mine(int b, const char* api) const
    {
        for (int x : bufs_) {
            if (x == b) {
                return;
            }
        }
        ::kiln_model::fail("%s: a tensor that is not queue %d's", api, id_);
    }

    int id_ = -1;
    std::vector<int> bufs_;
    std::deque<int> fifo_;
};

template <TPosition POS>
class TBuf {
public:
    template <typename T>
    LocalTensor<T> Get() const
    {
        if (buf_ < 0) {
            ::kiln_model::fail("TBuf::Get: a TBuf no InitBuffer gave memory");
        }
        const auto& b = ::kiln_model::st().bufs[buf_];
        return LocalTensor<T>(buf_, b.off, b.bytes / sizeof(T), b.gen);
    }

    void init(int b) { buf_ = b; }

private:
    int buf_ = -1;
};

class TPipe {
public:
    TPipe() { ::kiln_model::reset_core(); }

    ~TPipe()
    {
        for (const auto& b : ::kiln_model::st().bufs) {
            if (b.queue >= 0 && b.state != ::kiln_model::BufState::Free) {
                ::kiln_model::fail("the kernel returned with a buffer of queue %d still %s", b.queue, ::kiln_model::state_name(b.state));
            }
        }
    }

    template <TPosition POS, int32_t DEPTH>
    void InitBuffer(TQue<POS, DEPTH>& que, uint8_t num, uint32_t len)
    {
        auto& s = ::kiln_model::st();
        if (num < 1) {
            ::kiln_model::fail("InitBuffer: a queue of %u buffers", num);
        }
        int id = s.queues++;
        std::vector<int> ids;
        for (uint8_t i = 0; i < num; i++) {
            size_t off = ::kiln_model::alloc_ub(len, "InitBuffer");
            s.bufs.push_back({off, len, ::kiln_model::BufState::Free, 0, id});
            ids.push_back(static_cast<int>(s.bufs.size() - 1));
        }
        que.init(id, ids);
    }

    template <TPosition POS>
    void InitBuffer(TBuf<POS>& buf, uint32_t len)
    {
        auto& s = ::kiln_model::st();
        size_t off = ::kiln_model::alloc_ub(len, "InitBuffer");
        s.bufs.push_back({off, len, ::kiln_model::BufState::Calc, 0, -1});
        buf.init(static_cast<int>(s.bufs.size() - 1));
    }
};

// ---- data movement ----

template <typename T>
void check_aligned(const LocalTensor<T>& t, const char* api)
{
    if (t.ub_offset() % 32 != 0) {
        ::kiln_model::fail("%s: a local tensor at UB offset %zu, not 32-byte aligned", api, t.ub_offset());
    }
}

template <typename T>
void check_blocks(uint32_t count, const char* api)
{
    if ((count * sizeof(T)) % 32 != 0) {
        ::kiln_model::fail("%s: %u elements are %zu bytes, not whole 32-byte blocks (the hardware rounds the copy down; use DataCopyPad)",
                           api, count, count * sizeof(T));
    }
}

template <typename T>
void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, uint32_t count)
{
    check_aligned(dst, "DataCopy GM->UB");
    check_blocks<T>(count, "DataCopy GM->UB");
    std::memcpy(dst.use("DataCopy GM->UB", count), src.at(0, count, "DataCopy GM->UB"), count * sizeof(T));
}

template <typename T>
void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, uint32_t count)
{
    check_aligned(src, "DataCopy UB->GM");
    check_blocks<T>(count, "DataCopy UB->GM");
    std::memcpy(dst.at(0, count, "DataCopy UB->GM"), src.use("DataCopy UB->GM", count), count * sizeof(T));
}

struct DataCopyExtParams {
    uint16_t blockCount = 1;
    uint32_t blockLen = 0;   // bytes
    uint32_t srcStride = 0;  // GM->UB: bytes between GM blocks; UB->GM: 32-byte blocks between UB blocks
    uint32_t dstStride = 0;  // GM->UB: 32-byte blocks between UB blocks; UB->GM: bytes between GM blocks
    uint32_t rsv = 0;
};

template <typename T>
struct DataCopyPadExtParams {
    bool isPad = false;
    uint8_t leftPadding = 0;
    uint8_t rightPadding = 0;
    T paddingValue = 0;
};

inline void check_pad_params(const DataCopyExtParams& p, size_t elem, const char* api)
{
    if (p.blockCount < 1 || p.blockCount > 4095) {
        ::kiln_model::fail("%s: blockCount %u is outside [1, 4095]", api, p.blockCount);
    }
    if (p.blockLen == 0 || p.blockLen > 2097151 || p.blockLen % elem != 0) {
        ::kiln_model::fail("%s: blockLen %u bytes is not a positive multiple of the %zu-byte element within 2097151", api, p.blockLen, elem);
    }
}

template <typename T>
void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyExtParams& p, const DataCopyPadExtParams<T>& pad)
{
    const char* api = "DataCopyPad GM->UB";
    check_aligned(dst, api);
    check_pad_params(p, sizeof(T), api);
    if (pad.isPad && (pad.leftPadding * sizeof(T) > 32 || pad.rightPadding * sizeof(T) > 32)) {
        ::kiln_model::fail("%s: padding of more than 32 bytes a side", api);
    }
    size_t n = p.blockLen / sizeof(T);
    size_t ub_block = (p.blockLen + 31) / 32 * 32 / sizeof(T);  // each block lands on a 32-byte boundary
    size_t gm_step = n + p.srcStride / sizeof(T);
    size_t ub_step = ub_block + p.dstStride * 32 / sizeof(T);
    size_t ub_total = (p.blockCount - 1) * ub_step + ub_block;
    T* d = dst.use(api, static_cast<int64_t>(ub_total));
    for (uint16_t b = 0; b < p.blockCount; b++) {
        const T* s = src.at(b * gm_step, n, api);
        std::memcpy(d + b * ub_step, s, n * sizeof(T));
        if (pad.isPad) {
            for (size_t i = n; i < ub_block; i++) {
                d[b * ub_step + i] = pad.paddingValue;
            }
        }
    }
}

template <typename T>
void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyExtParams& p)
{
    const char* api = "DataCopyPad UB->GM";
    check_aligned(src, api);
    check_pad_params(p, sizeof(T), api);
    size_t n = p.blockLen / sizeof(T);
    size_t ub_block = (p.blockLen + 31) / 32 * 32 / sizeof(T);
    size_t ub_step = ub_block + p.srcStride * 32 / sizeof(T);
    size_t gm_step = n + p.dstStride / sizeof(T);
    size_t ub_total = (p.blockCount - 1) * ub_step + n;
    const T* s = src.use(api, static_cast<int64_t>(ub_total));
    for (uint16_t b = 0; b < p.blockCount; b++) {
        std::memcpy(dst.at(b * gm_step, n, api), s + b * ub_step, n * sizeof(T));
    }
}

// ---- vector instructions (level 2: a count of elements) ----

template <typename T>
inline float f(T v) { return static_cast<float>(v); }

template <typename T, typename F>
void map2(const char* api, const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, int32_t n, F op)
{
    if (n <= 0) {
        ::kiln_model::fail("%s: a count of %d", api, n);
    }
    const T* x = a.use(api, n);
    const T* y = b.use(api, n);
    T* d = dst.use(api, n);
    for (int32_t i = 0; i < n; i++) {
        d[i] = static_cast<T>(op(f(x[i]), f(y[i])));
    }
}

template <typename T, typename F>
void map1(const char* api, const LocalTensor<T>& dst, const LocalTensor<T>& a, int32_t n, F op)
{
    if (n <= 0) {
        ::kiln_model::fail("%s: a count of %d", api, n);
    }
    const T* x = a.use(api, n);
    T* d = dst.use(api, n);
    for (int32_t i = 0; i < n; i++) {
        d[i] = static_cast<T>(op(f(x[i])));
    }
}

#define KILN_BINARY(NAME, EXPR)                                                                                   \
    template <typename T>                                                                                         \
    void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, const int32_t& n)     \
    {                                                                                                             \
        map2(#NAME, dst, a, b, n, [](float x, float y) { return EXPR; });                                         \
    }
KILN_BINARY(Add, x + y)
KILN_BINARY(Sub, x - y)
KILN_BINARY(Mul, x * y)
KILN_BINARY(Div, x / y)
KILN_BINARY(Max, x > y ? x : y)
KILN_BINARY(Min, x < y ? x : y)
#undef KILN_BINARY

#define KILN_SCALAR(NAME, EXPR)                                                                 \
    template <typename T>                                                                       \
    void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& a, const T& s, const int32_t& n) \
    {                                                                                           \
        float y = f(s);                                                                         \
        map1(#NAME, dst, a, n, [y](float x) { return EXPR; });                                  \
    }
KILN_SCALAR(Adds, x + y)
KILN_SCALAR(Muls, x * y)
KILN_SCALAR(Maxs, x > y ? x : y)
KILN_SCALAR(Mins, x < y ? x : y)
#undef KILN_SCALAR

#define KILN_UNARY(NAME, EXPR)                                                \
    template <typename T>                                                     \
    void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& a, const int32_t& n) \
    {                                                                         \
        map1(#NAME, dst, a, n, [](float x) { return EXPR; });                 \
    }
KILN_UNARY(Exp, std::exp(x))
KILN_UNARY(Ln, std::log(x))
KILN_UNARY(Abs, std::fabs(x))
KILN_UNARY(Sqrt, std::sqrt(x))
KILN_UNARY(Relu, x > 0.0f ? x : 0.0f)
#undef KILN_UNARY

template <typename T>
void Duplicate(const LocalTensor<T>& dst, const T& s, const int32_t& n)
{
    if (n <= 0) {
        ::kiln_model::fail("Duplicate: a count of %d", n);
    }
    T* d = dst.use("Duplicate", n);
    for (int32_t i = 0; i < n; i++) {
        d[i] = s;
    }
}

template <typename D, typename S>
void Cast(const LocalTensor<D>& dst, const LocalTensor<S>& src, const RoundMode& mode, const int32_t& n)
{
    if (n <= 0) {
        ::kiln_model::fail("Cast: a count of %d", n);
    }
    (void)mode;  // f32 <-> f16 only: exact widening, or round to nearest even (CAST_RINT; CAST_NONE rounds so too)
    const S* s = src.use("Cast", n);
    D* d = dst.use("Cast", n);
    for (int32_t i = 0; i < n; i++) {
        d[i] = static_cast<D>(s[i]);
    }
}

}  // namespace AscendC
