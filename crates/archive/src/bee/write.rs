//! Insert and delete, byte-exact with JS hyperbee 2 (FORMAT.md §1.6–1.8). Nodes touched by one operation
//! live in a small arena; untouched subtrees stay as (seq, offset) pointers and are never loaded.

use super::block::{Level, NodePtr};
use super::{Bee, BlockStore};
use libvms_errors::{err, Result};
use std::cmp::Ordering;

const MAX_CHILDREN: usize = 9; // a node splits when its key count reaches this
const MIN_KEYS: usize = 4;

#[derive(Clone, Copy)]
struct Child {
    ptr: NodePtr,
    loaded: Option<usize>,
}

struct WNode {
    keys: Vec<u64>,
    children: Vec<Child>,
    changed: bool,
}

pub(super) struct Tx<'a, S: BlockStore> {
    bee: &'a mut Bee<S>,
    nodes: Vec<WNode>,
    seq: u64,
    key: &'a [u8],
}

impl<'a, S: BlockStore> Tx<'a, S> {
    /// `seq` is the seq the new block will get (the bee's length including staged blocks).
    pub(super) fn new(bee: &'a mut Bee<S>, seq: u64, key: &'a [u8]) -> Self {
        Tx {
            bee,
            nodes: Vec::new(),
            seq,
            key,
        }
    }

    fn load(&mut self, ptr: NodePtr) -> Result<usize> {
        let block = self.bee.block(ptr.seq)?;
        let level = block.level(ptr.offset)?;
        let children = level
            .children
            .iter()
            .map(|&p| Child {
                ptr: p,
                loaded: None,
            })
            .collect();
        self.nodes.push(WNode {
            keys: level.keys.clone(),
            children,
            changed: false,
        });
        // A real path (plus the siblings a delete reads) stays far below this; a damaged tree could not.
        if self.nodes.len() > 1024 {
            return Err(err::corrupt("tree too deep"));
        }
        Ok(self.nodes.len() - 1)
    }

    fn child(&mut self, n: usize, i: usize) -> Result<usize> {
        let c = self.nodes[n].children[i];
        if let Some(l) = c.loaded {
            return Ok(l);
        }
        let l = self.load(c.ptr)?;
        self.nodes[n].children[i].loaded = Some(l);
        Ok(l)
    }

    fn root(&mut self) -> Result<Option<usize>> {
        if self.seq < 2 {
            return Ok(None);
        }
        self.load(NodePtr {
            seq: self.seq - 1,
            offset: 0,
        })
        .map(Some)
    }

    /// target vs key of `key_seq`.
    fn cmp(&mut self, key_seq: u64) -> Result<Ordering> {
        if key_seq == self.seq {
            return Ok(Ordering::Equal);
        }
        let b = self.bee.block(key_seq)?;
        Ok(self.key.cmp(b.key.as_slice()))
    }

    /// Binary search as JS does it: Ok(found index) or Err(insert position).
    fn search(&mut self, n: usize) -> Result<std::result::Result<usize, usize>> {
        let (mut s, mut e) = (0, self.nodes[n].keys.len());
        while s < e {
            let mid = (s + e) >> 1;
            match self.cmp(self.nodes[n].keys[mid])? {
                Ordering::Equal => return Ok(Ok(mid)),
                Ordering::Less => e = mid,
                Ordering::Greater => s = mid + 1,
            }
        }
        Ok(Err(s))
    }

    fn new_node(&mut self, keys: Vec<u64>, children: Vec<Child>) -> usize {
        self.nodes.push(WNode {
            keys,
            children,
            changed: true,
        });
        self.nodes.len() - 1
    }

    fn fresh(n: usize) -> Child {
        Child {
            ptr: NodePtr { seq: 0, offset: 0 },
            loaded: Some(n),
        }
    }

    /// Returns the levels of the new block (root at offset 0).
    pub(super) fn put(mut self) -> Result<Vec<Level>> {
        let seq = self.seq;
        let Some(root) = self.root()? else {
            let r = self.new_node(vec![seq], vec![]);
            return Ok(self.index(r));
        };
        let mut stack: Vec<(usize, usize)> = Vec::new(); // (inner node, child index descended)
        let mut node = root;
        while !self.nodes[node].children.is_empty() {
            self.nodes[node].changed = true;
            match self.search(node)? {
                Ok(i) => {
                    self.nodes[node].keys[i] = seq;
                    return Ok(self.index(root));
                }
                Err(i) => {
                    stack.push((node, i));
                    node = self.child(node, i)?;
                }
            }
        }
        self.nodes[node].changed = true;
        match self.search(node)? {
            Ok(i) => {
                self.nodes[node].keys[i] = seq;
                return Ok(self.index(root));
            }
            Err(i) => self.nodes[node].keys.insert(i, seq),
        }
        let mut root = root;
        while self.nodes[node].keys.len() >= MAX_CHILDREN {
            let (median, right) = self.split(node);
            match stack.pop() {
                Some((parent, i)) => {
                    let p = &mut self.nodes[parent];
                    p.keys.insert(i, median);
                    p.children.insert(i + 1, Self::fresh(right));
                    p.changed = true;
                    node = parent;
                }
                None => {
                    root = self.new_node(vec![median], vec![Self::fresh(node), Self::fresh(right)]);
                    break;
                }
            }
        }
        Ok(self.index(root))
    }

    /// JS split: the right node takes the last n>>1 keys (and children), the key before them is the median.
    fn split(&mut self, n: usize) -> (u64, usize) {
        let node = &mut self.nodes[n];
        let r = node.keys.len() >> 1;
        let right_keys = node.keys.split_off(node.keys.len() - r);
        let median = node
            .keys
            .pop()
            .expect("split of a node with at least 2 keys");
        let right_children = if node.children.is_empty() {
            vec![]
        } else {
            node.children.split_off(node.children.len() - (r + 1))
        };
        node.changed = true;
        let right = self.new_node(right_keys, right_children);
        (median, right)
    }

    /// Returns None when the key is missing (nothing to write).
    pub(super) fn del(mut self) -> Result<Option<Vec<Level>>> {
        let Some(root) = self.root()? else {
            return Ok(None);
        };
        let mut stack: Vec<(usize, usize)> = Vec::new(); // (node, its index in the parent)
        let mut node = root;
        let mut idx = 0;
        loop {
            stack.push((node, idx));
            match self.search(node)? {
                Ok(i) => {
                    if self.nodes[node].children.is_empty() {
                        self.nodes[node].keys.remove(i);
                    } else {
                        self.take_nearest_leaf_key(node, i, &mut stack)?;
                    }
                    for &(n, _) in &stack {
                        self.nodes[n].changed = true;
                    }
                    let root = self.rebalance(stack)?;
                    return Ok(Some(self.index(root)));
                }
                Err(i) => {
                    if self.nodes[node].children.is_empty() {
                        return Ok(None);
                    }
                    idx = i;
                    node = self.child(node, i)?;
                }
            }
        }
    }

    fn leaf_size(&mut self, mut n: usize, go_left: bool) -> Result<usize> {
        while !self.nodes[n].children.is_empty() {
            let i = if go_left {
                0
            } else {
                self.nodes[n].children.len() - 1
            };
            n = self.child(n, i)?;
        }
        Ok(self.nodes[n].keys.len())
    }

    fn take_nearest_leaf_key(
        &mut self,
        node: usize,
        i: usize,
        stack: &mut Vec<(usize, usize)>,
    ) -> Result<()> {
        let left = self.child(node, i)?;
        let right = self.child(node, i + 1)?;
        let ls = self.leaf_size(left, false)?;
        let rs = self.leaf_size(right, true)?;
        if ls < rs {
            let mut n = right;
            stack.push((n, i + 1));
            while !self.nodes[n].children.is_empty() {
                n = self.child(n, 0)?;
                stack.push((n, 0));
            }
            if self.nodes[n].keys.is_empty() {
                return Err(err::corrupt("empty leaf inside the tree"));
            }
            let k = self.nodes[n].keys.remove(0);
            self.nodes[node].keys[i] = k;
        } else {
            let mut n = left;
            stack.push((n, i));
            while !self.nodes[n].children.is_empty() {
                let last = self.nodes[n].children.len() - 1;
                n = self.child(n, last)?;
                stack.push((n, last));
            }
            let k = self.nodes[n]
                .keys
                .pop()
                .ok_or_else(|| err::corrupt("empty leaf inside the tree"))?;
            self.nodes[node].keys[i] = k;
        }
        Ok(())
    }

    fn rebalance(&mut self, mut stack: Vec<(usize, usize)>) -> Result<usize> {
        let root = stack[0].0;
        while stack.len() > 1 {
            let (node, index) = stack.pop().expect("len > 1");
            let parent = stack[stack.len() - 1].0;
            if self.nodes[node].keys.len() >= MIN_KEYS {
                return Ok(root);
            }
            let nchildren = self.nodes[parent].children.len();
            let left = if index > 0 {
                Some(self.child(parent, index - 1)?)
            } else {
                None
            };
            let right = if index + 1 < nchildren {
                Some(self.child(parent, index + 1)?)
            } else {
                None
            };
            if let Some(l) = left.filter(|&l| self.nodes[l].keys.len() > MIN_KEYS) {
                // rotate right: separator comes down into node, left's last key goes up.
                self.nodes[l].changed = true;
                let sep = self.nodes[parent].keys[index - 1];
                self.nodes[node].keys.insert(0, sep);
                if let Some(c) = self.nodes[l].children.pop() {
                    self.nodes[node].children.insert(0, c);
                }
                let up = self.nodes[l].keys.pop().expect("> MIN_KEYS");
                self.nodes[parent].keys[index - 1] = up;
                return Ok(root);
            }
            if let Some(r) = right.filter(|&r| self.nodes[r].keys.len() > MIN_KEYS) {
                self.nodes[r].changed = true;
                let sep = self.nodes[parent].keys[index];
                self.nodes[node].keys.push(sep);
                if !self.nodes[r].children.is_empty() {
                    let c = self.nodes[r].children.remove(0);
                    self.nodes[node].children.push(c);
                }
                let up = self.nodes[r].keys.remove(0);
                self.nodes[parent].keys[index] = up;
                return Ok(root);
            }
            let (into, from, sep_i) = match (left, right) {
                (Some(l), _) => (l, node, index - 1),
                (None, Some(r)) => (node, r, index),
                (None, None) => return Err(err::corrupt("inner node with a single child")),
            };
            let sep = self.nodes[parent].keys[sep_i];
            let (keys, children) = (
                std::mem::take(&mut self.nodes[from].keys),
                std::mem::take(&mut self.nodes[from].children),
            );
            let dst = &mut self.nodes[into];
            dst.changed = true;
            dst.keys.push(sep);
            dst.keys.extend(keys);
            dst.children.extend(children);
            let p = &mut self.nodes[parent];
            p.keys.remove(sep_i);
            p.children.remove(sep_i + 1);
            p.changed = true;
        }
        if self.nodes[root].keys.is_empty() && !self.nodes[root].children.is_empty() {
            return self.child(root, 0);
        }
        Ok(root)
    }

    /// Pre-order layout of changed nodes: root at 0, changed children get the next offsets (§1.8).
    fn index(&mut self, root: usize) -> Vec<Level> {
        let mut out = Vec::new();
        self.index_node(root, &mut out);
        out
    }

    fn index_node(&mut self, n: usize, out: &mut Vec<Level>) {
        let at = out.len();
        out.push(Level::default());
        self.nodes[n].changed = false;
        for ci in 0..self.nodes[n].children.len() {
            let c = self.nodes[n].children[ci];
            if let Some(l) = c.loaded {
                if self.nodes[l].changed {
                    self.nodes[n].children[ci].ptr = NodePtr {
                        seq: self.seq,
                        offset: out.len() as u64,
                    };
                    self.index_node(l, out);
                }
            }
        }
        let node = &self.nodes[n];
        out[at] = Level {
            keys: node.keys.clone(),
            children: node.children.iter().map(|c| c.ptr).collect(),
        };
    }
}
