//! Byte-level mutation of valid encodings, and the deterministic random
//! numbers that drive it.
//!
//! Postcard writes every length, count, variant index and integer as a
//! LEB128 varint, so besides the usual bit flips, truncations and splices
//! the mutator rewrites varints in place: a count becomes `u32::MAX`, a
//! variant index one past the last, a length one more than the bytes left,
//! or an over-long (non-canonical) encoding of the same value.

/// splitmix64: tiny, fast and the same on every platform and version, so
/// that a seed names the same inputs forever.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Values worth writing into a varint: limits of the protocol and of the
/// integer types, and their neighbours.
const VARINT_VALUES: &[u64] = &[
    0,
    1,
    2,
    9,
    10,
    11,
    63,
    64,
    65,
    127,
    128,
    255,
    256,
    1024,
    1025,
    4096,
    16_384,
    65_536,
    1 << 20,
    (1 << 20) + 1,
    u32::MAX as u64,
    u32::MAX as u64 + 1,
    i64::MAX as u64,
    u64::MAX,
];

/// Bytes that often matter in one place: zero, sign and continuation bits.
const BYTE_VALUES: &[u8] = &[0x00, 0x01, 0x7f, 0x80, 0xff, b'/', b'.', 0xc3];

/// The LEB128 varint starting at `at`: its value (if it fits 64 bits) and
/// length in bytes.
fn read_varint(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes[at..].iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn varint(mut value: u64, over_long: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(11);
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            if over_long {
                out.push(byte | 0x80);
                out.push(0);
            } else {
                out.push(byte);
            }
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Applies 1 to 4 random mutations to `input`. `framed`: the first four
/// bytes are a frame's length header (edited as such, not as a varint).
/// `donor` is another valid input, for splices.
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, framed: bool, donor: &[u8]) {
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, input, framed, donor);
    }
}

fn mutate_once(rng: &mut Rng, input: &mut Vec<u8>, framed: bool, donor: &[u8]) {
    let len = input.len();
    match rng.below(11) {
        // Flip one bit.
        0 if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        // Set a byte to a telling value, or any.
        1 if len > 0 => {
            let at = rng.below(len);
            input[at] = if rng.one_in(2) {
                BYTE_VALUES[rng.below(BYTE_VALUES.len())]
            } else {
                rng.next() as u8
            };
        }
        // Truncate.
        2 if len > 0 => input.truncate(rng.below(len)),
        // Delete a range.
        3 if len > 1 => {
            let at = rng.below(len);
            let end = (at + 1 + rng.below(16)).min(len);
            input.drain(at..end);
        }
        // Insert random bytes.
        4 => {
            let at = rng.below(len + 1);
            let mut bytes = vec![0; 1 + rng.below(8)];
            rng.fill(&mut bytes);
            input.splice(at..at, bytes);
        }
        // Duplicate a range in place (repeated fields, doubled entries).
        5 if len > 0 => {
            let at = rng.below(len);
            let end = (at + 1 + rng.below(64)).min(len);
            let copy = input[at..end].to_vec();
            input.splice(at..at, copy);
        }
        // Splice: our head, the donor's tail.
        6 if !donor.is_empty() => {
            let cut = rng.below(len + 1);
            let from = rng.below(donor.len());
            input.truncate(cut);
            input.extend_from_slice(&donor[from..]);
        }
        // Rewrite the frame header.
        7 if framed && len >= 4 => {
            let body = (len - 4) as u32;
            let max = harmony::proto::MAX_FRAME as u32;
            let header = match rng.below(6) {
                0 => body.wrapping_add(1),
                1 => body.wrapping_sub(1),
                2 => max,
                3 => max + 1,
                4 => u32::MAX,
                _ => rng.next() as u32 % (body + 2),
            };
            input[..4].copy_from_slice(&header.to_be_bytes());
        }
        // Rewrite a varint (a length, count, index or integer).
        8..=10 if len > usize::from(framed) * 4 => {
            let start = usize::from(framed) * 4;
            let at = start + rng.below(len - start);
            let Some((old, used)) = read_varint(input, at) else {
                return;
            };
            let left = (len - at - used) as u64;
            let new = match rng.below(6) {
                0 => VARINT_VALUES[rng.below(VARINT_VALUES.len())],
                1 => old.wrapping_add(1),
                2 => old.wrapping_sub(1),
                3 => left + 1,
                4 => old,
                _ => rng.next() >> rng.below(64),
            };
            let over_long = rng.one_in(4);
            input.splice(at..at + used, varint(new, over_long));
        }
        _ => {}
    }
}
