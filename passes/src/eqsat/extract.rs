//! DAG-aware extraction. The cost of a program is the sum of the costs of its distinct e-nodes:
//! a value read twice is computed once. egg's greedy extractor sums costs per use (tree cost),
//! which misjudges fusion (a fused kernel that recomputes a shared value looks free) and never
//! takes a merged matmul whose outputs are read by three classes. So:
//!
//! - **exact**, when the e-graph is small (the product of the candidate counts of every e-class
//!   reachable from the outputs is at most [`EXACT_LIMIT`]): every combination is costed;
//! - otherwise **tree-greedy + DAG local search**: start from egg-style bottom-up tree costs,
//!   then repeatedly switch one e-class to another e-node, let every other e-class switch to an
//!   e-node that now costs it less because all its inputs are computed anyway (this is what
//!   makes a merged matmul pay off), and keep the move when the DAG cost drops. Every step is a
//!   valid acyclic program, so the result is sound; it is a local optimum, not a proven one.

use super::analysis::{ClassType, EG};
use super::lang::Node;
use egg::{Id, Language};
use kiln_ir::{Op, TensorType};
use std::collections::{HashMap, HashSet};

/// The sentinel cost of an op the target cannot run: no sum of finite costs reaches it.
pub const INFEASIBLE: f64 = f64::INFINITY;

/// Added per fused-body node so that, at equal cost, the simpler program wins (a millionth of a
/// microsecond: far below any difference the roofline sees).
const TIE_BREAK_US: f64 = 1e-6;

fn body_nodes(n: &Node) -> usize {
    n.op().filter(|o| o.is_fused()).and_then(|o| o.subgraphs().first().map(|g| g.nodes.len())).unwrap_or(0)
}

/// The largest number of candidate combinations costed exhaustively.
pub const EXACT_LIMIT: u64 = 4096;

/// A target's cost of running one op once (microseconds; [`INFEASIBLE`] when it cannot).
pub trait CostModel: Sync {
    fn name(&self) -> &'static str;
    fn op_cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64;
    /// Why the target cannot run `op`, where it says (for the error naming what it cannot run).
    fn refusal(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> Option<String> {
        let _ = (op, ins, outs);
        None
    }
}

/// How the extraction was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtractMethod {
    Exact,
    GreedyDag,
}

impl ExtractMethod {
    pub fn name(self) -> &'static str {
        match self {
            ExtractMethod::Exact => "exact",
            ExtractMethod::GreedyDag => "tree-greedy + DAG local search",
        }
    }
}

#[derive(Debug)]
pub struct Extraction {
    pub choice: HashMap<Id, Node>,
    pub cost: f64,
    pub method: ExtractMethod,
}

struct Problem<'a> {
    eg: &'a EG,
    roots: Vec<Id>,
    /// Per canonical class: candidate nodes with their own costs.
    cands: HashMap<Id, Vec<(Node, f64)>>,
}

impl Problem<'_> {
    /// DAG cost of a choice and its reachable classes; `None` when it has a cycle.
    fn dag(&self, choice: &HashMap<Id, usize>) -> Option<(f64, Vec<Id>)> {
        let kids = |c: Id| choice.get(&c).map(|&i| self.cands[&c][i].0.children());
        let order = super::convert::topo_order(self.eg, &kids, &self.roots)?;
        let cost = order.iter().map(|c| self.cands[c][choice[c]].1).sum();
        Some((cost, order))
    }
}

/// Extracts the cheapest program for `roots` under `model`; when some output cannot be computed
/// on the target, the error lists the ops it cannot run.
pub fn extract(eg: &EG, roots: &[Id], model: &dyn CostModel) -> Result<Extraction, String> {
    let roots: Vec<Id> = roots.iter().map(|&r| eg.find(r)).collect();
    let mut cands: HashMap<Id, Vec<(Node, f64)>> = HashMap::new();
    let mut infeasible: std::collections::BTreeSet<String> = Default::default();
    for class in eg.classes() {
        let list = class
            .nodes
            .iter()
            .map(|n| {
                let c = match n {
                    Node::Op { op, args, .. } => {
                        let ins: Vec<Option<&TensorType>> = args.iter().map(|a| eg[*a].data.value()).collect();
                        let outs: Vec<TensorType> = match &class.data.ty {
                            ClassType::Value(t) => vec![t.clone()],
                            ClassType::Tuple(ts) => ts.clone(),
                            ClassType::Absent => vec![],
                        };
                        let c = model.op_cost(op.op(), &ins, &outs);
                        // Fused ops are the optimizer's own; the error names the model's ops,
                        // with the reason where the target gives one.
                        if !c.is_finite() && !op.op().is_fused() {
                            infeasible.insert(match model.refusal(op.op(), &ins, &outs) {
                                Some(why) => format!("{} ({why})", op.op().display_name()),
                                None => op.op().display_name().to_string(),
                            });
                        }
                        c
                    }
                    _ => 0.0,
                };
                // Ties go to the simpler node: the plain op over a fused body computing the same.
                (n.clone(), c + TIE_BREAK_US * body_nodes(n) as f64)
            })
            .collect::<Vec<_>>();
        let list = list.into_iter().filter(|(_, c)| c.is_finite()).collect();
        cands.insert(class.id, list);
    }
    let p = Problem { eg, roots, cands };

    // Tree-greedy bottom-up: best tree cost per class, strictly improving (so no cycles).
    let mut best: HashMap<Id, (f64, usize)> = HashMap::new();
    // Classes in id order, so that ties resolve the same way on every run.
    let mut order: Vec<Id> = p.cands.keys().copied().collect();
    order.sort();
    loop {
        let mut changed = false;
        for c in &order {
            let list = &p.cands[c];
            for (i, (n, own)) in list.iter().enumerate() {
                let sum = n.children().iter().try_fold(*own, |acc, ch| best.get(&eg.find(*ch)).map(|b| acc + b.0));
                if let Some(total) = sum {
                    if best.get(c).is_none_or(|b| total < b.0) {
                        best.insert(*c, (total, i));
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    if p.roots.iter().any(|r| !best.contains_key(r)) {
        return Err(infeasible.into_iter().collect::<Vec<_>>().join(", "));
    }
    // Only nodes whose inputs can all be computed are candidates from here on.
    let usable = |n: &Node| n.children().iter().all(|ch| best.contains_key(&eg.find(*ch)));
    let mut choice: HashMap<Id, usize> = best.iter().map(|(c, b)| (*c, b.1)).collect();

    // Exact when the combinations reachable from the roots are few.
    let mut reach: Vec<Id> = Vec::new();
    let mut seen: HashSet<Id> = HashSet::new();
    let mut stack: Vec<Id> = p.roots.clone();
    while let Some(c) = stack.pop() {
        if !seen.insert(c) {
            continue;
        }
        reach.push(c);
        for (n, _) in &p.cands[&c] {
            if usable(n) {
                stack.extend(n.children().iter().map(|ch| eg.find(*ch)));
            }
        }
    }
    let options: Vec<(Id, Vec<usize>)> = reach
        .iter()
        .map(|c| (*c, p.cands[c].iter().enumerate().filter(|(_, (n, _))| usable(n)).map(|(i, _)| i).collect::<Vec<_>>()))
        .filter(|(_, o)| o.len() > 1)
        .collect();
    let combos = options.iter().try_fold(1u64, |acc, (_, o)| acc.checked_mul(o.len() as u64).filter(|&x| x <= EXACT_LIMIT));
    let mut current = p.dag(&choice).expect("tree-greedy choice is acyclic");
    let method = if let Some(n) = combos {
        for k in 0..n {
            let mut rest = k;
            let mut trial = choice.clone();
            for (c, o) in &options {
                trial.insert(*c, o[(rest % o.len() as u64) as usize]);
                rest /= o.len() as u64;
            }
            if let Some((cost, order)) = p.dag(&trial) {
                if cost < current.0 {
                    current = (cost, order);
                    choice = trial;
                }
            }
        }
        ExtractMethod::Exact
    } else {
        local_search(&p, &usable, &mut choice, &mut current);
        ExtractMethod::GreedyDag
    };
    let nodes = current.1.iter().map(|c| (*c, p.cands[c][choice[c]].0.clone())).collect();
    Ok(Extraction { choice: nodes, cost: current.0, method })
}

/// The most work [`local_search`] does, in class and candidate visits of its trials (each
/// trial walks the whole chosen DAG and each class's candidates): a few seconds on the 2-core
/// dev machine. The golden models need at most 0.65 million; an unrolled recurrence of 1,300
/// classes took 109 s unbounded.
/// Counted rather than timed, so that a compile is reproducible.
const LOCAL_SEARCH_WORK: usize = 10_000_000;

fn local_search(p: &Problem, usable: &dyn Fn(&Node) -> bool, choice: &mut HashMap<Id, usize>, current: &mut (f64, Vec<Id>)) {
    let eg = p.eg;
    let mut work = 0usize;
    for _sweep in 0..6 {
        let mut improved = false;
        let order = current.1.clone();
        for c in order {
            let n_cands = p.cands[&c].len();
            for i in 0..n_cands {
                if i == choice[&c] || !usable(&p.cands[&c][i].0) {
                    continue;
                }
                work += 2 * current.1.len();
                if work > LOCAL_SEARCH_WORK {
                    return;
                }
                let mut trial = choice.clone();
                trial.insert(c, i);
                let Some((_, reach)) = p.dag(&trial) else { continue };
                // Classes that can now reuse values the move computes anyway. A switch only
                // reads classes earlier in this (children-first) order, so it cannot close a
                // cycle.
                let pos: HashMap<Id, usize> = reach.iter().enumerate().map(|(k, c)| (*c, k)).collect();
                work += reach.iter().map(|d| p.cands[d].len()).sum::<usize>();
                for (k, d) in reach.iter().enumerate() {
                    if *d == c {
                        continue;
                    }
                    let cur = p.cands[d][trial[d]].1;
                    let better = p.cands[d]
                        .iter()
                        .enumerate()
                        .filter(|(_, (n, own))| {
                            *own < cur && usable(n) && n.children().iter().all(|ch| pos.get(&eg.find(*ch)).is_some_and(|&q| q < k))
                        })
                        .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1));
                    if let Some((j, _)) = better {
                        trial.insert(*d, j);
                    }
                }
                if let Some((cost, reach)) = p.dag(&trial) {
                    if cost < current.0 - 1e-9 {
                        *current = (cost, reach);
                        *choice = trial;
                        improved = true;
                        break;
                    }
                }
            }
        }
        if !improved {
            break;
        }
    }
}
