//! The CUDA side of a session (cudarc, libcuda loaded at run time).

use crate::{check_inputs, Error, HostTensor};
use cudarc::driver::{CudaContext, CudaFunction, CudaGraph, CudaModule, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use kiln_artifact::artifact::{sections, Arg, Artifact, Loc, Manifest, TensorInfo};
use std::path::Path;
use std::sync::Arc;

fn cuda<T>(r: Result<T, cudarc::driver::DriverError>) -> Result<T, Error> {
    r.map_err(|e| Error::Cuda(e.to_string()))
}

/// A loaded model on one GPU.
pub struct Session {
    manifest: Manifest,
    #[allow(dead_code)]
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    #[allow(dead_code)]
    module: Arc<CudaModule>,
    functions: Vec<CudaFunction>,
    arena: CudaSlice<u8>,
    #[allow(dead_code)]
    weights: CudaSlice<u8>,
    inputs: Vec<CudaSlice<u8>>,
    /// Resolved launch arguments (device addresses or scalars), one list per launch.
    args: Vec<Vec<u64>>,
    use_graph: bool,
    graph: Option<CudaGraph>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("target", &self.manifest.target).field("launches", &self.manifest.launches.len()).finish()
    }
}

impl Session {
    /// Loads `path` onto GPU 0.
    pub fn load(path: impl AsRef<Path>) -> Result<Session, Error> {
        Session::load_on(path, 0)
    }

    /// Loads `path` onto GPU `ordinal`.
    pub fn load_on(path: impl AsRef<Path>, ordinal: usize) -> Result<Session, Error> {
        let p = path.as_ref();
        let bytes = std::fs::read(p).map_err(|source| Error::Io { path: p.display().to_string(), source })?;
        Session::setup(Artifact::parse(&bytes)?, ordinal, p.parent())
    }

    /// Sets up a parsed artifact on GPU `ordinal` (the weights it references in its source
    /// model are read from their recorded paths).
    pub fn from_artifact(a: Artifact, ordinal: usize) -> Result<Session, Error> {
        Session::setup(a, ordinal, None)
    }

    /// `dir`: the artifact's directory, where referenced weights files are also looked for.
    fn setup(a: Artifact, ordinal: usize, dir: Option<&Path>) -> Result<Session, Error> {
        if !matches!(a.manifest.target.as_str(), "sm_90" | "sm_80") {
            return Err(Error::Target(a.manifest.target.clone()));
        }
        // Referenced weights are read and checked before anything touches the GPU.
        let w = a.weights_image(dir)?;
        check_device(ordinal)?;
        let ctx = cuda(CudaContext::new(ordinal))?;
        let stream = cuda(ctx.new_stream())?;
        // Prefer the cubin when it was built for this GPU; the PTX is JIT-compiled otherwise.
        let (major, minor) = cuda(ctx.compute_capability())?;
        let want_cubin = matches!((a.manifest.target.as_str(), major, minor), ("sm_90", 9, 0) | ("sm_80", 8, 0));
        let image = match (want_cubin, a.section(sections::CUBIN), a.section(sections::PTX)) {
            (true, Some(c), _) => cudarc::nvrtc::Ptx::from_binary(c.to_vec()),
            (_, _, Some(ptx)) => {
                let text = String::from_utf8(ptx.to_vec())
                    .map_err(|_| Error::Artifact(kiln_artifact::artifact::ArtifactError::Invalid("the PTX section is not text".into())))?;
                cudarc::nvrtc::Ptx::from_src(text)
            }
            _ => return Err(Error::Cuda(format!("the artifact has no code for compute capability {major}.{minor}"))),
        };
        let module = cuda(ctx.load_module(image))?;
        let functions = a.manifest.kernels.iter().map(|k| cuda(module.load_function(&k.name))).collect::<Result<Vec<_>, _>>()?;
        allow_dynamic_shared(&ctx, &a.manifest, &functions)?;
        let m = a.manifest.clone();
        let arena = cuda(stream.alloc_zeros::<u8>(m.arena_bytes.max(1) as usize))?;
        let mut weights = cuda(stream.alloc_zeros::<u8>(w.len().max(1)))?;
        if !w.is_empty() {
            cuda(stream.memcpy_htod(w.as_ref(), &mut weights))?;
        }
        let inputs = m.inputs.iter().map(|t| cuda(stream.alloc_zeros::<u8>(t.bytes().max(1) as usize))).collect::<Result<Vec<_>, _>>()?;
        let mut s =
            Session { manifest: m, ctx, stream, module, functions, arena, weights, inputs, args: vec![], use_graph: false, graph: None };
        s.args = s.manifest.launches.iter().map(|l| l.args.iter().map(|a| s.resolve(a)).collect()).collect();
        Ok(s)
    }

    fn base(&self, loc: &Loc) -> u64 {
        use cudarc::driver::DevicePtr;
        let (ptr, off) = match *loc {
            Loc::Arena { offset } => (self.arena.device_ptr(&self.stream).0, offset),
            Loc::Weights { offset } => (self.weights.device_ptr(&self.stream).0, offset),
            Loc::Input { index, offset } => (self.inputs[index as usize].device_ptr(&self.stream).0, offset),
        };
        ptr + off
    }

    fn resolve(&self, a: &Arg) -> u64 {
        match a {
            Arg::Ptr { loc, .. } => self.base(loc),
            Arg::I64 { value } => *value as u64,
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.manifest.inputs
    }
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.manifest.outputs
    }

    /// Replay the launch sequence as one CUDA graph (captured on the next run).
    pub fn set_cuda_graph(&mut self, on: bool) {
        self.use_graph = on;
        if !on {
            self.graph = None;
        }
    }

    fn launch_range(&self, n: usize) -> Result<(), Error> {
        (0..n.min(self.manifest.launches.len())).try_for_each(|i| self.launch_one(i))
    }

    fn launch_one(&self, i: usize) -> Result<(), Error> {
        let l = &self.manifest.launches[i];
        let f = &self.functions[l.kernel as usize];
        let mut b = self.stream.launch_builder(f);
        for a in &self.args[i] {
            b.arg(a);
        }
        let cfg = LaunchConfig {
            grid_dim: (l.grid[0], l.grid[1], l.grid[2]),
            block_dim: (l.block[0], l.block[1], l.block[2]),
            shared_mem_bytes: l.shared_bytes,
        };
        #[allow(unsafe_code)]
        // SAFETY: the artifact was validated: every pointer argument lies inside the arena,
        // the weights or an input buffer of this session, with the byte size the kernel
        // reads or writes, and launch shapes are within device limits.
        cuda(unsafe { b.launch(cfg) }.map(|_| ()))
    }

    /// Median GPU time of each launch over `iters` runs, in milliseconds (CUDA events around
    /// every launch; the sum exceeds a whole run by the events' own cost).
    pub fn profile(&mut self, inputs: &[HostTensor], iters: usize) -> Result<Vec<f64>, Error> {
        self.run_launches(inputs, None)?;
        let n = self.manifest.launches.len();
        let mut times = vec![vec![]; n];
        let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        for _ in 0..iters.max(1) {
            let mut events = vec![cuda(self.stream.record_event(timing))?];
            for i in 0..n {
                self.launch_one(i)?;
                events.push(cuda(self.stream.record_event(timing))?);
            }
            cuda(self.stream.synchronize())?;
            for (i, w) in events.windows(2).enumerate() {
                times[i].push(cuda(w[0].elapsed_ms(&w[1]))? as f64);
            }
        }
        Ok(times
            .into_iter()
            .map(|mut t| {
                t.sort_by(|a, b| a.total_cmp(b));
                t[t.len() / 2]
            })
            .collect())
    }

    /// Copies `inputs` in and runs the first `n` launches (all of them by default).
    fn run_launches(&mut self, inputs: &[HostTensor], n: Option<usize>) -> Result<(), Error> {
        check_inputs(&self.manifest.inputs, inputs)?;
        for (buf, t) in self.inputs.iter_mut().zip(inputs) {
            cuda(self.stream.memcpy_htod(&t.data, buf))?;
        }
        match n {
            Some(n) => self.launch_range(n)?,
            None if self.use_graph => {
                if self.graph.is_none() {
                    cuda(self.stream.begin_capture(cudarc::driver::sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL))?;
                    let r = self.launch_range(self.manifest.launches.len());
                    let g = cuda(self.stream.end_capture(cudarc::driver::sys::CUgraphInstantiate_flags(0)));
                    r?;
                    self.graph = g?;
                }
                match &self.graph {
                    Some(g) => cuda(g.launch())?,
                    None => self.launch_range(self.manifest.launches.len())?,
                }
            }
            None => self.launch_range(self.manifest.launches.len())?,
        }
        cuda(self.stream.synchronize())
    }

    /// Runs the model on `inputs` (in the order of [`Session::inputs`]).
    pub fn run(&mut self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>, Error> {
        self.run_launches(inputs, None)?;
        let outs = self.manifest.outputs.clone();
        outs.iter().map(|t| self.read(t)).collect()
    }

    /// Runs only the first `n` launches (a prefix of the sequence), for per-kernel checks.
    pub fn run_prefix(&mut self, inputs: &[HostTensor], n: usize) -> Result<(), Error> {
        self.run_launches(inputs, Some(n.min(self.manifest.launches.len())))
    }

    /// Reads a planned tensor (an output, or a kernel's output after [`Session::run_prefix`]).
    pub fn read(&self, t: &TensorInfo) -> Result<HostTensor, Error> {
        let n = t.bytes() as usize;
        let mut host = vec![0u8; n];
        if n > 0 {
            let view = match t.loc {
                Loc::Arena { offset } => self.arena.slice(offset as usize..offset as usize + n),
                Loc::Weights { offset } => self.weights.slice(offset as usize..offset as usize + n),
                Loc::Input { index, offset } => self.inputs[index as usize].slice(offset as usize..offset as usize + n),
            };
            cuda(self.stream.memcpy_dtoh(&view, &mut host))?;
        }
        HostTensor::new(t.dtype, t.dims.iter().map(|&d| d as usize).collect(), host)
    }

    /// Median wall time of `iters` runs in milliseconds (inputs copied once, outputs not read).
    pub fn bench(&mut self, inputs: &[HostTensor], iters: usize) -> Result<f64, Error> {
        self.run_launches(inputs, None)?;
        let mut times = vec![];
        for _ in 0..iters.max(1) {
            let t = std::time::Instant::now();
            match (&self.graph, self.use_graph) {
                (Some(g), true) => cuda(g.launch())?,
                _ => self.launch_range(self.manifest.launches.len())?,
            }
            cuda(self.stream.synchronize())?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        Ok(times[times.len() / 2])
    }
}

/// Raises each kernel's dynamic shared-memory limit to what its launches ask for (beyond the
/// default 48 KiB a kernel must opt in), or says the device has less.
fn allow_dynamic_shared(ctx: &CudaContext, m: &Manifest, functions: &[CudaFunction]) -> Result<(), Error> {
    use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
    let mut need = vec![0u32; functions.len()];
    for l in &m.launches {
        let n = &mut need[l.kernel as usize];
        *n = (*n).max(l.shared_bytes);
    }
    let opt_in = cuda(ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN))?;
    for ((f, &n), k) in functions.iter().zip(&need).zip(&m.kernels) {
        if n <= 48 * 1024 {
            continue;
        }
        if n as i64 > opt_in as i64 {
            return Err(Error::Cuda(format!("kernel `{}` needs {n} bytes of shared memory; this GPU allows {opt_in}", k.name)));
        }
        cuda(f.set_attribute(CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, n as i32))?;
    }
    Ok(())
}

/// Whether GPU `ordinal` is there to run on: `NoDevice` (saying why) where it is not.
pub fn check_device(ordinal: usize) -> Result<(), Error> {
    // cudarc panics when libcuda is absent; ask first.
    #[allow(unsafe_code)]
    // SAFETY: only probes whether the driver library can be opened.
    let present = unsafe { cudarc::driver::sys::is_culib_present() };
    if !present {
        return Err(Error::NoDevice("libcuda (the NVIDIA driver) is not installed on this machine".into()));
    }
    let count = cuda(CudaContext::device_count()).map_err(|e| Error::NoDevice(e.to_string()))?;
    if ordinal as i32 >= count {
        return Err(Error::NoDevice(format!("GPU {ordinal} requested, {count} present")));
    }
    Ok(())
}
