//! What each op is, declared beside it in the op table (`define_ops!` in `ops/mod.rs`): passes
//! and backends ask the op instead of keeping their own lists of ops.
//!
//! The elementwise ops are a group of the table of their own, so that they also have a borrowed
//! form, [`Elementwise`](super::Elementwise), that code generators for fused bodies match
//! exhaustively: a new elementwise op is listed by the compiler in each of them.

/// Properties of an op kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpProps {
    /// Its output is its first input's memory reinterpreted: no kernel, no copy.
    pub view: bool,
    /// Each output element depends only on the same element of each (broadcast) input: the ops
    /// a fused body may hold.
    pub elementwise: bool,
    /// May write its output over an input of the same size, element by element.
    pub in_place: bool,
    /// Runs subgraphs as programs of their own (If, Loop, Scan).
    pub control_flow: bool,
    /// Made by the optimizer: an optional anchor and an elementwise body.
    pub fused: bool,
}

impl OpProps {
    pub const NONE: OpProps = OpProps { view: false, elementwise: false, in_place: false, control_flow: false, fused: false };
}

impl super::Op {
    /// Ops that only reinterpret their input's memory (no kernel).
    pub fn is_view(&self) -> bool {
        self.props().view
    }

    /// Ops a fused body may hold: each output element depends only on the same element of
    /// each (broadcast) input.
    pub fn is_elementwise(&self) -> bool {
        self.props().elementwise
    }

    /// Ops that may write their output over an input of the same size, element by element.
    pub fn may_run_in_place(&self) -> bool {
        self.props().in_place
    }

    /// Control flow: ops whose subgraphs run as programs of their own (If, Loop, Scan).
    pub fn is_control_flow(&self) -> bool {
        self.props().control_flow
    }

    /// The optimizer's fused ops (each holds an elementwise body).
    pub fn is_fused(&self) -> bool {
        self.props().fused
    }
}
