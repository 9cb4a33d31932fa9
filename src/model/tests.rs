//! Property tests of the merge rules over random histories: several nodes
//! writing the same file offline and syncing in random orders.

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
enum Op {
    Rename { node: usize, name: u8 },
    Edit { node: usize, bytes: u8 },
    Delete { node: usize },
    Sync { a: usize, b: usize },
}

fn op(nodes: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..nodes, 0u8..4).prop_map(|(node, name)| Op::Rename { node, name }),
        (0..nodes, 0u8..8).prop_map(|(node, bytes)| Op::Edit { node, bytes }),
        (0..nodes).prop_map(|node| Op::Delete { node }),
        (0..nodes, 0..nodes).prop_map(|(a, b)| Op::Sync { a, b }),
    ]
}

fn history() -> impl Strategy<Value = (usize, Vec<Op>)> {
    (3usize..=5).prop_flat_map(|nodes| (Just(nodes), prop::collection::vec(op(nodes), 1..60)))
}

fn node_id(i: usize) -> NodeId {
    NodeId([i as u8 + 1; 32])
}

fn content(bytes: u8) -> Content {
    Content::File {
        hash: ContentHash([bytes; 32]),
        size: bytes as u64,
        mtime_ns: 0,
        executable: bytes % 2 == 1,
    }
}

/// Every write made, with the version it was given, to check none is lost.
struct Simulation {
    replicas: Vec<Option<FileEntry>>,
    counters: Vec<u64>,
    path_writes: Vec<Versioned<RepoPath>>,
    content_writes: Vec<Versioned<Content>>,
}

impl Simulation {
    fn run(nodes: usize, ops: &[Op]) -> Self {
        let mut sim = Simulation {
            replicas: vec![None; nodes],
            counters: vec![0; nodes],
            path_writes: vec![],
            content_writes: vec![],
        };
        let stamp = sim.stamp(0);
        let first = FileEntry::new_file(
            FileId([7; 16]),
            RepoPath::new("f0").unwrap(),
            content(0),
            stamp,
        );
        sim.path_writes.push(first.path.versions()[0].clone());
        sim.content_writes.push(first.content.versions()[0].clone());
        sim.replicas[0] = Some(first);
        for op in ops {
            sim.apply(op);
        }
        sim
    }

    fn stamp(&mut self, node: usize) -> Stamp {
        self.counters[node] += 1;
        Stamp {
            node: node_id(node),
            counter: self.counters[node],
            at_ms: self.counters.iter().sum::<u64>() as i64,
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Sync { a, b } => {
                if let (Some(x), Some(y)) = (self.replicas[a].clone(), self.replicas[b].clone()) {
                    self.replicas[a].as_mut().unwrap().merge(&y);
                    self.replicas[b].as_mut().unwrap().merge(&x);
                    for node in [a, b] {
                        self.replicas[node]
                            .as_mut()
                            .unwrap()
                            .acknowledge_deletion(node_id(node));
                    }
                } else {
                    let known = self.replicas[a].clone().or(self.replicas[b].clone());
                    self.replicas[a] = known.clone();
                    self.replicas[b] = known;
                }
            }
            Op::Rename { node, name } => {
                if self.replicas[node].is_some() {
                    let stamp = self.stamp(node);
                    let entry = self.replicas[node].as_mut().unwrap();
                    entry.rename(RepoPath::new(&format!("f{name}")).unwrap(), stamp);
                    self.path_writes.push(entry.path.versions()[0].clone());
                }
            }
            Op::Edit { node, bytes } => self.write_content(node, content(bytes)),
            Op::Delete { node } => self.write_content(node, Content::Deleted),
        }
    }

    fn write_content(&mut self, node: usize, value: Content) {
        if self.replicas[node].is_some() {
            let stamp = self.stamp(node);
            let entry = self.replicas[node].as_mut().unwrap();
            entry.set_content(value, stamp);
            self.content_writes
                .push(entry.content.versions()[0].clone());
        }
    }

    fn known(&self) -> Vec<FileEntry> {
        self.replicas.iter().flatten().cloned().collect()
    }
}

fn merge_all<'a>(entries: impl IntoIterator<Item = &'a FileEntry>) -> FileEntry {
    let mut iter = entries.into_iter();
    let mut acc = iter.next().unwrap().clone();
    for e in iter {
        acc.merge(e);
    }
    acc
}

/// A write is kept when it is still held or a held version includes it.
fn kept<T: Clone + Ord>(register: &MvRegister<T>, write: &Versioned<T>) -> bool {
    register.versions().iter().any(|held| {
        held == write || held.version.dominates(&write.version) && held.version != write.version
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn merge_is_commutative_associative_idempotent((nodes, ops) in history()) {
        let known = Simulation::run(nodes, &ops).known();
        for a in &known {
            let mut aa = a.clone();
            aa.merge(a);
            prop_assert_eq!(&aa, a);
            for b in &known {
                let ab = merge_all([a, b]);
                let ba = merge_all([b, a]);
                prop_assert_eq!(&ab, &ba);
                prop_assert_eq!(ab.digest(), ba.digest());
                for c in &known {
                    let ab_c = merge_all([&ab, c]);
                    let bc = merge_all([b, c]);
                    let a_bc = merge_all([a, &bc]);
                    prop_assert_eq!(ab_c, a_bc);
                }
            }
        }
    }

    #[test]
    fn any_sync_order_converges_and_loses_no_write(
        (nodes, ops) in history(),
        order in prop::collection::vec(any::<prop::sample::Index>(), 8),
    ) {
        let sim = Simulation::run(nodes, &ops);
        let known = sim.known();
        let reference = merge_all(&known);
        // Gossip in a random order until everyone has heard from everyone.
        let mut replicas = known.clone();
        for round in 0..replicas.len() {
            for pick in &order {
                let i = pick.index(replicas.len());
                let j = (i + round + 1) % replicas.len();
                let (x, y) = (replicas[i].clone(), replicas[j].clone());
                replicas[i].merge(&y);
                replicas[j].merge(&x);
            }
            let next = (round + 1) % replicas.len();
            let (x, y) = (replicas[round].clone(), replicas[next].clone());
            replicas[round].merge(&y);
            replicas[next].merge(&x);
        }
        let converged = merge_all(&replicas);
        prop_assert_eq!(&converged, &reference);
        for r in &replicas {
            let mut r = r.clone();
            r.merge(&converged);
            prop_assert_eq!(r.digest(), reference.digest());
        }
        for write in &sim.path_writes {
            prop_assert!(kept(&reference.path, write), "path write lost: {:?}", write);
        }
        for write in &sim.content_writes {
            prop_assert!(kept(&reference.content, write), "content write lost: {:?}", write);
        }
    }
}

#[test]
fn rename_here_and_edit_there_merge_into_one_renamed_edited_file() {
    let (a, b) = (node_id(0), node_id(1));
    let at = |node, counter| Stamp {
        node,
        counter,
        at_ms: counter as i64,
    };
    let mut here = FileEntry::new_file(
        FileId([1; 16]),
        RepoPath::new("old").unwrap(),
        content(1),
        at(a, 1),
    );
    let mut there = here.clone();
    here.rename(RepoPath::new("new").unwrap(), at(a, 2));
    there.set_content(content(2), at(b, 1));
    here.merge(&there);
    assert_eq!(here.current_path().as_str(), "new");
    assert!(!here.path.is_conflict());
    assert_eq!(here.resolved(), Resolved::File(&here.content.versions()[0]));
    assert_eq!(here.content.versions()[0].value, content(2));
}

#[test]
fn edit_concurrent_with_delete_keeps_the_edit_and_concurrent_edits_conflict() {
    let (a, b, c) = (node_id(0), node_id(1), node_id(2));
    let at = |node, counter| Stamp {
        node,
        counter,
        at_ms: counter as i64,
    };
    let base = FileEntry::new_file(
        FileId([1; 16]),
        RepoPath::new("f").unwrap(),
        content(1),
        at(a, 1),
    );
    let (mut x, mut y, mut z) = (base.clone(), base.clone(), base);
    x.set_content(Content::Deleted, at(a, 2));
    y.set_content(content(2), at(b, 1));
    let mut xy = x.clone();
    xy.merge(&y);
    assert!(matches!(xy.resolved(), Resolved::File(v) if v.value == content(2)));
    z.set_content(content(3), at(c, 1));
    xy.merge(&z);
    assert!(matches!(xy.resolved(), Resolved::Conflict(sides) if sides.len() == 2));
    // Holders: each node's own slot.
    assert_eq!(xy.holders[&a].hash, None);
    assert_eq!(xy.holders[&b].hash, Some(ContentHash([2; 32])));
}

#[test]
fn a_deletion_is_stable_once_every_node_involved_has_seen_it() {
    let (a, b, c) = (node_id(0), node_id(1), node_id(2));
    let at = |node, counter| Stamp {
        node,
        counter,
        at_ms: 0,
    };
    let mut x = FileEntry::new_file(
        FileId([1; 16]),
        RepoPath::new("f").unwrap(),
        content(1),
        at(a, 1),
    );
    let mut y = x.clone();
    y.set_holding(b, Some(ContentHash([1; 32])), 1);
    x.merge(&y);
    x.set_content(Content::Deleted, at(a, 2));
    assert!(x.acknowledge_deletion(a));
    assert!(
        !x.acknowledge_deletion(a),
        "a second acknowledgement changes nothing"
    );
    assert!(
        !x.deletion_is_stable([&a]),
        "b held it and has not seen the deletion"
    );
    y.merge(&x);
    assert!(y.acknowledge_deletion(b));
    x.merge(&y);
    assert!(x.deletion_is_stable([&a, &b]));
    assert!(
        !x.deletion_is_stable([&a, &b, &c]),
        "c is known and has not seen it"
    );
    // A concurrent edit revives the file: the acknowledgements no longer cover it.
    let mut z = y.clone();
    z.set_content(content(9), at(c, 5));
    x.merge(&z);
    assert!(!x.is_deleted());
    assert!(!x.deletion_is_stable([&a, &b]));
}

/// Histories of several files over a few paths that nest (`d` is a file
/// name and a folder name), for the path-uniqueness rule.
mod trees {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::super::placement::{ancestors, layout};
    use super::super::*;
    use super::{content, node_id};

    const PATHS: &[&str] = &["d", "d/x", "d/x/y", "e", "e/d", "d.txt"];

    #[derive(Clone, Debug)]
    enum TreeOp {
        Add {
            node: usize,
            path: usize,
            bytes: u8,
        },
        Rename {
            node: usize,
            file: usize,
            path: usize,
        },
        Edit {
            node: usize,
            file: usize,
            bytes: u8,
        },
        Delete {
            node: usize,
            file: usize,
        },
        Sync {
            a: usize,
            b: usize,
        },
    }

    fn tree_op(nodes: usize) -> impl Strategy<Value = TreeOp> {
        let path = 0..PATHS.len();
        prop_oneof![
            (0..nodes, path.clone(), 0u8..8).prop_map(|(node, path, bytes)| TreeOp::Add {
                node,
                path,
                bytes
            }),
            (0..nodes, 0usize..8, path).prop_map(|(node, file, path)| TreeOp::Rename {
                node,
                file,
                path
            }),
            (0..nodes, 0usize..8, 0u8..8).prop_map(|(node, file, bytes)| TreeOp::Edit {
                node,
                file,
                bytes
            }),
            (0..nodes, 0usize..8).prop_map(|(node, file)| TreeOp::Delete { node, file }),
            (0..nodes, 0..nodes).prop_map(|(a, b)| TreeOp::Sync { a, b }),
        ]
    }

    fn tree_history() -> impl Strategy<Value = (usize, Vec<TreeOp>)> {
        (3usize..=5)
            .prop_flat_map(|nodes| (Just(nodes), prop::collection::vec(tree_op(nodes), 1..80)))
    }

    type Replica = BTreeMap<FileId, FileEntry>;

    struct Fleet {
        replicas: Vec<Replica>,
        counters: Vec<u64>,
        clock: i64,
        added: u8,
        /// Every content written, to check none is lost.
        written: BTreeSet<(FileId, ContentHash)>,
    }

    impl Fleet {
        fn stamp(&mut self, node: usize) -> Stamp {
            self.counters[node] += 1;
            self.clock += 1;
            Stamp {
                node: node_id(node),
                counter: self.counters[node],
                at_ms: self.clock,
            }
        }

        /// The `file`-th live file known to `node`, if any.
        fn pick(&self, node: usize, file: usize) -> Option<FileId> {
            let live: Vec<FileId> = self.replicas[node]
                .values()
                .filter(|e| !e.is_deleted())
                .map(|e| e.id)
                .collect();
            (!live.is_empty()).then(|| live[file % live.len()])
        }

        fn apply(&mut self, op: &TreeOp) {
            let path = |i: usize| RepoPath::new(PATHS[i]).unwrap();
            match *op {
                TreeOp::Add {
                    node,
                    path: p,
                    bytes,
                } => {
                    self.added += 1;
                    let id = FileId([self.added; 16]);
                    let stamp = self.stamp(node);
                    let entry = FileEntry::new_file(id, path(p), content(bytes), stamp);
                    self.written.insert((id, ContentHash([bytes; 32])));
                    self.replicas[node].insert(id, entry);
                }
                TreeOp::Rename {
                    node,
                    file,
                    path: p,
                } => {
                    if let Some(id) = self.pick(node, file) {
                        let stamp = self.stamp(node);
                        self.replicas[node]
                            .get_mut(&id)
                            .unwrap()
                            .rename(path(p), stamp);
                    }
                }
                TreeOp::Edit { node, file, bytes } => {
                    if let Some(id) = self.pick(node, file) {
                        let stamp = self.stamp(node);
                        let entry = self.replicas[node].get_mut(&id).unwrap();
                        entry.set_content(content(bytes), stamp);
                        self.written.insert((id, ContentHash([bytes; 32])));
                    }
                }
                TreeOp::Delete { node, file } => {
                    if let Some(id) = self.pick(node, file) {
                        let stamp = self.stamp(node);
                        let entry = self.replicas[node].get_mut(&id).unwrap();
                        entry.set_content(Content::Deleted, stamp);
                    }
                }
                TreeOp::Sync { a, b } => self.sync(a, b),
            }
        }

        fn sync(&mut self, a: usize, b: usize) {
            let (from_a, from_b) = (self.replicas[a].clone(), self.replicas[b].clone());
            for (to, from) in [(a, from_b), (b, from_a)] {
                for (id, theirs) in from {
                    self.replicas[to]
                        .entry(id)
                        .and_modify(|mine| mine.merge(&theirs))
                        .or_insert(theirs);
                }
            }
        }
    }

    /// Checks that a placement is a tree: one live file per path, and no
    /// file where another file's folder is.
    fn assert_is_a_tree(replica: &Replica) {
        let displaced = layout(replica.values());
        let placed: Vec<RepoPath> = replica
            .values()
            .filter(|e| !e.is_deleted())
            .map(|e| displaced.get(&e.id).unwrap_or(e.current_path()).clone())
            .collect();
        let unique: BTreeSet<&RepoPath> = placed.iter().collect();
        assert_eq!(
            unique.len(),
            placed.len(),
            "two live files at one path: {placed:?}"
        );
        let folders: BTreeSet<RepoPath> = placed
            .iter()
            .flat_map(|p| ancestors(p).collect::<Vec<_>>())
            .collect();
        for path in &placed {
            assert!(
                !folders.contains(path),
                "{path} is a file and a folder: {placed:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_location_converges_to_one_tree_with_one_file_per_path(
            (nodes, ops) in tree_history()
        ) {
            let mut fleet = Fleet {
                replicas: vec![Replica::new(); nodes],
                counters: vec![0; nodes],
                clock: 0,
                added: 0,
                written: BTreeSet::new(),
            };
            for op in &ops {
                fleet.apply(op);
                // Every replica's placement is a tree at every step.
                for replica in &fleet.replicas {
                    assert_is_a_tree(replica);
                }
            }
            for _ in 0..2 {
                for a in 0..nodes {
                    fleet.sync(a, (a + 1) % nodes);
                }
            }
            for replica in &fleet.replicas[1..] {
                prop_assert_eq!(replica, &fleet.replicas[0]);
            }
            let first = &fleet.replicas[0];
            prop_assert_eq!(layout(first.values()), layout(fleet.replicas[nodes - 1].values().rev()));
            // Every content written is still current in its file, or was
            // superseded by a later write that saw it (never dropped by a
            // clash for a path: a clash only moves files).
            let live: BTreeSet<FileId> = first.values().filter(|e| !e.is_deleted()).map(|e| e.id).collect();
            for (id, _) in &fleet.written {
                prop_assert!(first.contains_key(id));
            }
            prop_assert!(live.len() <= fleet.added as usize);
        }
    }
}
