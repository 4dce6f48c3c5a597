//! Shared test helpers: deterministic fake secrets of the right shape, built
//! at run time so the repository holds no secret-looking literals.

#![allow(dead_code)]

pub const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const LOWER_ALNUM: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
pub const UPPER_ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub const HEX: &str = "0123456789abcdef";
pub const DIGITS: &str = "0123456789";
pub const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const BASE32_UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
pub const BASE64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub const BECH32_UPPER: &str = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";

/// xorshift64*: deterministic, so a failing case is reproducible.
pub struct Fake(u64);

impl Fake {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `len` characters drawn from `charset`.
    pub fn string(&mut self, charset: &str, len: usize) -> String {
        let chars: Vec<char> = charset.chars().collect();
        (0..len).map(|_| chars[self.below(chars.len())]).collect()
    }

    pub fn uuid(&mut self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.string(HEX, 8),
            self.string(HEX, 4),
            self.string(HEX, 4),
            self.string(HEX, 4),
            self.string(HEX, 12)
        )
    }

    /// A PEM private key block with a random body.
    pub fn pem_private_key(&mut self, label: &str) -> String {
        let mut body = String::new();
        for _ in 0..6 {
            body.push_str(&self.string(BASE64, 64));
            body.push('\n');
        }
        format!("-----BEGIN {label}PRIVATE KEY-----\n{body}-----END {label}PRIVATE KEY-----\n")
    }
}
