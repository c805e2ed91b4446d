//! The verifier: SSA form, topological order, value ids in range, unique names, and every
//! node's recorded output types equal to what inference gives now.

use crate::graph::{Graph, ValueId};
use crate::ops::{DimNamer, InType};

/// A broken invariant, naming the node or value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("value id {0} out of range")]
    BadId(u32),
    #[error("value `{0}` is defined more than once")]
    Redefined(String),
    #[error("node `{node}` uses `{value}` before it is defined (graph is not in topological order or is cyclic)")]
    UseBeforeDef { node: String, value: String },
    #[error("graph output `{0}` is never defined")]
    UndefinedOutput(String),
    #[error("two values are named `{0}`")]
    DuplicateName(String),
    #[error("node `{node}`: recorded type {recorded} of output {index} differs from inferred {inferred}")]
    TypeMismatch { node: String, index: usize, recorded: String, inferred: String },
    #[error("node `{node}`: {message}")]
    Infer { node: String, message: String },
}

pub fn verify(g: &Graph) -> Result<(), VerifyError> {
    let n = g.values.len();
    let mut defined = vec![false; n];
    let check = |id: ValueId| if (id.0 as usize) < n { Ok(id.0 as usize) } else { Err(VerifyError::BadId(id.0)) };
    let define = |id: ValueId, defined: &mut Vec<bool>| -> Result<(), VerifyError> {
        let i = check(id)?;
        if std::mem::replace(&mut defined[i], true) {
            return Err(VerifyError::Redefined(g.values[i].name.clone()));
        }
        Ok(())
    };
    let mut names = std::collections::HashSet::new();
    for v in &g.values {
        if !names.insert(v.name.as_str()) {
            return Err(VerifyError::DuplicateName(v.name.clone()));
        }
    }
    for &i in &g.inputs {
        define(i, &mut defined)?;
    }
    for &c in g.consts.keys() {
        define(c, &mut defined)?;
    }
    for node in &g.nodes {
        for &i in node.inputs.iter().flatten() {
            if !defined[check(i)?] {
                return Err(VerifyError::UseBeforeDef { node: node.name.clone(), value: g.value(i).name.clone() });
            }
        }
        let ins: Vec<Option<InType>> = node
            .inputs
            .iter()
            .map(|i| {
                i.map(|id| InType {
                    dtype: g.value(id).ty.dtype,
                    shape: &g.value(id).ty.shape,
                    value: g.consts.get(&id).map(|t| t.as_ref()),
                })
            })
            .collect();
        let mut dn = DimNamer::new(&node.name);
        let types = node
            .op
            .infer(&ins, node.outputs.len(), &mut dn)
            .map_err(|e| VerifyError::Infer { node: node.name.clone(), message: e.to_string() })?;
        for (k, (o, ty)) in node.outputs.iter().zip(types).enumerate() {
            if let Some(o) = *o {
                define(o, &mut defined)?;
                let rec = &g.value(o).ty;
                if *rec != ty {
                    return Err(VerifyError::TypeMismatch {
                        node: node.name.clone(),
                        index: k,
                        recorded: format!("{}{}", rec.dtype, rec.shape),
                        inferred: format!("{}{}", ty.dtype, ty.shape),
                    });
                }
            }
        }
        for sg in node.op.subgraphs() {
            verify(sg)?;
        }
    }
    for &o in &g.outputs {
        if !defined[check(o)?] {
            return Err(VerifyError::UndefinedOutput(g.value(o).name.clone()));
        }
    }
    Ok(())
}
