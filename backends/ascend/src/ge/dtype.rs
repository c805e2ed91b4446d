//! GE's two dtype numberings (../shared/ASCEND.md §1.3): the proto `DataType` of tensor
//! descriptors, and the C++ `ge::DataType` of `dt` attrs and of Int attrs that carry a dtype
//! (`Cast.dst_type`). GE translates between them by name; an emitter must use each where it
//! belongs.

use kiln_ir::DType;

/// A dtype GE knows: its name and both numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeType {
    pub name: &'static str,
    pub proto: i32,
    pub cpp: i64,
}

const fn t(name: &'static str, proto: i32, cpp: i64) -> GeType {
    GeType { name, proto, cpp }
}

/// The GE type of a kiln dtype; None where GE has none that holds the same values.
pub fn ge_type(d: DType) -> Option<GeType> {
    Some(match d {
        DType::F32 => t("DT_FLOAT", 1, 0),
        DType::F16 => t("DT_FLOAT16", 2, 1),
        DType::I8 => t("DT_INT8", 3, 2),
        DType::U8 => t("DT_UINT8", 4, 4),
        DType::I16 => t("DT_INT16", 5, 6),
        DType::U16 => t("DT_UINT16", 6, 7),
        DType::I32 => t("DT_INT32", 7, 3),
        DType::I64 => t("DT_INT64", 8, 9),
        DType::U32 => t("DT_UINT32", 9, 8),
        DType::U64 => t("DT_UINT64", 10, 10),
        DType::Bool => t("DT_BOOL", 11, 12),
        DType::F64 => t("DT_DOUBLE", 12, 11),
        DType::BF16 => t("DT_BF16", 27, 27),
        DType::I4 => t("DT_INT4", 28, 29),
        DType::U2 => t("DT_UINT2", 31, 32),
        DType::I2 => t("DT_INT2", 30, 31),
        DType::F8E5M2 => t("DT_FLOAT8_E5M2", 34, 35),
        DType::F8E4M3FN => t("DT_FLOAT8_E4M3FN", 35, 36),
        DType::F8E8M0 => t("DT_FLOAT8_E8M0", 36, 37),
        DType::F4E2M1 => t("DT_FLOAT4_E2M1", 39, 40),
        // GE has no unsigned 4-bit type, and no "FNUZ" float8 (a different exponent bias).
        DType::U4 | DType::F8E4M3FNUZ | DType::F8E5M2FNUZ => return None,
    })
}

/// The kiln dtype of a proto `DataType` number (the simulator reads descriptors with it).
pub fn from_proto(n: i32) -> Option<DType> {
    DType::ALL.into_iter().find(|&d| ge_type(d).is_some_and(|g| g.proto == n))
}

/// The kiln dtype of a C++ `ge::DataType` number.
pub fn from_cpp(n: i64) -> Option<DType> {
    DType::ALL.into_iter().find(|&d| ge_type(d).is_some_and(|g| g.cpp == n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both numberings are one-to-one over the dtypes GE has, and the documented pairs that
    /// differ (float is 1 in proto and 0 in C++, int32 7 and 3, int64 8 and 9, bool 11 and 12)
    /// are kept apart.
    #[test]
    fn numberings_are_one_to_one_and_kept_apart() {
        for d in DType::ALL {
            if let Some(g) = ge_type(d) {
                assert_eq!(from_proto(g.proto), Some(d), "{}", g.name);
                assert_eq!(from_cpp(g.cpp), Some(d), "{}", g.name);
            }
        }
        let f = ge_type(DType::F32).map(|g| (g.proto, g.cpp));
        assert_eq!(f, Some((1, 0)));
        assert_eq!(ge_type(DType::I64).map(|g| (g.proto, g.cpp)), Some((8, 9)));
        assert_eq!(ge_type(DType::Bool).map(|g| (g.proto, g.cpp)), Some((11, 12)));
    }
}
