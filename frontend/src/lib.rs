//! kiln's model importers: they turn a model file into a [`kiln_ir::Graph`].
//!
//! [`onnx`] reads ONNX (opsets 7 to 25) with onnx-protobuf: initializers (inline or in external
//! data files), Constant nodes, attribute defaults and opset differences per the ONNX spec,
//! If/Loop subgraphs. Importers translate attributes only; shapes are inferred by `kiln-ir`.
//! [`hf`] builds Llama, Qwen2 and Mistral graphs from a Hugging Face `config.json` and
//! safetensors weights (GPT-2 and BERT configs are read; their builders are still to come).
//!
//! ```no_run
//! let model = kiln_frontend::onnx::import_file("model.onnx".as_ref(), &Default::default())?;
//! println!("{} nodes", model.graph.nodes.len());
//! # Ok::<(), kiln_frontend::onnx::ImportError>(())
//! ```

pub mod hf;
pub mod onnx;
