//! From LLVM module to PTX text (LLVM's NVPTX backend) and from PTX to cubin (`ptxas`, when
//! it is installed: `KILN_PTXAS`, `ptxas` on PATH, or the pinned nvidia-cuda-nvcc wheel in the
//! project's `.venv`).

use crate::codegen::CodegenError;
use inkwell::module::Module;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple};
use inkwell::OptimizationLevel;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The GPU architecture to generate for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Sm90,
    Sm80,
}

impl Arch {
    /// The LLVM cpu and the ptxas `-arch`.
    pub fn cpu(self) -> &'static str {
        match self {
            Arch::Sm90 => "sm_90a",
            Arch::Sm80 => "sm_80",
        }
    }
}

fn machine(arch: Arch) -> Result<TargetMachine, CodegenError> {
    Target::initialize_nvptx(&InitializationConfig::default());
    let triple = TargetTriple::create("nvptx64-nvidia-cuda");
    let target = Target::from_triple(&triple).map_err(|e| CodegenError::Llvm(e.to_string()))?;
    target
        .create_target_machine(&triple, arch.cpu(), "+ptx80", OptimizationLevel::Aggressive, RelocMode::Default, CodeModel::Default)
        .ok_or_else(|| CodegenError::Llvm(format!("no NVPTX target machine for {}", arch.cpu())))
}

/// Verifies and optimizes `m` (O3) and returns its PTX.
pub fn to_ptx(m: &Module, arch: Arch) -> Result<String, CodegenError> {
    let tm = machine(arch)?;
    m.set_triple(&tm.get_triple());
    m.set_data_layout(&tm.get_target_data().get_data_layout());
    m.verify().map_err(|e| CodegenError::Internal(format!("invalid LLVM IR: {}", e.to_string())))?;
    m.run_passes("default<O3>", &tm, PassBuilderOptions::create()).map_err(|e| CodegenError::Llvm(e.to_string()))?;
    let buf = tm.write_to_memory_buffer(m, FileType::Assembly).map_err(|e| CodegenError::Llvm(e.to_string()))?;
    String::from_utf8(buf.as_slice().to_vec()).map_err(|_| CodegenError::Llvm("PTX is not UTF-8".into()))
}

/// The `ptxas` to use, if any.
pub fn find_ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KILN_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("ptxas"))
        .find(|p| p.is_file());
    if on_path.is_some() {
        return on_path;
    }
    // The wheel the project pins (tools/ensure-deps.sh --python), from the current directory
    // or the workspace this binary was built in.
    let roots = [std::env::current_dir().ok(), Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))];
    roots.into_iter().flatten().find_map(|r| {
        let lib = r.join(".venv/lib");
        std::fs::read_dir(&lib).ok()?.flatten().map(|e| e.path().join("site-packages/nvidia/cu13/bin/ptxas")).find(|p| p.is_file())
    })
}

/// Assembles `ptx` to a cubin with `ptxas` (`-O3`); `Err` carries ptxas's diagnostics.
pub fn assemble(ptxas: &Path, ptx: &str, arch: Arch) -> Result<Vec<u8>, String> {
    let dir = std::env::temp_dir().join(format!("kiln-ptxas-{}-{}", std::process::id(), unique_suffix()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let (src, out) = (dir.join("k.ptx"), dir.join("k.cubin"));
    let res = (|| {
        std::fs::write(&src, ptx).map_err(|e| format!("writing {}: {e}", src.display()))?;
        let o = Command::new(ptxas)
            .args(["-O3", "-arch", arch.cpu()])
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .output()
            .map_err(|e| format!("running {}: {e}", ptxas.display()))?;
        if !o.status.success() {
            return Err(format!("ptxas failed: {}", String::from_utf8_lossy(&o.stderr).trim()));
        }
        std::fs::read(&out).map_err(|e| format!("reading {}: {e}", out.display()))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    res
}

/// A per-process counter, so that concurrent assemblies use distinct directories.
fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
