//! Flat-tree math (the `flat-tree` npm package): leaf i is node 2i, the node at depth d and
//! offset o is `(2o+1)·2^d − 1`. Callers keep indexes below `MAX_INDEX`, so nothing here overflows.

/// Indexes at or above this are rejected at the edges (proofs, headers): 2^62 nodes is far past any
/// real core and keeps every `factor`/span computation inside u64.
pub const MAX_INDEX: u64 = 1 << 62;

pub fn depth(i: u64) -> u32 {
    (!i).trailing_zeros()
}

pub fn offset(i: u64) -> u64 {
    let d = depth(i);
    if d >= 63 {
        return 0;
    }
    (i + 1) >> (d + 1)
}

pub fn index(depth: u32, offset: u64) -> u64 {
    ((offset << 1) + 1) * (1u64 << depth) - 1
}

pub fn parent(i: u64) -> u64 {
    let d = depth(i);
    index(d + 1, offset(i) >> 1)
}

pub fn sibling(i: u64) -> u64 {
    let d = depth(i);
    index(d, offset(i) ^ 1)
}

pub fn left_span(i: u64) -> u64 {
    let d = depth(i);
    if d == 0 {
        return i;
    }
    offset(i) * (2u64 << d)
}

pub fn right_span(i: u64) -> u64 {
    let d = depth(i);
    if d == 0 {
        return i;
    }
    (offset(i) + 1) * (2u64 << d) - 2
}

pub fn count_leaves(i: u64) -> u64 {
    1u64 << depth(i)
}

/// Children of a parent node (None for a leaf).
pub fn children(i: u64) -> Option<(u64, u64)> {
    let d = depth(i);
    if d == 0 {
        return None;
    }
    let half = 1u64 << (d - 1);
    Some((i - half, i + half))
}

/// Roots of a tree whose head is `head` (= 2·length), in ascending order.
pub fn full_roots(head: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut leaves = head / 2;
    let mut offset = 0u64;
    while leaves > 0 {
        let factor = 1u64 << (63 - leaves.leading_zeros());
        out.push(offset + factor - 1);
        offset += 2 * factor;
        leaves -= factor;
    }
    out
}

/// A cursor over the tree with the same moves as flat-tree's iterator.
#[derive(Clone, Copy, Debug)]
pub struct Iter {
    pub index: u64,
    pub offset: u64,
    pub factor: u64,
}

impl Iter {
    pub fn new(index: u64) -> Self {
        let mut it = Iter { index: 0, offset: 0, factor: 2 };
        it.seek(index);
        it
    }

    pub fn seek(&mut self, index: u64) {
        self.index = index;
        if index & 1 == 1 {
            self.offset = offset(index);
            self.factor = 2u64 << depth(index);
        } else {
            self.offset = index / 2;
            self.factor = 2;
        }
    }

    pub fn is_left(&self) -> bool {
        self.offset & 1 == 0
    }

    pub fn contains(&self, index: u64) -> bool {
        let half = self.factor / 2;
        if index > self.index {
            index < self.index + half
        } else if index < self.index {
            index + half > self.index
        } else {
            true
        }
    }

    /// Signed variant for flat-tree's `contains(from - 2)` with from = 0.
    pub fn contains_i(&self, index: i128) -> bool {
        if index < 0 {
            return false;
        }
        self.contains(index as u64)
    }

    pub fn step_right(&mut self) -> u64 {
        self.offset += 1;
        self.index += self.factor;
        self.index
    }

    pub fn step_left(&mut self) -> u64 {
        if self.offset == 0 {
            return self.index;
        }
        self.offset -= 1;
        self.index -= self.factor;
        self.index
    }

    pub fn sibling(&mut self) -> u64 {
        if self.is_left() {
            self.step_right()
        } else {
            self.step_left()
        }
    }

    pub fn parent(&mut self) -> u64 {
        if self.offset & 1 == 1 {
            self.index -= self.factor / 2;
            self.offset = (self.offset - 1) / 2;
        } else {
            self.index += self.factor / 2;
            self.offset /= 2;
        }
        self.factor *= 2;
        self.index
    }

    pub fn left_child(&mut self) -> u64 {
        if self.factor == 2 {
            return self.index;
        }
        self.factor /= 2;
        self.index -= self.factor / 2;
        self.offset *= 2;
        self.index
    }

    pub fn right_child(&mut self) -> u64 {
        if self.factor == 2 {
            return self.index;
        }
        self.factor /= 2;
        self.index += self.factor / 2;
        self.offset = 2 * self.offset + 1;
        self.index
    }

    pub fn left_span(&self) -> u64 {
        self.index + 1 - self.factor / 2
    }

    pub fn right_span(&self) -> u64 {
        self.index + self.factor / 2 - 1
    }

    pub fn count_leaves(&self) -> u64 {
        self.factor / 2
    }

    pub fn next_tree(&mut self) -> u64 {
        self.index = self.index + self.factor / 2 + 1;
        self.offset = self.index / 2;
        self.factor = 2;
        self.index
    }

    /// Grow (from a leaf) to the largest full root that stays below `head`; false when the cursor
    /// is already at or past `head` (the loop condition of flat-tree's `fullRoot`).
    pub fn full_root(&mut self, head: u64) -> bool {
        if head <= self.index || self.index & 1 == 1 {
            return false;
        }
        while head > self.index + self.factor + self.factor / 2 {
            self.index += self.factor / 2;
            self.factor *= 2;
            self.offset /= 2;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        assert_eq!(depth(0), 0);
        assert_eq!(depth(1), 1);
        assert_eq!(depth(3), 2);
        assert_eq!(depth(7), 3);
        assert_eq!(offset(5), 1);
        assert_eq!(offset(4), 2);
        assert_eq!(index(1, 1), 5);
        assert_eq!(parent(0), 1);
        assert_eq!(parent(2), 1);
        assert_eq!(parent(1), 3);
        assert_eq!(parent(5), 3);
        assert_eq!(sibling(0), 2);
        assert_eq!(sibling(5), 1);
        assert_eq!(left_span(3), 0);
        assert_eq!(right_span(3), 6);
        assert_eq!(left_span(11), 8);
        assert_eq!(right_span(11), 14);
        assert_eq!(children(3), Some((1, 5)));
        assert_eq!(children(4), None);
        assert_eq!(count_leaves(7), 8);
    }

    #[test]
    fn roots() {
        assert_eq!(full_roots(6), vec![1, 4]);
        assert_eq!(full_roots(10), vec![3, 8]);
        assert_eq!(full_roots(0), Vec::<u64>::new());
        assert_eq!(full_roots(80000), vec![32767, 69631, 75775, 78847, 79935]);
    }

    #[test]
    fn iterator_moves() {
        let mut it = Iter::new(0);
        assert_eq!(it.parent(), 1);
        assert_eq!(it.parent(), 3);
        assert_eq!(it.sibling(), 11);
        assert_eq!(it.left_child(), 9);
        assert_eq!(it.right_child(), 10);
        let mut it = Iter::new(0);
        assert!(it.full_root(10));
        assert_eq!(it.index, 3);
        it.next_tree();
        assert_eq!(it.index, 8);
        assert!(it.full_root(10));
        assert_eq!(it.index, 8);
        it.next_tree();
        assert!(!it.full_root(10));
        let it = Iter::new(3);
        assert!(it.contains(0) && it.contains(6) && !it.contains(7));
    }
}
