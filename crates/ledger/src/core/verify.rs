//! Full verification: every block and node checked against the signed head.

use libvms_errors::{err, Result};

use crate::crypto::{leaf_hash, parent_node};
use crate::flat;
use crate::tree::Node;

use super::{Core, DataReader, NodeReader, verification_failed};

impl Core {
    /// Signature over the stored roots, then every held block against its leaf and every stored
    /// parent against its children. The error names the lowest bad block index.
    pub fn verify(&mut self) -> Result<()> {
        if self.length == 0 {
            return Ok(());
        }
        // Stored roots, as on disk (not the in-memory trusted copies).
        let stored_roots: Vec<Option<Node>> = flat::full_roots(2 * self.length).into_iter().map(|i| self.tree.get(i)).collect::<Result<_>>()?;
        let sig_ok = match stored_roots.iter().copied().collect::<Option<Vec<Node>>>() {
            Some(r) => self.signature_ok(&r),
            None => false,
        };
        let mut first_bad: Option<(u64, String)> = None;
        let mut note = |i: u64, msg: String| {
            if first_bad.as_ref().is_none_or(|(b, _)| i < *b) {
                first_bad = Some((i, msg));
            }
        };
        // Nodes found bad, so a parent is not blamed for a damaged child.
        let mut bad_nodes = std::collections::HashSet::new();
        let mut reader = NodeReader::new(&self.tree, 2 * self.length);
        let data_len = self.data.len()?;
        let mut data = DataReader::new(&self.data);
        let mut offset: Option<u64> = Some(0);
        for i in 0..self.length {
            let leaf = reader.get(2 * i)?;
            let held = self.bitfield.get(i);
            let Some(leaf) = leaf else {
                if held {
                    note(i, format!("tree node {} is missing", 2 * i));
                    bad_nodes.insert(2 * i);
                }
                offset = None;
                continue;
            };
            let off = match offset {
                Some(o) => o,
                None => match self.byte_offset(i) {
                    Ok(o) => o,
                    Err(_) => {
                        if held {
                            note(i, format!("cannot locate block {i}"));
                            bad_nodes.insert(2 * i);
                        }
                        continue;
                    }
                },
            };
            if held {
                if off.checked_add(leaf.size).is_none_or(|e| e > data_len) {
                    note(i, format!("block {i} does not fit the data file"));
                    bad_nodes.insert(2 * i);
                } else {
                    let bytes = data.read(off, leaf.size)?;
                    if leaf_hash(bytes) != leaf.hash {
                        note(i, format!("block {i} does not match tree node {}", 2 * i));
                        bad_nodes.insert(2 * i);
                    }
                }
            }
            offset = off.checked_add(leaf.size);
        }
        // Parents: every stored parent inside the tree must be the hash of its stored children.
        let head = 2 * self.length;
        let mut depth = 1u32;
        while (1u64 << depth) <= self.length {
            let mut o = 0u64;
            loop {
                let p = flat::index(depth, o);
                if flat::right_span(p) >= head {
                    break;
                }
                if let Some(pn) = reader.get(p)? {
                    let (l, r) = flat::children(p).expect("depth >= 1");
                    let first = flat::left_span(p) / 2;
                    match (reader.get(l)?, reader.get(r)?) {
                        (Some(ln), Some(rn)) => {
                            let ok = parent_node(p, &ln, &rn).is_some_and(|c| c == pn);
                            if !ok {
                                // A damaged child is the culprit, not this parent.
                                if !bad_nodes.contains(&l) && !bad_nodes.contains(&r) {
                                    note(first, format!("tree node {p} does not match its children"));
                                }
                                bad_nodes.insert(p);
                            }
                        }
                        _ => {
                            // A replica may hold a parent without its children; a full core may not.
                            if (first..=flat::right_span(p) / 2).all(|b| self.bitfield.get(b)) {
                                note(first, format!("children of tree node {p} are missing"));
                            }
                        }
                    }
                }
                o += 1;
            }
            depth += 1;
        }
        if let Some((i, msg)) = first_bad {
            return Err(verification_failed(i, msg));
        }
        if !sig_ok {
            return Err(err::signature("the signature does not match the stored tree"));
        }
        Ok(())
    }
}
