//! The vault's secrets: a list of 256-bit master keys, the first one current.
//!
//! From each master key two sub-keys are derived with HKDF-SHA256 (domain-separated): an AES-256-GCM key that
//! encrypts originals, and an HMAC-SHA256 key that names the forward mapping (`(tenant, kind, original)` →
//! placeholder) without putting the original, or anything reversible, in a key name. Each key has a 4-byte id
//! (derived from the key, so operators never assign ids and a wrong list cannot decrypt silently): ciphertexts
//! carry it, so after a rotation old ciphertexts still decrypt while the old key stays in the list.
//!
//! Nothing here ever formats a key or a plaintext: `Debug` shows only the key ids.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Environment variable holding the key(s): 64 hex characters each, comma-separated, the first current.
pub const KEY_ENV: &str = "MASKGATE_VAULT_KEY";

/// Version byte of the ciphertext layout: `1 | key id (4) | nonce (12) | ciphertext | tag (16)`.
const BLOB_V1: u8 = 1;
const KEY_ID_LEN: usize = 4;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

struct Key {
    id: [u8; KEY_ID_LEN],
    aead: LessSafeKey,
    index: hmac::Key,
}

/// The configured keys, first current. Cheap to share (`Arc`) and `Send + Sync`.
pub struct Keyring {
    keys: Vec<Key>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("key_ids", &self.key_ids()).finish()
    }
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(prk: &hkdf::Prk, info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    prk.expand(&[b"maskgate vault v1 ", info], Len(32))
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF-SHA256 can expand 32 bytes");
    out
}

impl Keyring {
    /// Keys as raw 32-byte values, first current. At least one; no duplicates.
    pub fn new(raw: &[[u8; 32]]) -> Result<Keyring, String> {
        if raw.is_empty() {
            return Err("no vault key".into());
        }
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"maskgate-vault");
        let mut keys: Vec<Key> = Vec::with_capacity(raw.len());
        for (i, k) in raw.iter().enumerate() {
            let prk = salt.extract(k);
            let enc = derive(&prk, b"aes-256-gcm");
            let idx = derive(&prk, b"index hmac-sha256");
            let idb = derive(&prk, b"key id");
            let id = [idb[0], idb[1], idb[2], idb[3]];
            if keys.iter().any(|x| x.id == id) {
                return Err(format!("vault key {} is listed twice", i + 1));
            }
            keys.push(Key {
                id,
                aead: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &enc).expect("32-byte AES key")),
                index: hmac::Key::new(hmac::HMAC_SHA256, &idx),
            });
        }
        Ok(Keyring {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// Parses keys written as 64 hex characters each, separated by commas, whitespace or new lines; `#` starts
    /// a comment (for key files). Errors never show key material.
    pub fn parse(text: &str) -> Result<Keyring, String> {
        let mut raw = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            for word in line.split(|c: char| c == ',' || c.is_whitespace()) {
                if word.is_empty() {
                    continue;
                }
                raw.push(parse_hex_key(word).map_err(|e| format!("vault key {}: {e}", raw.len() + 1))?);
            }
        }
        if raw.is_empty() {
            return Err("no vault key: expected 64 hex characters (32 bytes)".into());
        }
        Keyring::new(&raw)
    }

    /// Reads the keys from `file` if given, else from the `MASKGATE_VAULT_KEY` environment variable.
    pub fn load(file: Option<&std::path::Path>) -> Result<Keyring, String> {
        match file {
            Some(f) => {
                let text = std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
                Keyring::parse(&text).map_err(|e| format!("{}: {e}", f.display()))
            }
            None => match std::env::var(KEY_ENV) {
                Ok(v) => Keyring::parse(&v).map_err(|e| format!("{KEY_ENV}: {e}")),
                Err(_) => Err(format!(
                    "no vault key: set {KEY_ENV} (64 hex characters; several comma-separated, the first \
                     encrypts) or [vault] key_file"
                )),
            },
        }
    }

    /// Hex ids of the keys, first current (safe to log).
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| hex(&k.id)).collect()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Hex id of key `i` (0 = current).
    pub fn key_id(&self, i: usize) -> String {
        hex(&self.keys[i].id)
    }

    /// HMAC-SHA256 of length-prefixed `parts` with key `i`'s index key, hex (64 characters).
    pub fn index(&self, i: usize, parts: &[&[u8]]) -> String {
        let mut ctx = hmac::Context::with_key(&self.keys[i].index);
        for p in parts {
            ctx.update(&(p.len() as u64).to_be_bytes());
            ctx.update(p);
        }
        hex(ctx.sign().as_ref())
    }

    /// Encrypts with the current key and a random nonce; `aad` binds the ciphertext to where it is stored.
    pub fn encrypt(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let k = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| "the system random generator failed".to_string())?;
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + AES_256_GCM.tag_len());
        out.push(BLOB_V1);
        out.extend_from_slice(&k.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let mut body = out.split_off(HEADER_LEN);
        k.aead
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
            .map_err(|_| "encryption failed".to_string())?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypts a blob made by [`Keyring::encrypt`] with any key of the ring. `None` when the key id is unknown,
    /// the blob was altered, or it was stored somewhere else (`aad` differs).
    pub fn decrypt(&self, aad: &[u8], blob: &[u8]) -> Option<Vec<u8>> {
        if blob.len() < HEADER_LEN + AES_256_GCM.tag_len() || blob[0] != BLOB_V1 {
            return None;
        }
        let k = self.keys.iter().find(|k| k.id[..] == blob[1..1 + KEY_ID_LEN])?;
        let nonce = Nonce::try_assume_unique_for_key(&blob[1 + KEY_ID_LEN..HEADER_LEN]).ok()?;
        let mut body = blob[HEADER_LEN..].to_vec();
        let plain = k.aead.open_in_place(nonce, Aad::from(aad), &mut body).ok()?;
        Some(plain.to_vec())
    }

    /// Index of the key that encrypted `blob`, if it is in the ring.
    pub fn blob_key(&self, blob: &[u8]) -> Option<usize> {
        if blob.len() < HEADER_LEN || blob[0] != BLOB_V1 {
            return None;
        }
        self.keys.iter().position(|k| k.id[..] == blob[1..1 + KEY_ID_LEN])
    }
}

fn parse_hex_key(s: &str) -> Result<[u8; 32], String> {
    if s.len() != 64 {
        return Err(format!("expected 64 hex characters, found {}", s.len()));
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let d = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
        match (d(pair[0]), d(pair[1])) {
            (Some(a), Some(b)) => out[i] = a << 4 | b,
            _ => return Err("not hexadecimal".into()),
        }
    }
    Ok(out)
}

pub(crate) fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

/// Makes a new random key as 64 hex characters (for `maskgate` tooling and tests).
pub fn generate_key_hex() -> Result<String, String> {
    let mut k = [0u8; 32];
    SystemRandom::new()
        .fill(&mut k)
        .map_err(|_| "the system random generator failed".to_string())?;
    Ok(hex(&k))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

    #[test]
    fn round_trip_and_binding() {
        let r = Keyring::parse(K1).unwrap();
        let c = r.encrypt(b"t1|AWS_EC2", b"i-0123456789abcdef0").unwrap();
        assert_eq!(r.decrypt(b"t1|AWS_EC2", &c).unwrap(), b"i-0123456789abcdef0");
        assert!(r.decrypt(b"t2|AWS_EC2", &c).is_none(), "bound to its place");
        let mut bad = c.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(r.decrypt(b"t1|AWS_EC2", &bad).is_none());
        // Random nonces: the same plaintext encrypts differently.
        assert_ne!(c, r.encrypt(b"t1|AWS_EC2", b"i-0123456789abcdef0").unwrap());
    }

    #[test]
    fn rotation_old_keys_decrypt() {
        let old = Keyring::parse(K1).unwrap();
        let c = old.encrypt(b"a", b"secret").unwrap();
        let rotated = Keyring::parse(&format!("{K2},\n{K1}")).unwrap();
        assert_eq!(rotated.key_ids()[1], old.key_ids()[0]);
        assert_eq!(rotated.decrypt(b"a", &c).unwrap(), b"secret");
        assert_eq!(rotated.blob_key(&c), Some(1));
        let c2 = rotated.encrypt(b"a", b"secret").unwrap();
        assert_eq!(rotated.blob_key(&c2), Some(0));
        assert!(old.decrypt(b"a", &c2).is_none(), "the old ring lacks the new key");
        // Index keys differ per key; length-prefixing keeps parts apart.
        assert_ne!(rotated.index(0, &[b"x"]), rotated.index(1, &[b"x"]));
        assert_eq!(rotated.index(1, &[b"x"]), old.index(0, &[b"x"]));
        assert_ne!(old.index(0, &[b"ab", b"c"]), old.index(0, &[b"a", b"bc"]));
    }

    #[test]
    fn parse_errors_show_no_key() {
        let e = Keyring::parse("zz").unwrap_err();
        assert!(e.contains("64 hex"), "{e}");
        let bad = "g".repeat(64);
        let e = Keyring::parse(&bad).unwrap_err();
        assert!(!e.contains(&bad), "{e}");
        let e = Keyring::parse(&format!("{K1},{K1}")).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        assert!(Keyring::parse("# only a comment\n").is_err());
        let dbg = format!("{:?}", Keyring::parse(K1).unwrap());
        assert!(!dbg.contains(K1) && dbg.contains("key_ids"), "{dbg}");
        assert_eq!(generate_key_hex().unwrap().len(), 64);
    }
}
