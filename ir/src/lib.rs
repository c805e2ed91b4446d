//! kiln's intermediate representation.
//!
//! Everything kiln compiles passes through [`Graph`]: the frontends build one, the passes
//! rewrite it, the backends lower it, and the reference interpreter ([`interp::run`]) defines
//! what its outputs must be. An op is defined once, in [`ops`], with typed attributes, its type
//! and shape inference, and its reference semantics side by side.
//!
//! ```
//! use kiln_ir::{interp, BinaryOp, DType, Graph, Op, Shape, Tensor, TensorType};
//!
//! let mut g = Graph::new("add");
//! let x = g.add_input("x", TensorType::new(DType::F32, Shape::fixed(&[2])));
//! let y = g.add_input("y", TensorType::new(DType::F32, Shape::fixed(&[2])));
//! let z = g.add_node("add0", Op::Binary { op: BinaryOp::Add }, vec![Some(x), Some(y)], &[Some("z".into())]).unwrap();
//! g.outputs = vec![z[0].unwrap()];
//! kiln_ir::verify(&g).unwrap();
//! let a = Tensor::from_f32s(vec![2], vec![1.0, 2.0]).unwrap();
//! let b = Tensor::from_f32s(vec![2], vec![10.0, 20.0]).unwrap();
//! let out = interp::run(&g, vec![a, b]).unwrap();
//! assert_eq!(out[0].to_f64(), vec![11.0, 22.0]);
//! ```

pub mod attr;
pub mod dtype;
pub mod graph;
pub mod interp;
pub mod minifloat;
pub mod ops;
pub mod shape;
pub mod tensor;
pub mod text;
pub mod verify;

pub use dtype::DType;
pub use graph::{Graph, Node, NodeError, Value, ValueId};
pub use ops::{BinaryOp, Elementwise, InType, Op, OpError, OpProps, TensorType, UnaryOp};
pub use shape::{Dim, Shape};
pub use tensor::{Data, Tensor};
pub use verify::{verify, VerifyError};
