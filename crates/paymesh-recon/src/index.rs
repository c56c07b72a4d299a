//! Hash chains over input items, keyed by a 64-bit hash of borrowed fields.
//!
//! A million book entries are indexed four ways, so the index stores no strings: a map from the
//! key's hash to the first item with that hash, and one `next` array linking the others. Two
//! different keys may share a hash, so every lookup compares the real fields of each item it
//! walks; a collision costs a comparison, never a wrong pairing. Keys are hashed once, by
//! [`KeyHash`], and the map uses that hash as it is.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};

use crate::Direction;

/// "No item": the end of a chain, or an unpaired book entry / line.
pub(crate) const NONE: u32 = u32::MAX;

/// A 64-bit hash of a key built from strings and integers (FxHash's word step, then the
/// MurmurHash3 finaliser so that both the low bits hashbrown buckets on and the high bits it
/// tags with are well mixed).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyHash(u64);

impl KeyHash {
    const MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

    fn word(self, word: u64) -> Self {
        Self((self.0.rotate_left(5) ^ word).wrapping_mul(Self::MULTIPLIER))
    }

    pub(crate) fn str(self, s: &str) -> Self {
        let mut chunks = s.as_bytes().chunks_exact(8);
        let mut hash = self;
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            hash = hash.word(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0; 8];
        word[..rest.len()].copy_from_slice(rest);
        // The length ends the field, so ("ab", "c") and ("a", "bc") differ.
        hash.word(u64::from_le_bytes(word)).word(s.len() as u64)
    }

    pub(crate) fn int(self, value: i64) -> Self {
        self.word(value as u64)
    }

    pub(crate) fn direction(self, direction: Direction) -> Self {
        self.word(match direction {
            Direction::Credit => 1,
            Direction::Debit => 2,
        })
    }

    pub(crate) fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Passes a [`KeyHash`] through to the map unchanged: it is already well mixed.
#[derive(Debug, Default)]
pub(crate) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are used; this keeps any other key correct, if slow.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Items grouped by key hash, each group a linked chain.
#[derive(Debug)]
pub(crate) struct Chains {
    heads: HashMap<u64, u32, BuildHasherDefault<PreHashed>>,
    next: Vec<u32>,
}

impl Chains {
    /// Room for `keys` distinct hashes over items `0..items`.
    pub(crate) fn with_capacity(keys: usize, items: usize) -> Self {
        let mut heads = HashMap::with_hasher(BuildHasherDefault::default());
        heads.reserve(keys);
        Self {
            heads,
            next: vec![NONE; items],
        }
    }

    /// Puts `item` at the front of its chain. Pushing items in descending order leaves every
    /// chain in ascending order, which is what "lowest index first" relies on.
    pub(crate) fn push_front(&mut self, hash: u64, item: u32) {
        let previous = self.heads.insert(hash, item).unwrap_or(NONE);
        self.next[item as usize] = previous;
    }

    /// The lowest item under `hash` for which `is_same` holds; if there is none, puts `item`
    /// at the front of the chain instead. One probe of the map for both.
    pub(crate) fn find_or_push(
        &mut self,
        hash: u64,
        item: u32,
        is_same: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        match self.heads.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(item);
                self.next[item as usize] = NONE;
                None
            }
            Entry::Occupied(mut head) => {
                let chain = Chain {
                    next: &self.next,
                    at: *head.get(),
                };
                let found = chain.filter(|&other| is_same(other)).min();
                if found.is_none() {
                    self.next[item as usize] = head.insert(item);
                }
                found
            }
        }
    }

    /// The items pushed under `hash` (plus any whose key merely shares the hash).
    pub(crate) fn get(&self, hash: u64) -> Chain<'_> {
        Chain {
            next: &self.next,
            at: self.heads.get(&hash).copied().unwrap_or(NONE),
        }
    }
}

/// Walks one chain.
#[derive(Debug, Clone)]
pub(crate) struct Chain<'a> {
    next: &'a [u32],
    at: u32,
}

impl Iterator for Chain<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let item = self.at;
        if item == NONE {
            return None;
        }
        self.at = self.next[item as usize];
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_boundaries_change_the_hash() {
        let a = KeyHash::default().str("ab").str("c").finish();
        let b = KeyHash::default().str("a").str("bc").finish();
        assert_ne!(a, b);
    }

    #[test]
    fn chains_pushed_in_descending_order_come_out_ascending_and_colliding_keys_share_a_chain() {
        let mut chains = Chains::with_capacity(2, 5);
        for item in (0..5).rev() {
            chains.push_front(if item % 2 == 0 { 7 } else { 9 }, item);
        }
        assert_eq!(chains.get(7).collect::<Vec<_>>(), [0, 2, 4]);
        assert_eq!(chains.get(9).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(chains.get(8).count(), 0);
    }

    #[test]
    fn find_or_push_finds_the_lowest_same_item_or_else_pushes() {
        let mut chains = Chains::with_capacity(1, 4);
        assert_eq!(chains.find_or_push(5, 0, |_| true), None);
        assert_eq!(chains.find_or_push(5, 1, |_| false), None);
        assert_eq!(chains.get(5).collect::<Vec<_>>(), [1, 0]);
        assert_eq!(chains.find_or_push(5, 2, |other| other < 2), Some(0));
        assert_eq!(chains.get(5).collect::<Vec<_>>(), [1, 0]);
    }
}
