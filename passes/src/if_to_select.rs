//! An If a target cannot run becomes both of its branches, inlined, and a select of their
//! results by the condition (`Where`), when the branches' results have the same static types:
//! a switch whose condition is only known when the model runs (a detector's score deciding
//! whether a verifier runs) then compiles for a target without control flow. Both branches
//! are computed, so this is for branches that are cheap and cannot fail on the inputs the
//! untaken one sees; the driver applies it only to the If nodes its backend refuses.

use kiln_ir::{Data, Graph, Node, NodeError, Op, Tensor, ValueId};
use std::collections::HashMap;
use std::sync::Arc;

/// Turns every If that `refused(node, graph)` selects and whose branches agree on their
/// results' static types into both branches and a select; returns how many.
pub fn if_to_select(g: &mut Graph, refused: impl Fn(&Node, &Graph) -> bool) -> Result<usize, NodeError> {
    let old = std::mem::take(&mut g.nodes);
    let mut count = 0;
    for n in old {
        match &n.op {
            Op::If { then_branch, else_branch } if agree(then_branch, else_branch) && refused(&n, g) => {
                let (t, e) = (then_branch.clone(), else_branch.clone());
                select(g, &n, &t, &e)?;
                count += 1;
            }
            _ => g.nodes.push(n),
        }
    }
    Ok(count)
}

/// Both branches give results of the same, fully known, types.
fn agree(t: &Graph, e: &Graph) -> bool {
    t.outputs.len() == e.outputs.len()
        && t.outputs.iter().zip(&e.outputs).all(|(&a, &b)| {
            let (ta, tb) = (&t.value(a).ty, &e.value(b).ty);
            ta == tb && ta.shape.is_fixed()
        })
}

fn select(g: &mut Graph, n: &Node, then_g: &Graph, else_g: &Graph) -> Result<(), NodeError> {
    // The node's captures are the union of the branches' inputs, then-branch first, by name.
    let mut union: Vec<String> = then_g.inputs.iter().map(|&v| then_g.value(v).name.clone()).collect();
    for &v in &else_g.inputs {
        let name = &else_g.value(v).name;
        if !union.contains(name) {
            union.push(name.clone());
        }
    }
    let given = n.inputs.get(1..).unwrap_or_default();
    let captures: HashMap<&str, ValueId> =
        union.iter().map(String::as_str).zip(given.iter().copied()).filter_map(|(k, v)| Some((k, v?))).collect();
    let cond = n.inputs.first().copied().flatten().ok_or_else(|| invalid(n, "If without a condition"))?;
    let mut k = 0usize;
    let then_out = inline(g, n, then_g, &captures, "then", &mut k)?;
    let else_out = inline(g, n, else_g, &captures, "else", &mut k)?;
    let shape = g.add_const(format!("{}/scalar", n.name), Arc::new(Tensor::new(vec![0], Data::I64(vec![])).expect("an empty shape")));
    let c = g.add_node(
        format!("{}/cond", n.name),
        Op::Reshape { allowzero: false },
        vec![Some(cond), Some(shape)],
        &[Some(format!("{}/cond", n.name))],
    )?[0]
        .expect("an output");
    for (j, o) in n.outputs.iter().enumerate() {
        let (Some(o), Some(&a), Some(&b)) = (o, then_out.get(j), else_out.get(j)) else { continue };
        let name = format!("{}/select{j}", n.name);
        let v = g.add_node(name.clone(), Op::Where {}, vec![Some(c), Some(a), Some(b)], &[Some(name)])?[0].expect("an output");
        g.nodes.push(Node { name: format!("{}/out{j}", n.name), op: Op::Identity {}, inputs: vec![Some(v)], outputs: vec![Some(*o)] });
    }
    Ok(())
}

/// Copies `body`'s constants and nodes into `g` (its inputs bound to the captures); returns its
/// results.
fn inline(
    g: &mut Graph,
    n: &Node,
    body: &Graph,
    captures: &HashMap<&str, ValueId>,
    tag: &str,
    k: &mut usize,
) -> Result<Vec<ValueId>, NodeError> {
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    for &i in &body.inputs {
        let name = &body.value(i).name;
        let v = captures
            .get(name.as_str())
            .ok_or_else(|| invalid(n, &format!("the {tag} branch's capture `{name}` is not an input of the If")))?;
        map.insert(i, *v);
    }
    for (id, t) in &body.consts {
        *k += 1;
        map.insert(*id, g.add_const(format!("{}/{tag}/k{k}", n.name), t.clone()));
    }
    for b in &body.nodes {
        let ins = b
            .inputs
            .iter()
            .map(|i| i.map(|v| map.get(&v).copied().ok_or_else(|| invalid(n, "a branch reads a value it does not define"))))
            .map(Option::transpose)
            .collect::<Result<Vec<_>, _>>()?;
        *k += 1;
        let names: Vec<Option<String>> =
            b.outputs.iter().enumerate().map(|(j, o)| o.map(|_| format!("{}/{tag}/v{k}_{j}", n.name))).collect();
        let outs = g.add_node(format!("{}/{tag}/{}", n.name, b.name), b.op.clone(), ins, &names)?;
        for (o, v) in b.outputs.iter().zip(outs) {
            if let (Some(o), Some(v)) = (o, v) {
                map.insert(*o, v);
            }
        }
    }
    body.outputs.iter().map(|o| map.get(o).copied().ok_or_else(|| invalid(n, "a branch result is not computed"))).collect()
}

fn invalid(n: &Node, msg: &str) -> NodeError {
    NodeError { node: n.name.clone(), op: n.op.kind_name(), source: kiln_ir::OpError::Invalid(msg.into()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{interp, BinaryOp, DType, TensorType, UnaryOp};

    /// A branch that is itself an If: the first pass inlines it, the second selects it (the
    /// driver repeats the pass).
    #[test]
    fn an_if_inside_a_branch_is_selected_by_the_next_pass() {
        let ty = TensorType::fixed(DType::F32, &[2]);
        let branch = |name: &str, op: Op| {
            let mut b = Graph::new(name);
            let x = b.add_input("x", ty.clone());
            let y = b.add_node("op", op, vec![Some(x)], &[Some("y".into())]).expect("op")[0].expect("y");
            b.outputs = vec![y];
            b
        };
        let inner = Op::If {
            then_branch: Box::new(branch("t", Op::Unary { op: UnaryOp::Neg })),
            else_branch: Box::new(branch("e", Op::Unary { op: UnaryOp::Abs })),
        };
        let mut outer_then = Graph::new("outer_then");
        let x = outer_then.add_input("x", ty.clone());
        let c2 = outer_then.add_input("c2", TensorType::fixed(DType::Bool, &[]));
        let y = outer_then.add_node("inner", inner, vec![Some(c2), Some(x)], &[Some("y".into())]).expect("inner")[0].expect("y");
        outer_then.outputs = vec![y];
        let outer = Op::If { then_branch: Box::new(outer_then), else_branch: Box::new(branch("oe", Op::Unary { op: UnaryOp::Relu })) };
        let mut g = Graph::new("g");
        let x = g.add_input("x", ty.clone());
        let c2 = g.add_input("c2", TensorType::fixed(DType::Bool, &[]));
        let c1 = g.add_input("c1", TensorType::fixed(DType::Bool, &[]));
        let y = g.add_node("outer", outer, vec![Some(c1), Some(x), Some(c2)], &[Some("y".into())]).expect("outer")[0].expect("y");
        g.outputs = vec![y];
        let mut s = g.clone();
        assert_eq!(if_to_select(&mut s, |_, _| true).expect("first"), 1);
        assert_eq!(if_to_select(&mut s, |_, _| true).expect("second"), 1);
        assert!(s.nodes.iter().all(|n| !matches!(n.op, Op::If { .. })));
        kiln_ir::verify(&s).expect("verify");
        let xv = Tensor::new(vec![2], Data::F32(vec![-1.5, 2.0])).expect("x");
        for (a, b) in [(true, true), (true, false), (false, true), (false, false)] {
            let bool_t = |v: bool| Tensor::new(vec![], Data::Bool(vec![v])).expect("cond");
            let ins = vec![xv.clone(), bool_t(b), bool_t(a)];
            assert_eq!(interp::run(&s, ins.clone()).expect("select"), interp::run(&g, ins).expect("if"), "c1 {a} c2 {b}");
        }
    }

    /// if x.sum() > 0 { relu(x) * w } else { -x }: the selected form computes what If does,
    /// for either condition.
    #[test]
    fn both_branches_and_a_select_compute_what_the_if_does() {
        let mut then_g = Graph::new("then");
        let tx = then_g.add_input("x", TensorType::fixed(DType::F32, &[2, 3]));
        let w = then_g.add_const("w", Arc::new(Tensor::new(vec![3], Data::F32(vec![1.0, 2.0, 3.0])).expect("w")));
        let r = then_g.add_node("relu", Op::Unary { op: UnaryOp::Relu }, vec![Some(tx)], &[Some("r".into())]).expect("relu")[0].expect("r");
        let m = then_g.add_node("mul", Op::Binary { op: BinaryOp::Mul }, vec![Some(r), Some(w)], &[Some("m".into())]).expect("mul")[0]
            .expect("m");
        then_g.outputs = vec![m];
        let mut else_g = Graph::new("else");
        let ex = else_g.add_input("x", TensorType::fixed(DType::F32, &[2, 3]));
        let ng = else_g.add_node("neg", Op::Unary { op: UnaryOp::Neg }, vec![Some(ex)], &[Some("n".into())]).expect("neg")[0].expect("n");
        else_g.outputs = vec![ng];

        let mut g = Graph::new("g");
        let x = g.add_input("x", TensorType::fixed(DType::F32, &[2, 3]));
        let c = g.add_input("c", TensorType::fixed(DType::Bool, &[1]));
        let op = Op::If { then_branch: Box::new(then_g), else_branch: Box::new(else_g) };
        let y = g.add_node("if", op, vec![Some(c), Some(x)], &[Some("y".into())]).expect("if")[0].expect("y");
        let z = g.add_node("after", Op::Unary { op: UnaryOp::Abs }, vec![Some(y)], &[Some("z".into())]).expect("abs")[0].expect("z");
        g.outputs = vec![z];
        let mut s = g.clone();
        assert_eq!(if_to_select(&mut s, |_, _| true).expect("select"), 1);
        kiln_ir::verify(&s).expect("verify");
        assert!(s.nodes.iter().all(|n| !matches!(n.op, Op::If { .. })));
        let xv = Tensor::new(vec![2, 3], Data::F32(vec![-1.0, 0.5, 2.0, -3.0, 4.0, 0.0])).expect("x");
        for cond in [true, false] {
            let cv = Tensor::new(vec![1], Data::Bool(vec![cond])).expect("c");
            let want = interp::run(&g, vec![xv.clone(), cv.clone()]).expect("if");
            assert_eq!(interp::run(&s, vec![xv.clone(), cv]).expect("select"), want, "cond {cond}");
        }
    }
}
