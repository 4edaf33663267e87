//! API tokens: parsing `TOYGRES_API_TOKENS`, keeping only their SHA-256 hashes, and finding the
//! role and stable id of a presented token in constant time.
//!
//! The format is a comma-separated list of `ROLE:TOKEN` entries, for example
//! `admin:3f9c...,readonly:b71e...`. `ROLE` is `admin` (every route and method) or `readonly`
//! (`GET` and `HEAD` only). A token is 16 to 256 visible ASCII characters other than `,`; a
//! role may have several tokens (to rotate them without downtime). Whitespace around roles and
//! tokens is ignored. Nothing here ever prints a token: error messages name the entry by its
//! position.

use sha2::{Digest as _, Sha256};
use subtle::{ConditionallySelectable as _, ConstantTimeEq as _};

/// The shortest accepted token.
pub const MIN_TOKEN_CHARS: usize = 16;
/// The longest accepted token.
pub const MAX_TOKEN_CHARS: usize = 256;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Every route and method.
    Admin,
    /// Reads only: `GET` and `HEAD`.
    ReadOnly,
}

impl Role {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(Role::Admin),
            "readonly" => Some(Role::ReadOnly),
            _ => None,
        }
    }

    /// The role's name in `TOYGRES_API_TOKENS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "readonly",
        }
    }

    fn code(self) -> u8 {
        match self {
            Role::Admin => 1,
            Role::ReadOnly => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Role::Admin),
            2 => Some(Role::ReadOnly),
            _ => None,
        }
    }
}

/// Why `TOYGRES_API_TOKENS` was refused. Entries are numbered from 1; no message quotes the
/// value, which holds secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenConfigError {
    /// No entry at all.
    #[error("TOYGRES_API_TOKENS has no entry; expected ROLE:TOKEN[,ROLE:TOKEN...]")]
    Empty,
    /// An entry is empty (two commas in a row, or a trailing comma).
    #[error("TOYGRES_API_TOKENS entry {entry} is empty")]
    EmptyEntry {
        /// The entry's position, from 1.
        entry: usize,
    },
    /// An entry has no `:`.
    #[error("TOYGRES_API_TOKENS entry {entry} is not ROLE:TOKEN")]
    MissingRole {
        /// The entry's position, from 1.
        entry: usize,
    },
    /// The role is neither `admin` nor `readonly`.
    #[error("TOYGRES_API_TOKENS entry {entry}: the role must be 'admin' or 'readonly'")]
    UnknownRole {
        /// The entry's position, from 1.
        entry: usize,
    },
    /// The token is too short or too long.
    #[error(
        "TOYGRES_API_TOKENS entry {entry}: the token has {chars} characters; it needs {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS}"
    )]
    BadLength {
        /// The entry's position, from 1.
        entry: usize,
        /// The token's length.
        chars: usize,
    },
    /// The token has a character outside visible ASCII.
    #[error(
        "TOYGRES_API_TOKENS entry {entry}: the token may contain only visible ASCII characters other than ','"
    )]
    BadCharacters {
        /// The entry's position, from 1.
        entry: usize,
    },
    /// The same token appears twice.
    #[error("TOYGRES_API_TOKENS entry {entry} repeats the token of entry {first}")]
    Duplicate {
        /// The entry's position, from 1.
        entry: usize,
        /// The earlier entry with the same token.
        first: usize,
    },
}

/// A stable id of one configured token, derived from its hash (never the token): the same token
/// has the same id in every process. `Debug` does not show it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenId([u8; 32]);

impl TokenId {
    fn of(hash: &[u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"toygres token id v1\0");
        hasher.update(hash);
        Self(hasher.finalize().into())
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenId(..)")
    }
}

/// One configured token: its hash, its id and its role.
#[derive(Clone)]
struct Entry {
    hash: [u8; 32],
    id: TokenId,
    role: Role,
}

/// The configured tokens, as hashes. `Debug` shows only how many there are of each role.
#[derive(Clone)]
pub struct ApiTokens {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTokens")
            .field("admin", &self.count(Role::Admin))
            .field("readonly", &self.count(Role::ReadOnly))
            .finish()
    }
}

impl ApiTokens {
    /// Parses `ROLE:TOKEN[,ROLE:TOKEN...]`; surrounding whitespace of entries is ignored.
    pub fn parse(raw: &str) -> Result<Self, TokenConfigError> {
        if raw.trim().is_empty() {
            return Err(TokenConfigError::Empty);
        }
        let mut entries: Vec<Entry> = Vec::new();
        for (index, item) in raw.split(',').enumerate() {
            let entry = index + 1;
            let item = item.trim();
            if item.is_empty() {
                return Err(TokenConfigError::EmptyEntry { entry });
            }
            let (role, token) = item
                .split_once(':')
                .ok_or(TokenConfigError::MissingRole { entry })?;
            let role = Role::parse(role.trim()).ok_or(TokenConfigError::UnknownRole { entry })?;
            let token = token.trim();
            let chars = token.chars().count();
            if !(MIN_TOKEN_CHARS..=MAX_TOKEN_CHARS).contains(&chars) {
                return Err(TokenConfigError::BadLength { entry, chars });
            }
            if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
                return Err(TokenConfigError::BadCharacters { entry });
            }
            let hash = hash(token);
            if let Some(first) = entries.iter().position(|known| known.hash == hash) {
                return Err(TokenConfigError::Duplicate {
                    entry,
                    first: first + 1,
                });
            }
            entries.push(Entry {
                hash,
                id: TokenId::of(&hash),
                role,
            });
        }
        Ok(Self { entries })
    }

    /// The role of `presented`, or `None` when it is no configured token.
    pub fn authenticate(&self, presented: &str) -> Option<Role> {
        self.identify(presented).map(|(role, _)| role)
    }

    /// The role and id of `presented`, or `None` when it is no configured token. Every
    /// configured hash is compared, in constant time, whatever matches.
    pub fn identify(&self, presented: &str) -> Option<(Role, TokenId)> {
        let presented = hash(presented);
        let mut found = 0u8;
        let mut id = [0u8; 32];
        for entry in &self.entries {
            let matches = entry.hash.as_slice().ct_eq(presented.as_slice());
            found.conditional_assign(&entry.role.code(), matches);
            for (byte, candidate) in id.iter_mut().zip(entry.id.0) {
                byte.conditional_assign(&candidate, matches);
            }
        }
        Role::from_code(found).map(|role| (role, TokenId(id)))
    }

    /// Every configured token's role and id (never the token), in configuration order: what a
    /// console session names its token by.
    pub fn ids(&self) -> impl Iterator<Item = (Role, TokenId)> + '_ {
        self.entries.iter().map(|entry| (entry.role, entry.id))
    }

    /// How many tokens have `role`.
    pub fn count(&self, role: Role) -> usize {
        self.entries
            .iter()
            .filter(|entry| entry.role == role)
            .count()
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "admin-token-0123456789";
    const READER: &str = "reader-token-0123456789";

    #[test]
    fn roles_are_found_by_token() -> Result<(), TokenConfigError> {
        let tokens = ApiTokens::parse(&format!(" admin:{ADMIN} , readonly:{READER}"))?;
        assert_eq!(tokens.authenticate(ADMIN), Some(Role::Admin));
        assert_eq!(tokens.authenticate(READER), Some(Role::ReadOnly));
        assert_eq!(tokens.authenticate("admin-token-012345678"), None);
        assert_eq!(tokens.authenticate(""), None);
        assert_eq!(tokens.count(Role::Admin), 1);
        assert_eq!(tokens.count(Role::ReadOnly), 1);
        Ok(())
    }

    #[test]
    fn each_token_has_its_own_stable_id() -> Result<(), TokenConfigError> {
        let tokens = ApiTokens::parse(&format!("admin:{ADMIN},admin:{READER}"))?;
        let again = ApiTokens::parse(&format!("readonly:{READER},admin:{ADMIN}"))?;
        let id = |tokens: &ApiTokens, token| tokens.identify(token).map(|(_, id)| id);
        assert!(id(&tokens, ADMIN).is_some());
        assert_ne!(id(&tokens, ADMIN), id(&tokens, READER));
        assert_eq!(
            id(&tokens, ADMIN),
            id(&again, ADMIN),
            "stable across processes"
        );
        assert_eq!(id(&tokens, READER), id(&again, READER), "whatever the role");
        assert_eq!(id(&tokens, "admin-token-012345678"), None);
        let shown = format!("{:?}", id(&tokens, ADMIN));
        assert_eq!(shown, "Some(TokenId(..))");
        Ok(())
    }

    #[test]
    fn a_role_may_have_several_tokens() -> Result<(), TokenConfigError> {
        let tokens = ApiTokens::parse(&format!("admin:{ADMIN},admin:{READER}"))?;
        assert_eq!(tokens.authenticate(ADMIN), Some(Role::Admin));
        assert_eq!(tokens.authenticate(READER), Some(Role::Admin));
        assert_eq!(tokens.count(Role::ReadOnly), 0);
        Ok(())
    }

    #[test]
    fn bad_configurations_are_refused_without_quoting_the_token() {
        let cases = [
            ("", TokenConfigError::Empty),
            ("   ", TokenConfigError::Empty),
            (
                &format!("admin:{ADMIN},,readonly:{READER}"),
                TokenConfigError::EmptyEntry { entry: 2 },
            ),
            (
                &format!("admin:{ADMIN},"),
                TokenConfigError::EmptyEntry { entry: 2 },
            ),
            (ADMIN, TokenConfigError::MissingRole { entry: 1 }),
            (
                &format!("root:{ADMIN}"),
                TokenConfigError::UnknownRole { entry: 1 },
            ),
            (
                &format!("Admin:{ADMIN}"),
                TokenConfigError::UnknownRole { entry: 1 },
            ),
            (
                "admin:short-token",
                TokenConfigError::BadLength {
                    entry: 1,
                    chars: 11,
                },
            ),
            (
                &format!("admin:{}", "x".repeat(257)),
                TokenConfigError::BadLength {
                    entry: 1,
                    chars: 257,
                },
            ),
            (
                "admin:has a space in the token",
                TokenConfigError::BadCharacters { entry: 1 },
            ),
            (
                "admin:ünïcödé-token-long-enough",
                TokenConfigError::BadCharacters { entry: 1 },
            ),
            (
                &format!("admin:{ADMIN},readonly:{ADMIN}"),
                TokenConfigError::Duplicate { entry: 2, first: 1 },
            ),
        ];
        for (raw, expected) in cases {
            let error = ApiTokens::parse(raw).err();
            assert_eq!(error.as_ref(), Some(&expected), "{raw:?}");
            let message = expected.to_string();
            assert!(!message.contains(ADMIN) && !message.contains("short-token"));
        }
    }

    #[test]
    fn debug_shows_counts_not_hashes() -> Result<(), TokenConfigError> {
        let tokens = ApiTokens::parse(&format!("admin:{ADMIN},readonly:{READER}"))?;
        assert_eq!(format!("{tokens:?}"), "ApiTokens { admin: 1, readonly: 1 }");
        Ok(())
    }
}
