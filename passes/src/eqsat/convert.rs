//! IR → e-graph and back. Going in, every value becomes an e-class (identical nodes share one,
//! which is CSE for free); coming out, the extraction's choice per e-class is rebuilt as a graph
//! in dependency order, each e-class once, so sharing survives the round trip. Values keep their
//! original names where an e-class still holds an original value.

use super::analysis::{TypeAnalysis, EG};
use super::lang::Node;
use egg::{Id, Language};
use kiln_ir::{Graph, NodeError, ValueId};
use std::collections::{HashMap, HashSet};

/// A graph in an e-graph, with what is needed to name things on the way out.
#[derive(Debug)]
pub struct Lowered {
    pub eg: EG,
    pub outputs: Vec<Id>,
    /// Original value name and producing node name per e-class (first one wins).
    pub names: HashMap<Id, (String, String)>,
    pub graph_name: String,
    pub input_names: Vec<String>,
}

/// Builds the e-graph of `g`. Control-flow ops enter as opaque ops (their subgraphs are part of
/// the op), so every graph can be lowered.
pub fn to_egraph(g: &Graph) -> Lowered {
    let mut analysis = TypeAnalysis::default();
    analysis.input_types = g.inputs.iter().map(|&i| g.value(i).ty.clone()).collect();
    let mut eg = EG::new(analysis);
    let mut ids: HashMap<ValueId, Id> = HashMap::new();
    let mut names: HashMap<Id, (String, String)> = HashMap::new();
    for (i, &v) in g.inputs.iter().enumerate() {
        ids.insert(v, eg.add(Node::Input(i as u32)));
    }
    for (&v, t) in &g.consts {
        let k = eg.analysis.add_const(g.value(v).name.clone(), t.clone());
        ids.insert(v, eg.add(Node::Weight(k)));
    }
    let absent = eg.add(Node::Absent);
    for n in &g.nodes {
        let args: Vec<Id> = n.inputs.iter().map(|i| i.map_or(absent, |v| ids[&v])).collect();
        let outputs = n.outputs.len() as u32;
        let id = eg.add(Node::Op { op: super::lang::OpKey::new(n.op.clone()), outputs, args });
        if outputs == 1 {
            if let Some(o) = n.outputs[0] {
                ids.insert(o, id);
                names.entry(id).or_insert_with(|| (g.value(o).name.clone(), n.name.clone()));
            }
        } else {
            for (j, o) in n.outputs.iter().enumerate() {
                if let Some(o) = *o {
                    let get = eg.add(Node::Get { index: j as u32, tuple: [id] });
                    ids.insert(o, get);
                    names.entry(get).or_insert_with(|| (g.value(o).name.clone(), n.name.clone()));
                }
            }
            names.entry(id).or_insert_with(|| (format!("{}.tuple", n.name), n.name.clone()));
        }
    }
    let outputs = g.outputs.iter().map(|o| ids[o]).collect();
    eg.rebuild();
    let input_names = g.inputs.iter().map(|&i| g.value(i).name.clone()).collect();
    Lowered { eg, outputs, names, graph_name: g.name.clone(), input_names }
}

/// The e-classes reachable from `roots` under `choice`, children before parents; `None` when the
/// choice has a cycle.
pub fn topo_order<'a>(eg: &EG, kids: &dyn Fn(Id) -> Option<&'a [Id]>, roots: &[Id]) -> Option<Vec<Id>> {
    // 0 = unseen, 1 = on the stack, 2 = done.
    let mut state: HashMap<Id, u8> = HashMap::new();
    let mut order = Vec::new();
    for &r in roots {
        let r = eg.find(r);
        if state.get(&r) == Some(&2) {
            continue;
        }
        let mut stack: Vec<(Id, usize)> = vec![(r, 0)];
        state.insert(r, 1);
        while let Some((c, k)) = stack.pop() {
            let kids = kids(c)?;
            if k < kids.len() {
                stack.push((c, k + 1));
                let child = eg.find(kids[k]);
                match state.get(&child) {
                    Some(1) => return None,
                    Some(_) => {}
                    None => {
                        state.insert(child, 1);
                        stack.push((child, 0));
                    }
                }
            } else {
                state.insert(c, 2);
                order.push(c);
            }
        }
    }
    Some(order)
}

/// Rebuilds a graph from the chosen node of each e-class reachable from the outputs.
pub fn from_egraph(low: &Lowered, choice: &HashMap<Id, Node>) -> Result<Graph, NodeError> {
    let eg = &low.eg;
    let roots: Vec<Id> = low.outputs.iter().map(|&o| eg.find(o)).collect();
    let order = topo_order(eg, &|c| choice.get(&c).map(|n| n.children()), &roots).expect("extraction is acyclic");
    // Which outputs of each tuple are read.
    let mut used: HashMap<Id, HashSet<u32>> = HashMap::new();
    for c in &order {
        if let Node::Get { index, tuple } = &choice[c] {
            used.entry(eg.find(tuple[0])).or_default().insert(*index);
        }
    }
    let mut g = Graph::new(low.graph_name.clone());
    // Value names and node names are separate namespaces, each kept unique.
    let mut taken: [HashSet<String>; 2] = Default::default();
    let mut unique_in = |space: usize, base: &str| -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while !taken[space].insert(name.clone()) {
            name = format!("{base}.{k}");
            k += 1;
        }
        name
    };
    let mut val: HashMap<Id, ValueId> = HashMap::new();
    let mut tuples: HashMap<Id, Vec<Option<ValueId>>> = HashMap::new();
    // Inputs keep their order and names whether or not they are still used.
    for (i, name) in low.input_names.iter().enumerate() {
        let ty = eg.analysis.input_types[i].clone();
        let v = g.add_input(unique_in(0, name), ty);
        if let Some(c) = eg.lookup(Node::Input(i as u32)) {
            val.insert(eg.find(c), v);
        }
    }
    let mut fresh = 0usize;
    for c in order {
        let node = &choice[&c];
        let (vname, nname) = low.names.get(&c).cloned().unwrap_or_else(|| {
            fresh += 1;
            (format!("opt.{fresh}"), format!("opt.{fresh}"))
        });
        match node {
            Node::Input(_) => {}
            Node::Weight(k) => {
                let t = eg.analysis.consts[*k as usize].clone();
                let v = g.add_const(unique_in(0, &eg.analysis.const_names[*k as usize]), t);
                val.insert(c, v);
            }
            Node::Absent => {}
            Node::Get { index, tuple } => {
                let v = tuples[&eg.find(tuple[0])][*index as usize].expect("used output exists");
                val.insert(c, v);
            }
            Node::Op { op, outputs, args } => {
                let inputs: Vec<Option<ValueId>> = args.iter().map(|a| val.get(&eg.find(*a)).copied()).collect();
                let node_name = unique_in(1, &nname);
                if *outputs == 1 {
                    let out = g.add_node(node_name, op.op().clone(), inputs, &[Some(unique_in(0, &vname))])?;
                    val.insert(c, out[0].expect("output requested"));
                } else {
                    let reads = used.get(&c).cloned().unwrap_or_default();
                    let out_name = |j: u32| {
                        let get = eg.lookup(Node::Get { index: j, tuple: [c] }).map(|x| eg.find(x));
                        get.and_then(|x| low.names.get(&x)).map_or_else(|| format!("{nname}.out{j}"), |n| n.0.clone())
                    };
                    let outs: Vec<Option<String>> = (0..*outputs).map(|j| reads.contains(&j).then(|| unique_in(0, &out_name(j)))).collect();
                    let ids = g.add_node(node_name, op.op().clone(), inputs, &outs)?;
                    tuples.insert(c, ids);
                }
            }
        }
    }
    g.outputs = roots.iter().map(|r| val[r]).collect();
    Ok(g)
}
