#!/usr/bin/env python3
"""Decodes a graph.air with Python's protobuf library, independently of kiln's Rust encoder.

The schema (package ge.proto: ModelDef, GraphDef, OpDef, TensorDescriptor, ShapeDef, TensorDef,
AttrDef, ListValue, NamedAttrs, ListListInt) is built here as descriptors from the field tables
of GE's ge_ir.proto as documented in ../shared/ASCEND.md section 1.2; no generated code and no
copied .proto. The script checks the conventions of section 1.5/1.6/7.1 and prints a JSON
summary: op counts by type, data inputs, outputs, constant bytes. Exit status 1 lists every
broken convention.

Run: .venv/bin/python testsuite/ascend/decode_air.py BUNDLE/graph.air
"""
import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
STR, BYTES, I64, I32, U32, FLT, BOOL, MSG, ENUM = (F.TYPE_STRING, F.TYPE_BYTES, F.TYPE_INT64, F.TYPE_INT32,
                                                 F.TYPE_UINT32, F.TYPE_FLOAT, F.TYPE_BOOL, F.TYPE_MESSAGE, F.TYPE_ENUM)

# name: [(field, number, type, label, message type or None, oneof?)]
MESSAGES = {
    "ModelDef": [("name", 1, STR, OPT, None), ("version", 2, U32, OPT, None), ("custom_version", 3, STR, OPT, None),
                 ("graph", 7, MSG, REP, "GraphDef"), ("attr", 11, "map", REP, "AttrDef")],
    "GraphDef": [("name", 1, STR, OPT, None), ("input", 4, STR, REP, None), ("output", 5, STR, REP, None),
                 ("op", 6, MSG, REP, "OpDef"), ("attr", 11, "map", REP, "AttrDef")],
    "OpDef": [("name", 1, STR, OPT, None), ("type", 2, STR, OPT, None), ("input", 5, STR, REP, None),
              ("attr", 10, "map", REP, "AttrDef"), ("has_out_attr", 20, BOOL, OPT, None), ("id", 21, I64, OPT, None),
              ("input_desc", 33, MSG, REP, "TensorDescriptor"), ("output_desc", 34, MSG, REP, "TensorDescriptor")],
    "TensorDescriptor": [("name", 1, STR, OPT, None), ("dtype", 2, ENUM, OPT, "DataType"), ("shape", 3, MSG, OPT, "ShapeDef"),
                         ("layout", 4, STR, OPT, None), ("attr", 5, "map", REP, "AttrDef"), ("size", 10, I64, OPT, None),
                         ("device_type", 14, STR, OPT, None)],
    "ShapeDef": [("dim", 1, I64, REP, None)],
    "TensorDef": [("desc", 1, MSG, OPT, "TensorDescriptor"), ("data", 2, BYTES, OPT, None)],
    "NamedAttrs": [("name", 1, STR, OPT, None), ("attr", 2, "map", REP, "AttrDef")],
    "ListInt": [("list_i", 1, I64, REP, None)],
    "ListListInt": [("list_list_i", 1, MSG, REP, "ListInt")],
    "ListValue": [("s", 2, BYTES, REP, None), ("i", 3, I64, REP, None), ("f", 4, FLT, REP, None), ("b", 5, BOOL, REP, None),
                  ("bt", 7, BYTES, REP, None), ("td", 8, MSG, REP, "TensorDescriptor"), ("t", 9, MSG, REP, "TensorDef"),
                  ("g", 10, MSG, REP, "GraphDef"), ("na", 11, MSG, REP, "NamedAttrs"), ("dt", 12, I64, REP, None),
                  ("val_type", 20, ENUM, OPT, "ListValueType")],
    "AttrDef": [("list", 1, MSG, OPT, "ListValue", 0), ("s", 2, BYTES, OPT, None, 0), ("i", 3, I64, OPT, None, 0),
                ("f", 4, FLT, OPT, None, 0), ("b", 5, BOOL, OPT, None, 0), ("bt", 7, BYTES, OPT, None, 0),
                ("func", 10, MSG, OPT, "NamedAttrs", 0), ("td", 11, MSG, OPT, "TensorDescriptor", 0),
                ("t", 12, MSG, OPT, "TensorDef", 0), ("g", 13, MSG, OPT, "GraphDef", 0),
                ("list_list_int", 14, MSG, OPT, "ListListInt", 0), ("dt", 15, I64, OPT, None, 0)],
}
# Proto DataType numbers (section 1.3), and ListValueType.
DATA_TYPES = {"DT_UNDEFINED": 0, "DT_FLOAT": 1, "DT_FLOAT16": 2, "DT_INT8": 3, "DT_UINT8": 4, "DT_INT16": 5,
              "DT_UINT16": 6, "DT_INT32": 7, "DT_INT64": 8, "DT_UINT32": 9, "DT_UINT64": 10, "DT_BOOL": 11,
              "DT_DOUBLE": 12, "DT_BF16": 27}
LIST_TYPES = {"VT_LIST_NONE": 0, "VT_LIST_STRING": 1, "VT_LIST_INT": 2, "VT_LIST_FLOAT": 3, "VT_LIST_BOOL": 4,
              "VT_LIST_BYTES": 5, "VT_LIST_TENSOR_DESC": 6, "VT_LIST_TENSOR": 7, "VT_LIST_GRAPH": 8,
              "VT_LIST_NAMED_ATTRS": 9, "VT_LIST_DATA_TYPE": 10}
# C++ ge::DataType of the same types (Cast.dst_type).
CPP = {"DT_FLOAT": 0, "DT_FLOAT16": 1, "DT_INT8": 2, "DT_INT32": 3, "DT_UINT8": 4, "DT_INT16": 6, "DT_UINT16": 7,
       "DT_UINT32": 8, "DT_INT64": 9, "DT_UINT64": 10, "DT_DOUBLE": 11, "DT_BOOL": 12, "DT_BF16": 27}


def schema():
    f = descriptor_pb2.FileDescriptorProto(name="kiln_ge_ir_check.proto", package="ge.proto", syntax="proto3")
    for name, values in [("DataType", DATA_TYPES), ("ListValueType", LIST_TYPES)]:
        e = f.enum_type.add(name=name)
        for k, v in sorted(values.items(), key=lambda kv: kv[1]):
            e.value.add(name=k, number=v)
    for name, fields in MESSAGES.items():
        m = f.message_type.add(name=name)
        if any(len(x) == 6 for x in fields):
            m.oneof_decl.add(name="value")
        for x in fields:
            fname, num, ty, label, tname = x[:5]
            if ty == "map":
                entry = m.nested_type.add(name=fname.capitalize() + "Entry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, type=STR, label=OPT)
                entry.field.add(name="value", number=2, type=MSG, label=OPT, type_name=".ge.proto." + tname)
                m.field.add(name=fname, number=num, type=MSG, label=REP, type_name=f".ge.proto.{name}.{entry.name}")
                continue
            fd = m.field.add(name=fname, number=num, type=ty, label=label)
            if tname:
                fd.type_name = ".ge.proto." + tname
            if len(x) == 6:
                fd.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("ge.proto.ModelDef"))


def check(model):
    errs = []
    if len(model.graph) != 1:
        errs.append(f"{len(model.graph)} graphs")
    g = model.graph[0]
    seen, outputs, data, net = set(), {}, [], 0
    summary = {"ops": {}, "inputs": [], "outputs": list(g.output), "const_bytes": 0}
    for op in g.op:
        summary["ops"][op.type] = summary["ops"].get(op.type, 0) + 1
        if op.name in seen:
            errs.append(f"duplicate op name {op.name}")
        seen.add(op.name)
        edges = [e for e in op.input if not e.endswith(":-1")]
        if op.type != "Data" and len(edges) != len(op.input_desc):
            errs.append(f"{op.name}: {len(edges)} inputs, {len(op.input_desc)} descriptors")
        for e in edges:
            if e == "":
                continue
            src, _, idx = e.rpartition(":")
            if src not in outputs or not 0 <= int(idx) < outputs[src]:
                errs.append(f"{op.name}: input {e} is not an earlier op's output")
        descs = list(op.input_desc) + list(op.output_desc)
        for d in descs:
            unfed = "_is_unfed_optional" in d.attr and d.attr["_is_unfed_optional"].i == 1
            if not unfed and (d.dtype == 0 or not d.layout or "origin_format" not in d.attr):
                errs.append(f"{op.name}: descriptor {d.name} lacks dtype, layout or origin_format")
        attrs = list(op.attr.items()) + [(f"{d.name}.{k}", v) for d in descs for k, v in d.attr.items()]
        for k, v in attrs:
            which = v.WhichOneof("value")
            if which is None:
                errs.append(f"{op.name}: attr {k} has no value")
            elif which == "list" and v.list.val_type == 0:
                errs.append(f"{op.name}: list attr {k} has val_type 0")
        for which, ds in [("input", op.input_desc), ("output", op.output_desc)]:
            key = op.attr.get(f"_{which}_name_key")
            if key is None or [s.decode() for s in key.list.s] != [d.name for d in ds]:
                errs.append(f"{op.name}: _{which}_name_key does not match its descriptors")
        if op.type == "Data":
            data.append(op.attr["index"].i if "index" in op.attr else -1)
            summary["inputs"].append(op.name)
            if len(op.input_desc) != 1:
                errs.append(f"Data {op.name} needs input_desc[0]")
        elif op.type == "Const":
            if "value" not in op.attr or not op.attr["value"].HasField("t"):
                errs.append(f"Const {op.name} has no value")
            else:
                t = op.attr["value"].t
                summary["const_bytes"] += len(t.data)
                n = 1
                for x in t.desc.shape.dim:
                    n *= x
                size = {1: 4, 2: 2, 3: 1, 4: 1, 5: 2, 6: 2, 7: 4, 8: 8, 9: 4, 10: 8, 11: 1, 12: 8, 27: 2}.get(t.desc.dtype)
                if size is None or n * size != len(t.data):
                    errs.append(f"Const {op.name}: {len(t.data)} bytes for {n} elements of dtype {t.desc.dtype}")
        elif op.type == "FileConstant":
            # An external weight: the file it reads, and the shape and dtype it holds, which
            # must be its output's (dtype in the C++ numbering, as a Type attr).
            proto_to_cpp = {DATA_TYPES[k]: v for k, v in CPP.items()}
            out = op.output_desc[0] if op.output_desc else None
            if "value" in op.attr or not op.attr.get("file_path") or not op.attr["file_path"].s:
                errs.append(f"FileConstant {op.name} has no file_path (or a value)")
            elif out is None or list(op.attr["shape"].list.i) != list(out.shape.dim):
                errs.append(f"FileConstant {op.name}: shape does not match its output")
            elif op.attr["dtype"].WhichOneof("value") != "dt" or op.attr["dtype"].dt != proto_to_cpp.get(out.dtype):
                errs.append(f"FileConstant {op.name}: dtype is not the C++ number of its output's dtype")
            else:
                summary["file_constants"] = summary.get("file_constants", 0) + 1
        elif op.type == "NetOutput":
            net += 1
        elif op.type == "Cast":
            proto_to_cpp = {DATA_TYPES[k]: v for k, v in CPP.items()}
            if proto_to_cpp.get(op.output_desc[0].dtype) != op.attr["dst_type"].i:
                errs.append(f"Cast {op.name}: dst_type {op.attr['dst_type'].i} is not the C++ number of its output dtype")
        outputs[op.name] = len(op.output_desc)
    if sorted(data) != list(range(len(data))):
        errs.append(f"Data indices {sorted(data)}")
    if net != 1:
        errs.append(f"{net} NetOutput ops")
    return summary, errs


def main():
    model = schema()()
    with open(sys.argv[1], "rb") as f:
        model.ParseFromString(f.read())
    summary, errs = check(model)
    print(json.dumps(summary, sort_keys=True))
    if errs:
        print("\n".join(errs), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
