//! [`SeededHasher`]: the hash of the speaker's hot maps (received prefixes and attribute
//! sets, the Adj-RIB-Out's pending changes and interned sets): a multiply-fold per 8 octets
//! with a random seed per map. SipHash cost more than the maps themselves on a full table;
//! the seed keeps a peer or an API client from choosing keys that collide in every run. Not
//! a cryptographic hash: an attacker who can time lookups might still learn a seed.

use std::hash::{BuildHasher, Hasher, RandomState};

/// The hasher of a map: a random seed per map.
#[derive(Debug, Clone)]
pub struct SeededHasher(u64);

impl Default for SeededHasher {
    fn default() -> Self {
        Self(RandomState::new().hash_one(0u64) | 1)
    }
}

impl BuildHasher for SeededHasher {
    type Hasher = FoldHasher;
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher {
            seed: self.0,
            value: 0,
        }
    }
}

pub struct FoldHasher {
    seed: u64,
    value: u64,
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        // The length in the top octet: a short tail of zeros differs from none.
        w[7] = rest.len() as u8;
        self.write_u64(u64::from_le_bytes(w));
    }

    fn write_u64(&mut self, n: u64) {
        let m = u128::from(self.value ^ n ^ self.seed) * 0x9e37_79b9_7f4a_7c15_u128;
        self.value = (m as u64) ^ ((m >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.value
    }
}
