//! Whether a value fits a setting, the way PostgreSQL reads it: booleans and their prefixes,
//! numbers with memory or time units converted to the setting's own unit, ranges, enum values.

use super::SettingSpec;

/// Longest value accepted for a string setting.
const MAX_STRING_LEN: usize = 1024;

/// A unit a number may carry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    /// Bytes per unit.
    Memory(f64),
    /// Microseconds per unit.
    Time(f64),
}

impl Unit {
    /// Parses a unit as PostgreSQL spells it (case matters): `B kB MB GB TB`, `us ms s min h d`,
    /// and the block units of `pg_settings.unit` such as `8kB` or `16MB`.
    pub fn parse(raw: &str) -> Option<Unit> {
        const KB: f64 = 1024.0;
        let memory = |bytes: f64| Some(Unit::Memory(bytes));
        let time = |micros: f64| Some(Unit::Time(micros));
        match raw {
            "B" => memory(1.0),
            "kB" => memory(KB),
            "MB" => memory(KB * KB),
            "GB" => memory(KB * KB * KB),
            "TB" => memory(KB * KB * KB * KB),
            "us" => time(1.0),
            "ms" => time(1_000.0),
            "s" => time(1_000_000.0),
            "min" => time(60_000_000.0),
            "h" => time(3_600_000_000.0),
            "d" => time(86_400_000_000.0),
            _ => {
                // `8kB`: a count of a unit.
                let split = raw.find(|c: char| !c.is_ascii_digit())?;
                let (count, unit) = raw.split_at(split);
                let count: f64 = count.parse().ok()?;
                match Unit::parse(unit)? {
                    Unit::Memory(bytes) => memory(count * bytes),
                    Unit::Time(micros) => time(count * micros),
                }
            }
        }
    }
}

/// PostgreSQL's booleans: `on off true false yes no 1 0` and unambiguous prefixes, any case.
pub fn parse_bool(raw: &str) -> Option<bool> {
    let lower = raw.to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| lower.len() >= min && word.starts_with(&lower);
    if lower == "on" || lower == "1" || prefix_of("true", 1) || prefix_of("yes", 1) {
        Some(true)
    } else if lower == "0" || prefix_of("off", 2) || prefix_of("false", 1) || prefix_of("no", 1) {
        Some(false)
    } else {
        None
    }
}

/// `raw` (a number, optionally followed by a unit) in the setting's own unit `base`.
pub fn to_base_units(raw: &str, base: Option<&str>) -> Result<f64, String> {
    let end = raw
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(raw.len());
    // `1e3` is a number, `1min` is not an exponent: only take `e` when digits follow it.
    let (mut number, mut rest) = raw.split_at(end);
    if let Some(position) = number.find(['e', 'E'])
        && !number[position + 1..].starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+')
    {
        (number, rest) = raw.split_at(position);
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{raw}' is not a number"))?;
    if !value.is_finite() {
        return Err(format!("'{raw}' is not a finite number"));
    }
    let unit = rest.trim();
    if unit.is_empty() {
        return Ok(value);
    }
    let Some(base) = base else {
        return Err(format!("'{raw}': this parameter takes no unit"));
    };
    let (Some(given), Some(own)) = (Unit::parse(unit), Unit::parse(base)) else {
        return Err(format!(
            "'{raw}': unknown unit '{unit}' (memory: B, kB, MB, GB, TB; time: us, ms, s, min, h, d)"
        ));
    };
    match (given, own) {
        (Unit::Memory(given), Unit::Memory(own)) | (Unit::Time(given), Unit::Time(own)) => {
            Ok(value * given / own)
        }
        (Unit::Memory(_), Unit::Time(_)) => Err(format!("'{raw}': expected a time, not a size")),
        (Unit::Time(_), Unit::Memory(_)) => Err(format!("'{raw}': expected a size, not a time")),
    }
}

/// `Ok` when `value` fits `spec`, else what is wrong and what would fit.
pub(super) fn check(spec: &SettingSpec, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err("must not contain NUL bytes".into());
    }
    match spec.vartype.as_str() {
        "bool" => parse_bool(value)
            .map(|_| ())
            .ok_or_else(|| format!("'{value}' is not a boolean (on or off)")),
        "enum" => {
            if spec.enumvals.iter().any(|v| v.eq_ignore_ascii_case(value)) {
                Ok(())
            } else {
                Err(format!(
                    "'{value}' is not one of: {}",
                    spec.enumvals.join(", ")
                ))
            }
        }
        "integer" | "real" => {
            let mut number = to_base_units(value, spec.unit.as_deref())?;
            if spec.vartype == "integer" {
                number = number.round();
            }
            let unit = spec.unit.as_deref().unwrap_or("");
            let range = |bound: Option<f64>| bound.map(|b| format!("{b}{unit}"));
            if spec.min_val.is_some_and(|min| number < min)
                || spec.max_val.is_some_and(|max| number > max)
            {
                return Err(format!(
                    "'{value}' is out of range: must be between {} and {}",
                    range(spec.min_val).unwrap_or_else(|| "-".into()),
                    range(spec.max_val).unwrap_or_else(|| "-".into()),
                ));
            }
            Ok(())
        }
        _ if value.len() > MAX_STRING_LEN => Err(format!("must be at most {MAX_STRING_LEN} bytes")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_like_postgresql_reads_them() {
        for yes in ["on", "ON", "true", "t", "tru", "yes", "y", "1"] {
            assert_eq!(parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["off", "of", "false", "f", "no", "n", "0"] {
            assert_eq!(parse_bool(no), Some(false), "{no}");
        }
        for neither in ["o", "2", "maybe", ""] {
            assert_eq!(parse_bool(neither), None, "{neither}");
        }
    }

    #[test]
    fn numbers_convert_to_the_settings_unit() -> Result<(), String> {
        assert_eq!(to_base_units("128MB", Some("8kB"))?, 16384.0);
        assert_eq!(to_base_units("1GB", Some("kB"))?, 1048576.0);
        assert_eq!(to_base_units("64", Some("kB"))?, 64.0);
        assert_eq!(to_base_units("5min", Some("ms"))?, 300000.0);
        assert_eq!(to_base_units("1.5s", Some("ms"))?, 1500.0);
        assert_eq!(to_base_units("1e3", None)?, 1000.0);
        assert_eq!(to_base_units("-1", Some("ms"))?, -1.0);
        assert!(to_base_units("5min", Some("kB")).is_err());
        assert!(
            to_base_units("5mb", Some("kB")).is_err(),
            "units are case sensitive"
        );
        assert!(to_base_units("5MB", None).is_err());
        assert!(to_base_units("five", None).is_err());
        Ok(())
    }
}
