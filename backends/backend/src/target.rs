//! The targets kiln compiles for.

use std::fmt;
use std::str::FromStr;

/// A compilation target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Target {
    /// The reference interpreter: optimized, verified IR text.
    #[cfg_attr(feature = "clap", value(name = "ref"))]
    Ref,
    /// Host CPU through Cranelift (not built yet).
    #[cfg_attr(feature = "clap", value(name = "cpu"))]
    Cpu,
    /// NVIDIA Hopper (H100/H200).
    #[cfg_attr(feature = "clap", value(name = "sm_90", alias = "sm90", alias = "sm_90a"))]
    Sm90,
    /// NVIDIA Ampere (A100).
    #[cfg_attr(feature = "clap", value(name = "sm_80", alias = "sm80"))]
    Sm80,
    /// Huawei Ascend 910B: a GE graph bundle for CANN's ATC.
    #[cfg_attr(feature = "clap", value(name = "910b", alias = "ascend910b", alias = "ascend"))]
    Ascend910B,
}

impl Target {
    pub const ALL: [Target; 5] = [Target::Ref, Target::Cpu, Target::Sm90, Target::Sm80, Target::Ascend910B];

    pub fn name(self) -> &'static str {
        match self {
            Target::Ref => "ref",
            Target::Cpu => "cpu",
            Target::Sm90 => "sm_90",
            Target::Sm80 => "sm_80",
            Target::Ascend910B => "910b",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("unknown target `{0}` (expected one of: ref, cpu, sm_90, sm_80, 910b)")]
    Unknown(String),
    #[error("target {0} is not built yet in this version of kiln: it compiles for `ref` (the reference interpreter), `sm_90`, `sm_80` and `910b` today")]
    NotBuilt(Target),
}

impl FromStr for Target {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Target, TargetError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "ref" => Target::Ref,
            "cpu" => Target::Cpu,
            "sm_90" | "sm90" | "sm_90a" => Target::Sm90,
            "sm_80" | "sm80" => Target::Sm80,
            "910b" | "ascend910b" | "ascend" => Target::Ascend910B,
            _ => return Err(TargetError::Unknown(s.to_string())),
        })
    }
}
