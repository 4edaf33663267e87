//! Validation of user-chosen values, shared by the API and the activities.

use serde::{Deserialize, Serialize};

/// The longest instance name: backends append suffixes and the result must fit in 63 characters.
pub const MAX_NAME_LEN: usize = 40;

/// A valid instance name: a DNS-1123 label of 1-40 characters that starts with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceName(String);

/// Why a name is not a valid instance name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("must not be empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("must be at most {MAX_NAME_LEN} characters")]
    TooLong,
    /// The first character is not a lowercase ASCII letter.
    #[error("must start with a lowercase letter")]
    BadStart,
    /// The last character is a '-'.
    #[error("must not end with '-'")]
    BadEnd,
    /// A character outside `a-z`, `0-9` and `-`.
    #[error("may contain only lowercase letters, digits and '-'")]
    BadCharacter,
}

impl InstanceName {
    /// Validates `raw` as an instance name.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let first = raw.chars().next().ok_or(NameError::Empty)?;
        if raw.chars().count() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if !first.is_ascii_lowercase() {
            return Err(NameError::BadStart);
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(NameError::BadCharacter);
        }
        if raw.ends_with('-') {
            return Err(NameError::BadEnd);
        }
        Ok(Self(raw.to_string()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `label` is a DNS-1123 label (a Kubernetes namespace name, a DNS label): 1-63
/// lowercase letters, digits or '-', not starting or ending with '-'.
pub fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

impl std::fmt::Display for InstanceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for InstanceName {
    type Error = NameError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<InstanceName> for String {
    fn from(name: InstanceName) -> Self {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "orders-db", "db1", "a-b-c-1", &"a".repeat(40)] {
            assert_eq!(
                InstanceName::parse(ok).map(|n| n.to_string()),
                Ok(ok.to_string())
            );
        }
    }

    #[test]
    fn rejects_everything_else_with_the_reason() {
        assert_eq!(InstanceName::parse(""), Err(NameError::Empty));
        assert_eq!(
            InstanceName::parse(&"a".repeat(41)),
            Err(NameError::TooLong)
        );
        assert_eq!(InstanceName::parse("1db"), Err(NameError::BadStart));
        assert_eq!(InstanceName::parse("-db"), Err(NameError::BadStart));
        assert_eq!(InstanceName::parse("Orders"), Err(NameError::BadStart));
        assert_eq!(InstanceName::parse("db-"), Err(NameError::BadEnd));
        assert_eq!(
            InstanceName::parse("orders_db"),
            Err(NameError::BadCharacter)
        );
        assert_eq!(InstanceName::parse("a/../b"), Err(NameError::BadCharacter));
        assert_eq!(InstanceName::parse("dé"), Err(NameError::BadCharacter));
        assert_eq!(InstanceName::parse("a b"), Err(NameError::BadCharacter));
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<InstanceName>("\"ok-name\"").is_ok());
        assert!(serde_json::from_str::<InstanceName>("\"../etc\"").is_err());
    }
}
