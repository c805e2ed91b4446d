// kiln's CPU model of the host-side op registration of CANN's register/op_def_registry.h
// (ASCEND.md §4.4): OpDef with its inputs, outputs, shape and dtype inference and tiling
// function, and the gert contexts those functions see. OP_ADD registers the op by name so that
// the runner (kiln_run.h) finds it as GE would.
#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../kiln_model.h"

namespace ge {
enum DataType { DT_FLOAT = 0, DT_FLOAT16 = 1, DT_INT8 = 2, DT_INT32 = 3, DT_BF16 = 27 };
enum Format { FORMAT_NCHW = 0, FORMAT_NHWC = 1, FORMAT_ND = 2 };
using graphStatus = uint32_t;
constexpr graphStatus GRAPH_SUCCESS = 0;
constexpr graphStatus GRAPH_FAILED = 0xFFFFFFFF;
}  // namespace ge

namespace gert {
class Shape {
public:
    Shape() = default;
    explicit Shape(std::vector<int64_t> d) : d_(std::move(d)) {}
    size_t GetDimNum() const { return d_.size(); }
    int64_t GetDim(size_t i) const { return i < d_.size() ? d_[i] : 0; }
    void SetDimNum(size_t n) { d_.resize(n, 1); }
    void SetDim(size_t i, int64_t v)
    {
        if (i >= d_.size()) {
            ::kiln_model::fail("Shape::SetDim(%zu) of a %zu-D shape", i, d_.size());
        }
        d_[i] = v;
    }
    int64_t GetShapeSize() const
    {
        int64_t n = 1;
        for (auto v : d_) {
            n *= v;
        }
        return n;
    }
    const std::vector<int64_t>& dims() const { return d_; }

private:
    std::vector<int64_t> d_;
};

class StorageShape {
public:
    explicit StorageShape(Shape s) : origin_(s), storage_(s) {}
    const Shape& GetOriginShape() const { return origin_; }
    const Shape& GetStorageShape() const { return storage_; }

private:
    Shape origin_;
    Shape storage_;
};

class TilingData {
public:
    void* GetData() { return buf_.data(); }
    size_t GetCapacity() const { return buf_.size(); }
    void SetDataSize(size_t n) { size_ = n; }
    size_t size() const { return size_; }
    std::vector<uint8_t>& bytes() { return buf_; }

private:
    std::vector<uint8_t> buf_ = std::vector<uint8_t>(64 * 1024);
    size_t size_ = 0;
};

class TilingContext {
public:
    explicit TilingContext(std::vector<StorageShape> in) : in_(std::move(in)) {}
    const StorageShape* GetInputShape(size_t i) const
    {
        if (i >= in_.size()) {
            ::kiln_model::fail("TilingContext::GetInputShape(%zu) of an op with %zu inputs", i, in_.size());
        }
        return &in_[i];
    }
    void SetBlockDim(uint32_t n) { block_dim_ = n; }
    uint32_t block_dim() const { return block_dim_; }
    TilingData* GetRawTilingData() { return &tiling_; }
    size_t* GetWorkspaceSizes(size_t n)
    {
        ws_.assign(n, 0);
        return ws_.data();
    }
    size_t workspace() const { return ws_.empty() ? 0 : ws_[0]; }

private:
    std::vector<StorageShape> in_;
    uint32_t block_dim_ = 0;
    TilingData tiling_;
    std::vector<size_t> ws_;
};

class InferShapeContext {
public:
    InferShapeContext(std::vector<Shape> in, size_t outs) : in_(std::move(in)), out_(outs) {}
    const Shape* GetInputShape(size_t i) const
    {
        if (i >= in_.size()) {
            ::kiln_model::fail("InferShapeContext::GetInputShape(%zu) of an op with %zu inputs", i, in_.size());
        }
        return &in_[i];
    }
    Shape* GetOutputShape(size_t i)
    {
        if (i >= out_.size()) {
            ::kiln_model::fail("InferShapeContext::GetOutputShape(%zu) of an op with %zu outputs", i, out_.size());
        }
        return &out_[i];
    }
    const std::vector<Shape>& outputs() const { return out_; }

private:
    std::vector<Shape> in_;
    std::vector<Shape> out_;
};

class InferDataTypeContext {
public:
    InferDataTypeContext(std::vector<ge::DataType> in, size_t outs) : in_(std::move(in)), out_(outs, ge::DT_FLOAT) {}
    ge::DataType GetInputDataType(size_t i) const { return i < in_.size() ? in_[i] : ge::DT_FLOAT; }
    void SetOutputDataType(size_t i, ge::DataType d)
    {
        if (i >= out_.size()) {
            ::kiln_model::fail("SetOutputDataType(%zu) of an op with %zu outputs", i, out_.size());
        }
        out_[i] = d;
    }
    const std::vector<ge::DataType>& outputs() const { return out_; }

private:
    std::vector<ge::DataType> in_;
    std::vector<ge::DataType> out_;
};
}  // namespace gert

namespace ops {
enum Option { IGNORE, OPTIONAL, REQUIRED, DYNAMIC, VIRTUAL };

class OpParamDef {
public:
    explicit OpParamDef(std::string name) : name(std::move(name)) {}
    OpParamDef& ParamType(Option o)
    {
        option = o;
        return *this;
    }
    OpParamDef& DataType(std::vector<ge::DataType> t)
    {
        types = std::move(t);
        return *this;
    }
    OpParamDef& Format(std::vector<ge::Format> f)
    {
        formats = std::move(f);
        return *this;
    }
    OpParamDef& UnknownShapeFormat(std::vector<ge::Format> f)
    {
        (void)f;
        return *this;
    }

    std::string name;
    Option option = REQUIRED;
    std::vector<ge::DataType> types;
    std::vector<ge::Format> formats;
};

using TilingFunc = ge::graphStatus (*)(gert::TilingContext*);
using InferShapeFunc = ge::graphStatus (*)(gert::InferShapeContext*);
using InferDataTypeFunc = ge::graphStatus (*)(gert::InferDataTypeContext*);

class OpAICoreDef {
public:
    OpAICoreDef& SetTiling(TilingFunc f)
    {
        tiling = f;
        return *this;
    }
    OpAICoreDef& AddConfig(const char* soc)
    {
        socs.emplace_back(soc);
        return *this;
    }
    TilingFunc tiling = nullptr;
    std::vector<std::string> socs;
};

class OpDef {
public:
    explicit OpDef(const char* name) : name_(name) {}
    virtual ~OpDef() = default;
    OpParamDef& Input(const char* n)
    {
        inputs.emplace_back(n);
        return inputs.back();
    }
    OpParamDef& Output(const char* n)
    {
        outputs.emplace_back(n);
        return outputs.back();
    }
    OpDef& SetInferShape(InferShapeFunc f)
    {
        infer_shape = f;
        return *this;
    }
    OpDef& SetInferDataType(InferDataTypeFunc f)
    {
        infer_dtype = f;
        return *this;
    }
    OpAICoreDef& AICore() { return aicore; }

    std::deque<OpParamDef> inputs;
    std::deque<OpParamDef> outputs;
    InferShapeFunc infer_shape = nullptr;
    InferDataTypeFunc infer_dtype = nullptr;
    OpAICoreDef aicore;
    std::string name_;
};

inline std::map<std::string, std::unique_ptr<OpDef>>& registry()
{
    static auto* r = new std::map<std::string, std::unique_ptr<OpDef>>();
    return *r;
}

struct Registrar {
    Registrar(const char* name, OpDef* def) { registry()[name].reset(def); }
};
}  // namespace ops

#define OP_ADD(cls) static ::ops::Registrar kiln_registrar_##cls(#cls, new cls(#cls))
