//! Runs a bundle's AscendC custom operators (`ops/<op>/op_host`, `ops/<op>/op_kernel`) on
//! kiln's CPU model of the AscendC API (`backends/ascend/ascendc_model/`, see its README): the op's
//! unmodified sources are compiled with g++ against the model, then run as GE would run them
//! (dtype and shape inference, the tiling function, the kernel once per block). Every
//! documented constraint the kernel breaks (UB capacity, 32-byte DataCopy, queue discipline,
//! GM bounds, block count) ends the run with the model's message. Built runners are cached
//! under the system temp dir (`kiln-ascendc-cpu/`), keyed by a hash of every source they
//! compile.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use kiln_ir::DType;

/// The model's headers, written beside each build (so an installed `kiln` needs no checkout).
const MODEL: [(&str, &str); 5] = [
    ("kiln_model.h", include_str!("../../ascendc_model/kiln_model.h")),
    ("kernel_operator.h", include_str!("../../ascendc_model/kernel_operator.h")),
    ("kiln_run.h", include_str!("../../ascendc_model/kiln_run.h")),
    ("register/tilingdata_base.h", include_str!("../../ascendc_model/register/tilingdata_base.h")),
    ("register/op_def_registry.h", include_str!("../../ascendc_model/register/op_def_registry.h")),
];

/// One input or output of a run: dtype, dims, little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    pub dtype: DType,
    pub dims: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// What the model reports of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub blocks: u32,
    pub ub_peak: usize,
}

/// The custom ops of one bundle's `ops/` directory, each built once.
#[derive(Debug)]
pub struct CpuOps {
    dir: PathBuf,
    built: Mutex<HashMap<String, PathBuf>>,
}

fn model_dtype(d: DType) -> Result<&'static str, String> {
    match d {
        DType::F32 => Ok("f32"),
        DType::F16 => Ok("f16"),
        other => Err(format!("the CPU model runs f32 and f16 tensors, not {other}")),
    }
}

impl CpuOps {
    pub fn new(ops_dir: &Path) -> CpuOps {
        CpuOps { dir: ops_dir.to_path_buf(), built: Mutex::new(HashMap::new()) }
    }

    /// The project registering `op_type` (`OP_ADD(op_type)` in its op_host): its directory and
    /// file stem.
    pub fn project(&self, op_type: &str) -> Option<(PathBuf, String)> {
        let needle = format!("OP_ADD({op_type});");
        for e in std::fs::read_dir(&self.dir).ok()?.flatten() {
            let host = e.path().join("op_host");
            for f in std::fs::read_dir(&host).into_iter().flatten().flatten() {
                let p = f.path();
                if p.extension().is_some_and(|x| x == "cpp") && std::fs::read_to_string(&p).is_ok_and(|t| t.contains(&needle)) {
                    let stem = p.file_stem()?.to_str()?.to_string();
                    return Some((e.path(), stem));
                }
            }
        }
        None
    }

    /// Runs `op_type` on `inputs`; its output is `out` (dtype and dims, as the graph declares).
    pub fn run(&self, op_type: &str, inputs: &[Buffer], out: (DType, &[usize])) -> Result<(Buffer, Report), String> {
        let exe = self.build(op_type, inputs.len())?;
        let tmp = TempDir::new(&format!("run-{op_type}"))?;
        let mut cmd = Command::new(&exe);
        cmd.arg(inputs.len().to_string());
        for (i, b) in inputs.iter().enumerate() {
            let p = tmp.0.join(format!("in{i}.bin"));
            std::fs::write(&p, &b.bytes).map_err(|e| format!("{}: {e}", p.display()))?;
            let dims = if b.dims.is_empty() { "-".to_string() } else { b.dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",") };
            cmd.arg(&p).arg(model_dtype(b.dtype)?).arg(dims);
        }
        let out_path = tmp.0.join("out.bin");
        cmd.arg(&out_path);
        let o = cmd.output().map_err(|e| format!("running {}: {e}", exe.display()))?;
        if !o.status.success() {
            return Err(format!("{op_type}: {}", String::from_utf8_lossy(&o.stderr).trim()));
        }
        let bytes = std::fs::read(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
        let want = out.1.iter().product::<usize>() * out.0.bits() / 8;
        if bytes.len() != want {
            return Err(format!("{op_type} wrote {} bytes; its output {}{:?} has {want}", bytes.len(), out.0, out.1));
        }
        let text = String::from_utf8_lossy(&o.stdout);
        let field = |k: &str| text.split_whitespace().find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse::<usize>().ok());
        let (Some(blocks), Some(ub_peak)) = (field("blocks="), field("ub_peak=")) else {
            return Err(format!("{op_type}: the runner printed `{}`", text.trim()));
        };
        Ok((Buffer { dtype: out.0, dims: out.1.to_vec(), bytes }, Report { blocks: blocks as u32, ub_peak }))
    }

    /// The runner of `op_type`, compiled once per content.
    fn build(&self, op_type: &str, n_inputs: usize) -> Result<PathBuf, String> {
        if let Some(p) = self.built.lock().map_err(|_| "a poisoned lock".to_string())?.get(op_type) {
            return Ok(p.clone());
        }
        let (project, stem) = self.project(op_type).ok_or_else(|| format!("no project in {} registers {op_type}", self.dir.display()))?;
        let args: String = (0..=n_inputs).map(|i| format!("a[{i}], ")).collect();
        let main = format!(
            "#include \"kiln_run.h\"\n#include \"op_host/{stem}.cpp\"\n#define KILN_TILING_TYPE optiling::{op_type}TilingData\n#include \"op_kernel/{stem}.cpp\"\n\nint main(int argc, char** argv)\n{{\n    return kiln_model::run_op(\"{op_type}\", argc, argv, [](std::vector<uint8_t*>& a, uint8_t* ws, uint8_t* t) {{ {stem}({args}ws, t); }});\n}}\n"
        );
        let sources = [format!("op_host/{stem}.cpp"), format!("op_host/{stem}_tiling.h"), format!("op_kernel/{stem}.cpp")];
        let mut h = std::collections::hash_map::DefaultHasher::new();
        main.hash(&mut h);
        for (_, text) in MODEL {
            text.hash(&mut h);
        }
        for s in &sources {
            std::fs::read(project.join(s)).map_err(|e| format!("{}: {e}", project.join(s).display()))?.hash(&mut h);
        }
        let dir = std::env::temp_dir().join("kiln-ascendc-cpu").join(format!("{op_type}-{:016x}", h.finish()));
        let exe = dir.join("run");
        if !exe.exists() {
            std::fs::create_dir_all(dir.join("model/register")).map_err(|e| format!("{}: {e}", dir.display()))?;
            for (name, text) in MODEL {
                std::fs::write(dir.join("model").join(name), text).map_err(|e| format!("{name}: {e}"))?;
            }
            std::fs::write(dir.join("main.cpp"), &main).map_err(|e| format!("main.cpp: {e}"))?;
            let tmp = dir.join(format!("run.{}.tmp", std::process::id()));
            let o = Command::new("g++")
                .args(["-std=c++17", "-O0", "-Wall", "-Werror", "-Wno-unused-function"])
                .arg("-I")
                .arg(dir.join("model"))
                .arg("-I")
                .arg(&project)
                .arg("-I")
                .arg(project.join("op_host"))
                .arg(dir.join("main.cpp"))
                .arg("-o")
                .arg(&tmp)
                .output()
                .map_err(|e| format!("running g++ (the AscendC CPU model needs it): {e}"))?;
            if !o.status.success() {
                return Err(format!("{op_type} does not compile against the AscendC CPU model:\n{}", String::from_utf8_lossy(&o.stderr)));
            }
            std::fs::rename(&tmp, &exe).map_err(|e| format!("{}: {e}", exe.display()))?;
        }
        self.built.lock().map_err(|_| "a poisoned lock".to_string())?.insert(op_type.to_string(), exe.clone());
        Ok(exe)
    }
}

/// A fresh directory under the system's temp dir, removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir, String> {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("kiln-ascendc-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
