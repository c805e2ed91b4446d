//! The targets kiln compiles for and what each can do today.
//!
//! [`artifact`] defines `model.kiln`, the file the CUDA backend writes and the runtime reads.
//! Targets whose code generation is not built yet say so through [`Target::status`].
//!
//! ```
//! use kiln_target::Target;
//! let t: Target = "sm_90".parse().unwrap();
//! assert_eq!(t, Target::Sm90);
//! assert!(t.status().is_ok());
//! assert!(Target::Cpu.status().is_err());
//! ```

pub mod artifact;

use std::fmt;
use std::str::FromStr;

/// A compilation target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The reference interpreter (no code generation).
    Ref,
    /// Host CPU through cranelift.
    Cpu,
    /// NVIDIA Hopper (H100/H200).
    Sm90,
    /// NVIDIA Ampere (A100).
    Sm80,
    /// Huawei Ascend 910B.
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

    /// `Ok` when kiln can produce output for this target, otherwise why not.
    pub fn status(self) -> Result<(), TargetError> {
        match self {
            Target::Ref | Target::Sm90 | Target::Sm80 | Target::Ascend910B => Ok(()),
            Target::Cpu => Err(TargetError::NotBuilt(self)),
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
    #[error("target {0} is not built yet in this version of kiln: it runs models on `ref` (the reference interpreter), `sm_90` and `sm_80` today")]
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
