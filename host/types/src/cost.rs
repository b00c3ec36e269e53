//! What one call used, as recorded in a derived blob's lineage and a dead
//! letter, and the rules for the usage units an effect reports in its own
//! terms (an LLM's tokens).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What one call used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cost {
    /// Wall time of the whole call, waiting for a sandbox slot included (µs).
    pub wall_us: u64,
    /// Epoch ticks that passed while the guest ran.
    pub epoch_ticks: u64,
    /// Fuel consumed, when fuel metering is on.
    pub fuel: Option<u64>,
    /// Largest total linear memory the instance had (bytes).
    pub peak_memory: u64,
    /// Bytes of the input given to the guest.
    pub bytes_in: u64,
    /// Bytes the guest returned.
    pub bytes_out: u64,
    /// Number of outputs.
    pub outputs: u32,
    /// CPU time the call took on the threads that ran it (µs): its guest
    /// code and its host calls, instantiation included, measured around
    /// every poll of the call with the thread's CPU clock. A processor's
    /// figure leaves out its effect calls' own sandboxes, which have a cost
    /// of their own. 0 in records written before it was measured.
    #[serde(default)]
    pub cpu_us: u64,
}

/// Most distinct units one effect call may report.
pub const MAX_USAGE_UNITS: usize = 16;

/// Longest usage unit name, in bytes.
pub const MAX_UNIT_NAME: usize = 64;

/// Why a usage report was refused. The guest gets the message as
/// `invalid-input`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// The name breaks the naming rule.
    #[error(
        "usage unit name {name} is invalid: {rule} (1 to {MAX_UNIT_NAME} bytes of a-z, 0-9, \
         `-`, `_` and `.`, starting with a letter)"
    )]
    Name {
        /// The name as reported, quoted and cut to its first bytes.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The call already reported [`MAX_USAGE_UNITS`] other units.
    #[error(
        "usage unit `{name}` would be the {}th distinct unit of this call; a call reports at \
         most {MAX_USAGE_UNITS}",
        MAX_USAGE_UNITS + 1
    )]
    TooMany {
        /// The unit refused.
        name: String,
    },
}

/// Checks a usage unit's name: 1 to [`MAX_UNIT_NAME`] bytes of `a-z`,
/// `0-9`, `-`, `_` and `.`, starting with a letter.
///
/// ```
/// use reyna_types::check_unit_name;
///
/// assert!(check_unit_name("prompt-tokens").is_ok());
/// assert!(check_unit_name("Tokens").is_err());
/// assert!(check_unit_name("9lives").is_err());
/// ```
pub fn check_unit_name(name: &str) -> Result<(), UnitError> {
    let refuse = |rule| {
        Err(UnitError::Name {
            name: quoted_prefix(name),
            rule,
        })
    };
    let Some(first) = name.bytes().next() else {
        return refuse("it is empty");
    };
    if name.len() > MAX_UNIT_NAME {
        return refuse("it is longer than 64 bytes");
    }
    if !first.is_ascii_lowercase() {
        return refuse("it does not start with a letter a-z");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
    {
        return refuse("it holds a character other than a-z, 0-9, `-`, `_` and `.`");
    }
    Ok(())
}

/// Adds `amount` of `unit` to what one call reported, under the contract's
/// rules: a valid name ([`check_unit_name`]), at most [`MAX_USAGE_UNITS`]
/// distinct units, amounts of one unit adding up with saturation. A refused
/// report leaves `units` as it was.
///
/// ```
/// use std::collections::BTreeMap;
/// use reyna_types::add_usage;
///
/// let mut units = BTreeMap::new();
/// add_usage(&mut units, "tokens", u64::MAX - 1).unwrap();
/// add_usage(&mut units, "tokens", 5).unwrap();
/// assert_eq!(units["tokens"], u64::MAX);
/// assert!(add_usage(&mut units, "", 1).is_err());
/// assert_eq!(units.len(), 1);
/// ```
pub fn add_usage(
    units: &mut BTreeMap<String, u64>,
    unit: &str,
    amount: u64,
) -> Result<(), UnitError> {
    check_unit_name(unit)?;
    if let Some(total) = units.get_mut(unit) {
        *total = total.saturating_add(amount);
        return Ok(());
    }
    if units.len() >= MAX_USAGE_UNITS {
        return Err(UnitError::TooMany {
            name: unit.to_owned(),
        });
    }
    units.insert(unit.to_owned(), amount);
    Ok(())
}

/// A name for an error message: quoted and escaped, at most its first
/// [`MAX_UNIT_NAME`] bytes (a guest may report a name of megabytes).
fn quoted_prefix(name: &str) -> String {
    let mut end = name.len().min(MAX_UNIT_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let cut = if end < name.len() { "..." } else { "" };
    format!("{:?}{cut}", &name[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_follow_the_rule() {
        for good in [
            "tokens",
            "prompt-tokens",
            "a",
            "api.requests_2",
            &"x".repeat(64),
        ] {
            assert_eq!(check_unit_name(good), Ok(()), "{good}");
        }
        let rule = |name: &str| match check_unit_name(name) {
            Err(UnitError::Name { rule, .. }) => rule,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(rule(""), "it is empty");
        assert_eq!(rule(&"x".repeat(65)), "it is longer than 64 bytes");
        assert_eq!(rule("-tokens"), "it does not start with a letter a-z");
        assert_eq!(rule("Tokens"), "it does not start with a letter a-z");
        for bad in ["tokens!", "prompt tokens", "tökens", "tok\u{0}"] {
            assert_eq!(
                rule(bad),
                "it holds a character other than a-z, 0-9, `-`, `_` and `.`",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_long_name_is_cut_in_the_message() {
        let err = check_unit_name(&"é".repeat(1000)).unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
        assert!(err.contains("\"... is invalid"), "{err}");
    }

    #[test]
    fn amounts_add_up_and_the_17th_unit_is_refused() {
        let mut units = BTreeMap::new();
        for i in 0..MAX_USAGE_UNITS {
            add_usage(&mut units, &format!("u{i}"), 1).unwrap();
        }
        assert_eq!(
            add_usage(&mut units, "one-more", 1),
            Err(UnitError::TooMany {
                name: "one-more".into()
            })
        );
        assert!(!units.contains_key("one-more"));
        // A unit already reported still adds up, with saturation.
        add_usage(&mut units, "u0", u64::MAX).unwrap();
        add_usage(&mut units, "u0", 7).unwrap();
        assert_eq!(units["u0"], u64::MAX);
        assert_eq!(units.len(), MAX_USAGE_UNITS);
        assert_eq!(
            UnitError::TooMany { name: "x".into() }.to_string(),
            "usage unit `x` would be the 17th distinct unit of this call; a call reports at most 16"
        );
    }

    #[test]
    fn cost_written_without_cpu_time_reads_as_zero() {
        let old = r#"{"wall_us":1,"epoch_ticks":0,"fuel":null,"peak_memory":2,"bytes_in":3,"bytes_out":4,"outputs":1}"#;
        let cost: Cost = serde_json::from_str(old).unwrap();
        assert_eq!(cost.cpu_us, 0);
        assert_eq!(cost.peak_memory, 2);
    }
}
