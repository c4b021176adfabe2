//! The store of skipped message keys (`MKSKIPPED` of the Double Ratchet specification), grouped by the
//! header key of the receiving chain they belong to.
//!
//! Grouping bounds the work an incoming blob costs: it is tried against one header key per retained
//! chain (at most [`MAX_RECEIVING_CHAINS`]), not once per stored key. Every removal wipes the removed
//! key and the slot that shifting the vector leaves behind, and every growth wipes the old buffer, so a
//! used or forgotten message key does not linger in freed or spare memory.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::codec::Reader;

/// Most skipped message keys one skip (one chain, for one message) keeps: when more are skipped, the
/// newest `MAX_SKIP` are kept and the older ones given up.
pub const MAX_SKIP: u32 = 1000;
/// Most skipped message keys kept in total; beyond it the oldest are forgotten first.
pub const MAX_STORED_SKIPPED: usize = 1500;
/// Most receiving chains whose skipped keys are kept; a new one makes the oldest forgotten.
pub const MAX_RECEIVING_CHAINS: usize = 5;
/// Most chain steps derived in one chain for one message. A message further ahead than this in its
/// own chain is refused; an older chain further behind than this is given up without deriving.
pub const MAX_JUMP: u32 = 25_000;

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct Key {
    n: u32,
    mk: [u8; 32],
}

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct Chain {
    hk: [u8; 32],
    /// Oldest first; never empty.
    keys: Vec<Key>,
}

/// Skipped keys by receiving chain, oldest chain first.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Skipped {
    chains: Vec<Chain>,
}

/// Removes `v[pos]` and wipes it, and the copy that the shift leaves in the spare capacity.
fn remove_wiped<T: Zeroize>(v: &mut Vec<T>, pos: usize) {
    v[pos].zeroize();
    drop(v.remove(pos));
    v.spare_capacity_mut().zeroize();
}

/// Removes the first `count` elements, wiping them and the stale copies the shift leaves behind.
fn drain_front_wiped<T: Zeroize>(v: &mut Vec<T>, count: usize) {
    v[..count].iter_mut().for_each(Zeroize::zeroize);
    drop(v.drain(..count));
    v.spare_capacity_mut().zeroize();
}

/// Makes room for `extra` more elements; a reallocation moves the elements itself and wipes the old
/// buffer instead of leaving it to the allocator.
fn reserve_wiped<T: Zeroize>(v: &mut Vec<T>, extra: usize) {
    if v.capacity() - v.len() >= extra {
        return;
    }
    let mut bigger = Vec::with_capacity(v.len() + extra);
    bigger.append(v);
    v.zeroize();
    *v = bigger;
}

impl Skipped {
    /// Total number of stored keys.
    pub(crate) fn len(&self) -> usize {
        self.chains.iter().map(|c| c.keys.len()).sum()
    }

    /// Number of retained chains (distinct header keys).
    pub(crate) fn chains(&self) -> usize {
        self.chains.len()
    }

    /// The header key of retained chain `i` (oldest first).
    pub(crate) fn header_key(&self, i: usize) -> &[u8; 32] {
        &self.chains[i].hk
    }

    /// Takes the key of message `n` of chain `i`, if stored; the chain goes when its last key does.
    pub(crate) fn take(&mut self, i: usize, n: u32) -> Option<Zeroizing<[u8; 32]>> {
        let chain = &mut self.chains[i];
        let pos = chain.keys.iter().position(|k| k.n == n)?;
        let mk = Zeroizing::new(chain.keys[pos].mk);
        remove_wiped(&mut chain.keys, pos);
        if chain.keys.is_empty() {
            remove_wiped(&mut self.chains, i);
        }
        Some(mk)
    }

    /// Appends keys of the chain with header key `hk` (numbers ascending, after any already stored for
    /// it), then enforces [`MAX_RECEIVING_CHAINS`] and [`MAX_STORED_SKIPPED`]. Returns how many stored
    /// keys that forgot.
    pub(crate) fn extend(
        &mut self,
        hk: &[u8; 32],
        keys: impl ExactSizeIterator<Item = (u32, [u8; 32])>,
    ) -> u32 {
        if keys.len() == 0 {
            return 0;
        }
        let i = match self.chains.iter().position(|c| bool::from(c.hk.ct_eq(hk))) {
            Some(i) => i,
            None => {
                reserve_wiped(&mut self.chains, 1);
                self.chains.push(Chain { hk: *hk, keys: Vec::new() });
                self.chains.len() - 1
            }
        };
        let chain = &mut self.chains[i];
        reserve_wiped(&mut chain.keys, keys.len());
        for (n, mut mk) in keys {
            chain.keys.push(Key { n, mk });
            mk.zeroize();
        }
        self.enforce_bounds()
    }

    fn enforce_bounds(&mut self) -> u32 {
        let mut forgotten = 0usize;
        if self.chains.len() > MAX_RECEIVING_CHAINS {
            let excess = self.chains.len() - MAX_RECEIVING_CHAINS;
            forgotten += self.chains[..excess].iter().map(|c| c.keys.len()).sum::<usize>();
            drain_front_wiped(&mut self.chains, excess);
        }
        let mut over = self.len().saturating_sub(MAX_STORED_SKIPPED);
        forgotten += over;
        while over > 0 {
            let oldest = &mut self.chains[0];
            if oldest.keys.len() <= over {
                over -= oldest.keys.len();
                remove_wiped(&mut self.chains, 0);
            } else {
                drain_front_wiped(&mut oldest.keys, over);
                over = 0;
            }
        }
        // Bounded by MAX_STORED_SKIPPED plus one skip, far below u32::MAX.
        u32::try_from(forgotten).unwrap_or(u32::MAX)
    }

    /// Stored form: `chain count (1)`, then per chain `HK (32) ‖ key count (2) ‖ count × (N (4) ‖ MK (32))`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        // Both counts fit: at most MAX_RECEIVING_CHAINS chains and MAX_STORED_SKIPPED keys.
        out.push(self.chains.len() as u8);
        for chain in &self.chains {
            out.extend_from_slice(&chain.hk);
            out.extend_from_slice(&(chain.keys.len() as u16).to_be_bytes());
            for key in &chain.keys {
                out.extend_from_slice(&key.n.to_be_bytes());
                out.extend_from_slice(&key.mk);
            }
        }
    }

    /// Reads [`Self::write`]'s form; `None` unless every chain is non-empty, the header keys are
    /// distinct and the bounds hold.
    pub(crate) fn read(r: &mut Reader<'_>) -> Option<Self> {
        let count = usize::from(r.u8()?);
        if count > MAX_RECEIVING_CHAINS {
            return None;
        }
        let mut store = Self::default();
        let mut total = 0usize;
        for _ in 0..count {
            let hk: [u8; 32] = r.array()?;
            let len = usize::from(r.u16()?);
            total += len;
            if len == 0
                || total > MAX_STORED_SKIPPED
                || store.chains.iter().any(|c| bool::from(c.hk.ct_eq(&hk)))
            {
                return None;
            }
            let mut keys = Vec::with_capacity(len);
            for _ in 0..len {
                keys.push(Key { n: r.u32()?, mk: r.array()? });
            }
            store.chains.push(Chain { hk, keys });
        }
        Some(store)
    }

    /// Reads the version 1 stored form, a flat list `count (2) ‖ count × (HK ‖ N ‖ MK)`, oldest first,
    /// into chains in order of first appearance; only the newest [`MAX_RECEIVING_CHAINS`] are kept.
    pub(crate) fn read_v1(r: &mut Reader<'_>) -> Option<Self> {
        let count = usize::from(r.u16()?);
        if count > MAX_STORED_SKIPPED {
            return None;
        }
        let mut store = Self::default();
        for _ in 0..count {
            let hk: [u8; 32] = r.array()?;
            let key = Key { n: r.u32()?, mk: r.array()? };
            match store.chains.iter_mut().find(|c| bool::from(c.hk.ct_eq(&hk))) {
                Some(chain) => {
                    reserve_wiped(&mut chain.keys, 1);
                    chain.keys.push(key);
                }
                None => {
                    reserve_wiped(&mut store.chains, 1);
                    store.chains.push(Chain { hk, keys: vec![key] });
                }
            }
        }
        store.enforce_bounds();
        Some(store)
    }
}

#[cfg(test)]
impl Skipped {
    /// The newest stored message key.
    pub(crate) fn newest_key(&self) -> [u8; 32] {
        self.chains.last().and_then(|c| c.keys.last()).map(|k| k.mk).unwrap_or_default()
    }

    /// The bytes of every vector's spare capacity: where removed elements would linger.
    #[allow(unsafe_code)]
    pub(crate) fn spare_bytes(&mut self) -> Vec<u8> {
        fn bytes<T>(v: &mut Vec<T>) -> Vec<u8> {
            let spare = v.spare_capacity_mut();
            // SAFETY (test only): spare slots hold the bytes of elements that were moved out or were
            // never written; zeroized or not, they are read as plain bytes and not as values of T.
            unsafe { std::slice::from_raw_parts(spare.as_ptr().cast::<u8>(), std::mem::size_of_val(spare)) }
                .to_vec()
        }
        let mut out = bytes(&mut self.chains);
        for chain in &mut self.chains {
            out.extend(bytes(&mut chain.keys));
        }
        out
    }
}
