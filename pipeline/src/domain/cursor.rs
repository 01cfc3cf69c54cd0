//! Page cursors: where the next page starts, signed (HMAC-SHA256) so that a client can pass
//! one back but not forge or alter it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};

use super::{JobId, Message};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Where the next page starts: strictly older than the last message of the previous page.
///
/// Opaque to clients and signed: the token is a version byte, the job id of that last message
/// and a 128-bit HMAC-SHA256 tag over both, base64url. A cursor the API did not issue is
/// refused with a 400 before any read, so a client can only resume a listing where one of its
/// pages ended; and since the id only bounds a key-range query from above, even a valid
/// cursor reads nothing a first page could not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub before: JobId,
}

const VERSION: u8 = 2;
const TAG_BYTES: usize = 16;
const TOKEN_BYTES: usize = 1 + 16 + TAG_BYTES;
/// base64url of `TOKEN_BYTES` without padding; anything longer is refused before decoding.
const TOKEN_CHARS: usize = (TOKEN_BYTES * 8).div_ceil(6);

impl Cursor {
    pub fn after(message: &Message) -> Self {
        Self { before: message.id }
    }

    pub fn encode(&self, key: &CursorKey) -> String {
        let mut token = Vec::with_capacity(TOKEN_BYTES);
        token.push(VERSION);
        token.extend_from_slice(&self.before.to_bytes());
        let tag = key.mac(&token).finalize().into_bytes();
        token.extend_from_slice(&tag[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(token)
    }

    pub fn decode(raw: &str, key: &CursorKey) -> Result<Self, CursorError> {
        let raw = raw.trim();
        if raw.len() != TOKEN_CHARS {
            return Err(CursorError);
        }
        let token = URL_SAFE_NO_PAD.decode(raw).map_err(|_| CursorError)?;
        let (signed, tag) = token.split_at_checked(1 + 16).ok_or(CursorError)?;
        if signed[0] != VERSION {
            return Err(CursorError);
        }
        // Constant-time comparison: a forger learns nothing from how fast a guess fails.
        key.mac(signed)
            .verify_truncated_left(tag)
            .map_err(|_| CursorError)?;
        let id: [u8; 16] = signed[1..].try_into().map_err(|_| CursorError)?;
        let before = JobId::from_bytes(id).ok_or(CursorError)?;
        Ok(Self { before })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("next must be the `next` value of a previous page, unchanged")]
pub struct CursorError;

/// The secret that signs cursors. Every function that lists must hold the same key, or a
/// cursor one instance issued is refused by the next.
#[derive(Clone)]
pub struct CursorKey(Vec<u8>);

impl CursorKey {
    pub const MIN_SECRET_BYTES: usize = 32;

    pub fn from_secret(secret: &str) -> Result<Self, CursorKeyError> {
        if secret.len() < Self::MIN_SECRET_BYTES {
            return Err(CursorKeyError);
        }
        Ok(Self(secret.as_bytes().to_vec()))
    }

    /// A key for one process's lifetime: cursors it issues stop working when it exits.
    pub fn random() -> Self {
        let mut key = Vec::with_capacity(32);
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self(key)
    }

    fn mac(&self, data: &[u8]) -> HmacSha256 {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(data);
        mac
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(<secret>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cursor secret must be at least {} bytes",
    CursorKey::MIN_SECRET_BYTES
)]
pub struct CursorKeyError;

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CursorKey {
        CursorKey::random()
    }

    #[test]
    fn a_cursor_round_trips_and_is_opaque() {
        let key = key();
        let cursor = Cursor {
            before: JobId::new(),
        };
        let encoded = cursor.encode(&key);
        assert_eq!(encoded.len(), TOKEN_CHARS);
        assert!(!encoded.contains(&cursor.before.to_string()));
        assert_eq!(Cursor::decode(&encoded, &key), Ok(cursor));
    }

    #[test]
    fn a_cursor_signed_with_another_key_is_refused() {
        let cursor = Cursor {
            before: JobId::new(),
        };
        assert_eq!(
            Cursor::decode(&cursor.encode(&key()), &key()),
            Err(CursorError)
        );
    }

    #[test]
    fn changing_any_bit_of_a_cursor_makes_it_invalid() {
        let key = key();
        let token = URL_SAFE_NO_PAD
            .decode(
                Cursor {
                    before: JobId::new(),
                }
                .encode(&key),
            )
            .unwrap();
        for bit in 0..token.len() * 8 {
            let mut forged = token.clone();
            forged[bit / 8] ^= 1 << (bit % 8);
            let raw = URL_SAFE_NO_PAD.encode(&forged);
            assert_eq!(Cursor::decode(&raw, &key), Err(CursorError), "bit {bit}");
        }
    }

    #[test]
    fn garbage_cursors_are_refused() {
        let key = key();
        let unsigned_v1 = URL_SAFE_NO_PAD.encode(format!("v1:{}", JobId::new()));
        let long = "A".repeat(10_000);
        for bad in ["", "%%%", "djE6", &unsigned_v1, &long] {
            assert_eq!(Cursor::decode(bad, &key), Err(CursorError), "{bad}");
        }
    }

    #[test]
    fn short_secrets_are_refused_and_keys_never_print() {
        assert_eq!(
            CursorKey::from_secret("too short").unwrap_err(),
            CursorKeyError
        );
        let key = CursorKey::from_secret(&"s".repeat(32)).unwrap();
        assert!(!format!("{key:?}").contains("sss"));
    }
}
