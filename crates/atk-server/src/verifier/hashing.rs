//! The verifier caches' hashers: a lookup is on every verification, so its
//! hashing is on the hot path.

use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a [`atk_core::secret::SecretHash`] as its first eight bytes.
/// The key is already an HMAC-SHA-256 under the server's pepper: uniform,
/// and no caller can choose it without the pepper, so hashing it again
/// (SipHash by default) buys no spread and no flood resistance.
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstBytesHasher(u64);

impl Hasher for FirstBytesHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let taken = bytes.len().min(8);
        first[..taken].copy_from_slice(&bytes[..taken]);
        self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(first);
    }

    /// The array's length prefix carries nothing: every key has 32 bytes.
    fn write_usize(&mut self, _length: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type BuildFirstBytesHasher = BuildHasherDefault<FirstBytesHasher>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use atk_core::secret::SecretHash;

    use super::*;

    #[test]
    fn a_secret_hash_hashes_as_its_first_eight_bytes() {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&0x0123_4567_89ab_cdef_u64.to_le_bytes());
        bytes[8..].fill(0xff);
        let build = BuildFirstBytesHasher::default();
        assert_eq!(build.hash_one(SecretHash(bytes)), 0x0123_4567_89ab_cdef);
        let mut other = bytes;
        other[0] ^= 1;
        assert_ne!(
            build.hash_one(SecretHash(bytes)),
            build.hash_one(SecretHash(other))
        );
    }
}
