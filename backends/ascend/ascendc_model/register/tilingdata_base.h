// kiln's CPU model of the tiling-data macros of CANN's register/tilingdata_base.h (ASCEND.md
// §4.4, old style): a plain struct with set_/get_ accessors, saved into the raw tiling buffer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../kiln_model.h"

#define BEGIN_TILING_DATA_DEF(name) \
    struct name {
#define TILING_DATA_FIELD_DEF(type, field)        \
    type field = 0;                               \
    void set_##field(type v) { field = v; }       \
    type get_##field() const { return field; }
#define END_TILING_DATA_DEF                                                                              \
    void SaveToBuffer(void* p, size_t capacity) const                                                    \
    {                                                                                                    \
        if (sizeof(*this) > capacity) {                                                                  \
            ::kiln_model::fail("SaveToBuffer: %zu bytes of tiling data, %zu of capacity", sizeof(*this), capacity); \
        }                                                                                                \
        std::memcpy(p, this, sizeof(*this));                                                             \
    }                                                                                                    \
    size_t GetDataSize() const { return sizeof(*this); }                                                 \
    }
#define REGISTER_TILING_DATA_CLASS(op, cls)
