// Runs one custom op the way GE and the runtime would, on kiln's CPU model: the registered
// OpDef's dtype and shape inference, its tiling function, then the kernel once per block on a
// fresh core. Invoked by a main() kiln_testsuite::ascendc_cpu generates per op:
//
//   run N (IN.bin f32|f16 DIMS)... OUT.bin
//
// DIMS is comma-separated ("-" for a scalar). Prints "blocks=B ub_peak=BYTES" on success.
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "kernel_operator.h"
#include "register/op_def_registry.h"

namespace kiln_model {

inline ge::DataType parse_dtype(const std::string& s)
{
    if (s == "f32") {
        return ge::DT_FLOAT;
    }
    if (s == "f16") {
        return ge::DT_FLOAT16;
    }
    fail("runner: unknown dtype `%s`", s.c_str());
}

inline size_t dtype_size(ge::DataType d) { return d == ge::DT_FLOAT16 ? 2 : 4; }

inline std::vector<int64_t> parse_dims(const std::string& s)
{
    std::vector<int64_t> d;
    if (s == "-") {
        return d;
    }
    size_t i = 0;
    while (i <= s.size()) {
        size_t j = s.find(',', i);
        if (j == std::string::npos) {
            j = s.size();
        }
        d.push_back(std::stoll(s.substr(i, j - i)));
        i = j + 1;
    }
    return d;
}

inline std::vector<uint8_t> read_file(const std::string& p)
{
    FILE* f = std::fopen(p.c_str(), "rb");
    if (!f) {
        fail("runner: cannot open %s", p.c_str());
    }
    std::vector<uint8_t> v;
    uint8_t buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        v.insert(v.end(), buf, buf + n);
    }
    std::fclose(f);
    return v;
}

using Launch = std::function<void(std::vector<uint8_t*>&, uint8_t*, uint8_t*)>;

inline int run_op(const char* op, int argc, char** argv, const Launch& launch)
{
    if (argc < 3) {
        fail("runner: usage: run N (IN f32|f16 DIMS)... OUT");
    }
    size_t n = std::stoul(argv[1]);
    if (argc != static_cast<int>(3 + 3 * n)) {
        fail("runner: %zu inputs need %zu arguments", n, 2 + 3 * n);
    }
    auto it = ops::registry().find(op);
    if (it == ops::registry().end()) {
        fail("no OP_ADD registered the op type %s", op);
    }
    ops::OpDef& def = *it->second;
    if (def.inputs.size() != n || def.outputs.size() != 1) {
        fail("%s declares %zu inputs and %zu outputs; it is run with %zu and 1", op, def.inputs.size(), def.outputs.size(), n);
    }
    if (!def.infer_shape || !def.infer_dtype || !def.aicore.tiling) {
        fail("%s lacks shape inference, dtype inference or a tiling function", op);
    }
    std::vector<std::vector<uint8_t>> data;
    std::vector<gert::Shape> shapes;
    std::vector<ge::DataType> dtypes;
    for (size_t i = 0; i < n; i++) {
        data.push_back(read_file(argv[2 + 3 * i]));
        dtypes.push_back(parse_dtype(argv[3 + 3 * i]));
        shapes.emplace_back(parse_dims(argv[4 + 3 * i]));
        const auto& decl = def.inputs[i].types;
        bool ok = false;
        for (auto t : decl) {
            ok = ok || t == dtypes[i];
        }
        if (!ok) {
            fail("%s input %zu (%s) is declared without the dtype it is given", op, i, def.inputs[i].name.c_str());
        }
        if (data[i].size() != static_cast<size_t>(shapes[i].GetShapeSize()) * dtype_size(dtypes[i])) {
            fail("runner: input %zu holds %zu bytes, its shape needs %lld", i, data[i].size(),
                 static_cast<long long>(shapes[i].GetShapeSize() * dtype_size(dtypes[i])));
        }
    }
    gert::InferShapeContext sc(shapes, 1);
    if (def.infer_shape(&sc) != ge::GRAPH_SUCCESS) {
        fail("%s: shape inference failed", op);
    }
    gert::InferDataTypeContext dc(dtypes, 1);
    if (def.infer_dtype(&dc) != ge::GRAPH_SUCCESS) {
        fail("%s: dtype inference failed", op);
    }
    ge::DataType out_dtype = dc.outputs()[0];
    std::vector<gert::StorageShape> storage;
    for (auto& s : shapes) {
        storage.emplace_back(s);
    }
    gert::TilingContext tc(storage);
    if (def.aicore.tiling(&tc) != ge::GRAPH_SUCCESS) {
        fail("%s: the tiling function failed for these shapes", op);
    }
    uint32_t blocks = tc.block_dim();
    size_t out_bytes = static_cast<size_t>(sc.outputs()[0].GetShapeSize()) * dtype_size(out_dtype);
    std::vector<uint8_t> out(out_bytes + 1, 0xFF);
    std::vector<uint8_t> workspace(tc.workspace() + 1);
    std::vector<uint8_t>& tiling = tc.GetRawTilingData()->bytes();
    auto& s = st();
    s.gm.clear();
    std::vector<uint8_t*> args;
    for (auto& d : data) {
        s.gm.emplace_back(d.data(), d.size());
        args.push_back(d.data());
    }
    s.gm.emplace_back(out.data(), out_bytes);
    args.push_back(out.data());
    s.gm.emplace_back(workspace.data(), tc.workspace());
    s.gm.emplace_back(tiling.data(), tc.GetRawTilingData()->size());
    s.ub_peak = 0;
    for (uint32_t b = 0; b < (blocks == 0 ? 1 : blocks); b++) {
        s.block_idx = b;
        s.block_num = blocks;
        s.kernel_type = 0;
        launch(args, workspace.data(), tiling.data());
        uint32_t cores = s.kernel_type == KERNEL_TYPE_AIV_ONLY ? AIV_CORES : AIC_CORES;
        if (blocks < 1 || blocks > cores) {
            fail("%s: the tiling sets %u blocks; a %s kernel on the 910B2 has 1 to %u", op, blocks,
                 s.kernel_type == KERNEL_TYPE_AIV_ONLY ? "vector-only" : "cube or mixed", cores);
        }
    }
    FILE* f = std::fopen(argv[2 + 3 * n], "wb");
    if (!f || std::fwrite(out.data(), 1, out_bytes, f) != out_bytes) {
        fail("runner: cannot write %s", argv[2 + 3 * n]);
    }
    std::fclose(f);
    std::printf("blocks=%u ub_peak=%zu\n", blocks, s.ub_peak);
    return 0;
}

}  // namespace kiln_model
