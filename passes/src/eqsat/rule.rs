//! Rules and the saturation loop. A rule looks at one e-node in its e-class and proposes terms
//! equal to some e-classes (usually that one; a merge of three matmuls proposes one per matmul).
//! The loop searches every rule over the whole e-graph, then adds and unions what was found,
//! then rebuilds, until nothing changes or a node, iteration or time limit is hit; the report
//! says which.

use super::analysis::EG;
use super::lang::{Node, OpKey};
use egg::{Id, Language};
use kiln_ir::{Op, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something a rule builds: existing e-classes, new ops over terms, new weights.
#[derive(Clone, Debug)]
pub enum Term {
    Class(Id),
    /// A single-output op.
    Op(Op, Vec<Term>),
    /// Output `index` of an op with `outputs` outputs.
    Get {
        index: u32,
        op: Op,
        outputs: u32,
        args: Vec<Term>,
    },
    /// A weight computed by the rule (named for the IR it is written back to).
    Weight(String, Arc<Tensor>),
}

/// What one rule proposes: `term` is equal to `class`.
pub type Proposal = (Id, Term);

/// Read-only view a rule searches in.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub eg: &'a EG,
    /// For each canonical e-class, the e-classes holding a node that reads it.
    pub users: &'a HashMap<Id, Vec<Id>>,
}

/// A named rewrite. `search` is called for every e-node of every e-class.
#[derive(Clone, Copy)]
pub struct Rule {
    pub name: &'static str,
    pub search: fn(&Ctx, Id, &Node) -> Vec<Proposal>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Saturation limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub nodes: usize,
    pub iterations: usize,
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { nodes: 200_000, iterations: 24, time: Duration::from_secs(10) }
    }
}

/// Why saturation stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StopReason {
    Saturated,
    IterationLimit(usize),
    NodeLimit(usize),
    TimeLimit(f64),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Saturated => write!(f, "saturated"),
            StopReason::IterationLimit(n) => write!(f, "iteration limit ({n})"),
            StopReason::NodeLimit(n) => write!(f, "node limit ({n})"),
            StopReason::TimeLimit(s) => write!(f, "time limit ({s:.1} s)"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SaturationReport {
    pub stop_reason: StopReason,
    pub iterations: usize,
    /// Rule name → how many of its proposals changed the e-graph.
    pub fired: BTreeMap<&'static str, usize>,
    pub enodes: usize,
    pub eclasses: usize,
}

/// Adds a term; returns its e-class.
pub fn add_term(eg: &mut EG, t: &Term) -> Id {
    match t {
        Term::Class(id) => eg.find(*id),
        Term::Op(op, args) => {
            let args = args.iter().map(|a| add_term(eg, a)).collect();
            eg.add(Node::Op { op: OpKey::new(op.clone()), outputs: 1, args })
        }
        Term::Get { index, op, outputs, args } => {
            let args = args.iter().map(|a| add_term(eg, a)).collect();
            let tuple = eg.add(Node::Op { op: OpKey::new(op.clone()), outputs: *outputs, args });
            eg.add(Node::Get { index: *index, tuple: [tuple] })
        }
        Term::Weight(name, t) => {
            let k = eg.analysis.add_const(name.clone(), t.clone());
            eg.add(Node::Weight(k))
        }
    }
}

/// Readers of each e-class.
pub fn users(eg: &EG) -> HashMap<Id, Vec<Id>> {
    let mut m: HashMap<Id, Vec<Id>> = HashMap::new();
    for c in eg.classes() {
        for n in &c.nodes {
            for ch in n.children() {
                let v = m.entry(eg.find(*ch)).or_default();
                if !v.contains(&c.id) {
                    v.push(c.id);
                }
            }
        }
    }
    m
}

/// Runs `rules` to saturation or a limit.
pub fn saturate(eg: &mut EG, rules: &[Rule], limits: Limits) -> SaturationReport {
    let start = Instant::now();
    let mut fired: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut stop = StopReason::IterationLimit(limits.iterations);
    let mut iterations = 0;
    // An iteration can take far longer than the one before (fusion alternatives multiply), so
    // the time limit is also checked within one: the search and the unions stop where they are
    // (every union applied is sound on its own) and saturation ends after the rebuild.
    let over_time = || start.elapsed() > limits.time;
    for _ in 0..limits.iterations {
        iterations += 1;
        let mut found: Vec<(&'static str, Proposal)> = Vec::new();
        let mut cut = false;
        {
            let u = users(eg);
            let ctx = Ctx { eg, users: &u };
            let mut ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
            ids.sort();
            for id in ids {
                if over_time() {
                    cut = true;
                    break;
                }
                for node in &eg[id].nodes {
                    for r in rules {
                        found.extend((r.search)(&ctx, id, node).into_iter().map(|p| (r.name, p)));
                    }
                }
            }
        }
        let before = (eg.total_size(), eg.number_of_classes());
        let mut changed = false;
        let mut this_round: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (k, (name, (class, term))) in found.iter().enumerate() {
            if k % 256 == 255 && over_time() {
                cut = true;
                break;
            }
            let id = add_term(eg, term);
            if eg.union(*class, id) {
                *this_round.entry(name).or_default() += 1;
                changed = true;
            }
        }
        eg.rebuild();
        // `kiln -vv`: what each iteration did.
        tracing::debug!(
            "e-graph iteration {iterations}: {} proposals, {} e-nodes, {} e-classes, {:.0} ms, fired {this_round:?}",
            found.len(),
            eg.total_size(),
            eg.number_of_classes(),
            start.elapsed().as_secs_f64() * 1e3
        );
        for (k, v) in this_round {
            *fired.entry(k).or_default() += v;
        }
        if !cut && !changed && (eg.total_size(), eg.number_of_classes()) == before {
            stop = StopReason::Saturated;
            break;
        }
        if eg.total_size() > limits.nodes {
            stop = StopReason::NodeLimit(limits.nodes);
            break;
        }
        if cut || over_time() {
            stop = StopReason::TimeLimit(limits.time.as_secs_f64());
            break;
        }
    }
    SaturationReport { stop_reason: stop, iterations, fired, enodes: eg.total_size(), eclasses: eg.number_of_classes() }
}
