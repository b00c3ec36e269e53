//! The manifest types and their validation, in one place.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{SchemaId, SubjectPattern};

/// What kind of plugin a component is, which names the world it must target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Targets `reyna:plugin/processor`: pure, returns derived blobs.
    Processor,
    /// Targets `reyna:plugin/effect`: may call approved hosts over HTTP.
    Effect,
}

impl Kind {
    /// The WIT world this kind targets.
    pub fn world(self) -> &'static str {
        match self {
            Kind::Processor => "reyna:plugin/processor@0.1.0",
            Kind::Effect => "reyna:plugin/effect@0.1.0",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Processor => "processor",
            Kind::Effect => "effect",
        })
    }
}

/// A size in bytes, written in manifests as `64MiB`, `512KiB` or `1048576`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Exact units only, so a manifest round-trips without rounding.
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        let text = UNITS
            .iter()
            .find(|(size, _)| self.0 >= *size && self.0.is_multiple_of(*size))
            .map_or_else(
                || self.0.to_string(),
                |(size, unit)| format!("{}{unit}", self.0 / size),
            );
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => t
                .parse::<bytesize::ByteSize>()
                .map(|b| ByteSize(b.as_u64()))
                .map_err(|e| serde::de::Error::custom(format!("invalid size `{t}`: {e}"))),
        }
    }
}

/// A duration, written in manifests as `2s`, `500ms` or `1m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration `{text}`: {e}")))
    }
}

/// Resource limits a plugin requests. Every field is optional; the host fills
/// in its defaults and caps each value at the operator's maximum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsRequest {
    /// Maximum linear memory of one instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// Wall-clock deadline of one call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// How many calls of this plugin may run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Maximum number of outputs one call may return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_outputs: Option<u32>,
    /// Maximum total bytes of the outputs of one call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<ByteSize>,
    /// How many times a `retryable` failure or a timeout is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Processors: most `effects.call` calls one call may make; the call past
    /// it fails the whole call (`too-many-effect-calls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_effect_calls: Option<u32>,
}

/// A plugin's declaration, embedded in its `.wasm` and read without running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// `[a-z0-9-]+`, unique per host; `name@version` is immutable once uploaded.
    pub name: String,
    /// Semantic version.
    pub version: semver::Version,
    /// Processor or effect.
    pub kind: Kind,
    /// One line on what the plugin does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Subject patterns this plugin is run for.
    #[serde(default)]
    pub subscribes: Vec<SubjectPattern>,
    /// Schemas of the blobs it accepts.
    #[serde(default)]
    pub inputs: Vec<SchemaId>,
    /// Schemas of the blobs it may return.
    #[serde(default)]
    pub outputs: Vec<SchemaId>,
    /// Processors: the effects it may call through `effects.call`.
    #[serde(default)]
    pub effects: Vec<String>,
    /// Effects: outbound hosts it may reach (see [`AllowedHost`]):
    /// `https://host`, `http://host:port`, `host:*`, or `*` for whatever the
    /// operator approves; an entry without a scheme allows https only.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Requested limits.
    #[serde(default)]
    pub limits: LimitsRequest,
}

/// Why a manifest was refused. Each message names the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("manifest is not valid: {0}")]
    Syntax(String),
    /// The manifest section is not UTF-8.
    #[error("manifest is not UTF-8 text")]
    NotUtf8,
    /// `name` does not match `[a-z0-9-]+`.
    #[error(
        "invalid plugin name `{0}`: use 1 to 64 characters from a-z, 0-9 and `-`, not starting or ending with `-`"
    )]
    InvalidName(String),
    /// A field's value breaks a rule; the message says which.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// The manifest key.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Checks a plugin or effect name: `[a-z0-9-]{1,64}`, no leading or trailing `-`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Why an `allowed-hosts` entry (or an operator approval) is not a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AllowedHostError(String);

/// Which ports an [`AllowedHost`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllowedPort {
    /// No port written: the scheme's default (443 for https, 80 for http).
    Default,
    /// `:8443`: exactly that port.
    Exact(u16),
    /// `:*`: any port. Only ever what the entry spells out.
    Any,
}

/// An approved outbound host of an effect, parsed from `allowed-hosts` or
/// from an operator's approvals.
///
/// Forms: `host`, `host:port`, `host:*`, and each of them behind `https://`
/// or `http://`; the host may be a name, an IPv4 address, a bracketed IPv6
/// address, or `*` (any host). An entry that names no scheme allows
/// **https only**: plain http must be written out (`http://host:port`). A
/// port wildcard is only what the entry spells out (`host:*`): without a
/// port, the entry allows the scheme's default port only.
///
/// The bare entry `*` (no scheme, no port) defers to the other list (see
/// `NetPolicy` in the runtime): on its own it means any host over https on
/// port 443.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllowedHost {
    /// `http` or `https` as written; `None` when the entry names no scheme,
    /// which allows https only.
    pub scheme: Option<String>,
    /// Lowercase host name, IP address (in its canonical text form), or `*`.
    pub host: String,
    /// The ports allowed.
    pub port: AllowedPort,
}

impl AllowedHost {
    /// Parses `[scheme://]host[:port|:*]`.
    pub fn parse(text: &str) -> Result<Self, AllowedHostError> {
        Self::parse_text(text).map_err(AllowedHostError)
    }

    /// Parses an operator's approval: like [`AllowedHost::parse`], and also
    /// refuses a scheme-less entry on port 80 (`host:80`), which reads as
    /// plain http but means https on port 80: the operator writes
    /// `http://host:80` (or `https://host:80`) instead.
    pub fn parse_approval(text: &str) -> Result<Self, AllowedHostError> {
        let entry = Self::parse(text)?;
        if entry.scheme.is_none() && entry.port == AllowedPort::Exact(80) {
            return Err(AllowedHostError(format!(
                "`{text}` names no scheme, and an entry without one allows https only: \
                 write `http://{text}` to allow plain http (or `https://{text}`)"
            )));
        }
        Ok(entry)
    }

    fn parse_text(text: &str) -> Result<Self, String> {
        let (scheme, rest) = match text.split_once("://") {
            Some((s @ ("http" | "https"), rest)) => (Some(s.to_owned()), rest),
            Some((s, _)) => return Err(format!("unsupported scheme `{s}` in `{text}`")),
            None => (None, text),
        };
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(format!(
                "`{text}` must be a host and port, not a URL with a path"
            ));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (h, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("unclosed `[` in `{text}`"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(format!("invalid host `{rest}` in `{text}`")),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => AllowedPort::Default,
            Some("*") => AllowedPort::Any,
            Some(p) => AllowedPort::Exact(
                p.parse::<u16>()
                    .map_err(|_| format!("invalid port `{p}` in `{text}`"))?,
            ),
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '*'));
        if !host_ok {
            return Err(format!("invalid host `{host}` in `{text}`"));
        }
        // One text per address, so `[::ffff:7f00:1]` and `[::ffff:127.0.0.1]`
        // are the same entry, and match a request however it spells it.
        let host = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => host.to_ascii_lowercase(),
        };
        Ok(Self { scheme, host, port })
    }

    /// The scheme this entry allows: the one written, else `https`.
    pub fn scheme(&self) -> &str {
        self.scheme.as_deref().unwrap_or("https")
    }

    /// Whether this is the bare `*`, which defers to the other list.
    pub fn is_deferral(&self) -> bool {
        self.host == "*" && self.scheme.is_none() && self.port == AllowedPort::Default
    }

    /// Whether this entry on its own allows a request to
    /// `scheme://host:port` (`host` lowercase, an IP address in its
    /// canonical text form).
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let port_ok = match self.port {
            AllowedPort::Any => true,
            AllowedPort::Exact(p) => p == port,
            AllowedPort::Default => default_port(scheme) == Some(port),
        };
        self.scheme() == scheme
            && port_ok
            && (self.host == "*" || self.host.eq_ignore_ascii_case(host))
    }
}

/// The default port of `http` and `https`.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

impl Manifest {
    /// Parses TOML text and validates it.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Syntax(e.message().to_owned()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Parses the bytes of an embedded manifest section.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8)?;
        Self::parse(text)
    }

    /// Renders the manifest as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// Checks every rule that parsing alone does not.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if !is_valid_name(&self.name) {
            return Err(ManifestError::InvalidName(self.name.clone()));
        }
        if let Some(d) = &self.description
            && d.len() > 512
        {
            return Err(invalid("description", "longer than 512 bytes"));
        }
        check_unique("inputs", self.inputs.iter().map(SchemaId::as_str))?;
        check_unique("outputs", self.outputs.iter().map(SchemaId::as_str))?;
        check_unique(
            "subscribes",
            self.subscribes.iter().map(SubjectPattern::as_str),
        )?;
        check_unique("effects", self.effects.iter().map(String::as_str))?;
        for effect in &self.effects {
            if !is_valid_name(effect) {
                return Err(invalid(
                    "effects",
                    format!("`{effect}` is not a valid effect name (a-z, 0-9 and `-`)"),
                ));
            }
        }
        for pattern in &self.subscribes {
            // A literal schema in `blob.created.<schema>` must be a declared input:
            // otherwise the subscription could never deliver anything.
            if pattern.literal_at(0) == Some("blob")
                && pattern.literal_at(1) == Some("created")
                && let Some(schema) = pattern.literal_at(2)
                && !self.inputs.iter().any(|i| i.as_str() == schema)
            {
                return Err(invalid(
                    "subscribes",
                    format!("`{pattern}` names schema `{schema}`, which is not in `inputs`"),
                ));
            }
        }
        match self.kind {
            Kind::Processor => {
                if self.subscribes.is_empty() {
                    return Err(invalid(
                        "subscribes",
                        "a processor must subscribe to at least one subject",
                    ));
                }
                if self.inputs.is_empty() {
                    return Err(invalid(
                        "inputs",
                        "a processor must declare at least one input schema",
                    ));
                }
                if !self.allowed_hosts.is_empty() {
                    return Err(invalid(
                        "allowed-hosts",
                        "only effect plugins may reach the network; move the call into an effect and list it in `effects`",
                    ));
                }
            }
            Kind::Effect => {
                if !self.effects.is_empty() {
                    return Err(invalid(
                        "effects",
                        "an effect plugin cannot call other effects",
                    ));
                }
                if !self.subscribes.is_empty() && self.inputs.is_empty() {
                    return Err(invalid(
                        "inputs",
                        "an effect that subscribes to events must declare its input schemas",
                    ));
                }
            }
        }
        for host in &self.allowed_hosts {
            AllowedHost::parse(host).map_err(|e| invalid("allowed-hosts", e.to_string()))?;
        }
        let l = &self.limits;
        if l.memory.is_some_and(|m| m.0 < 64 * 1024) {
            return Err(invalid(
                "limits.memory",
                "must be at least 64KiB (one wasm page)",
            ));
        }
        if l.timeout.is_some_and(|t| t.0.is_zero()) {
            return Err(invalid("limits.timeout", "must be greater than zero"));
        }
        if l.max_concurrency == Some(0) {
            return Err(invalid("limits.max-concurrency", "must be at least 1"));
        }
        if l.max_effect_calls == Some(0) {
            return Err(invalid(
                "limits.max-effect-calls",
                "must be at least 1 (a processor that calls no effect lists none in `effects`)",
            ));
        }
        if l.max_effect_calls.is_some() && self.kind == Kind::Effect {
            return Err(invalid(
                "limits.max-effect-calls",
                "an effect plugin cannot call other effects",
            ));
        }
        if l.max_output_bytes.is_some_and(|b| b.0 == 0) {
            return Err(invalid(
                "limits.max-output-bytes",
                "must be greater than zero",
            ));
        }
        Ok(())
    }

    /// The parsed `allowed-hosts`.
    pub fn allowed_hosts(&self) -> Vec<AllowedHost> {
        self.allowed_hosts
            .iter()
            .filter_map(|h| AllowedHost::parse(h).ok())
            .collect()
    }
}

fn check_unique<'a>(
    field: &'static str,
    items: impl Iterator<Item = &'a str>,
) -> Result<(), ManifestError> {
    let mut seen = std::collections::HashSet::new();
    for item in items {
        if !seen.insert(item) {
            return Err(invalid(field, format!("`{item}` is listed twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_EXPAND: &str = r#"
name = "text-expand"
version = "1.2.0"
kind = "processor"
subscribes = ["blob.created.text-input-v1"]
inputs = ["text-input-v1"]
outputs = ["expanded-text-v1"]
effects = ["llm"]
[limits]
memory = "64MiB"
timeout = "2s"
max-concurrency = 4
max-outputs = 16
max-effect-calls = 8
"#;

    #[test]
    fn parses_the_documented_example() {
        let m = Manifest::parse(TEXT_EXPAND).unwrap();
        assert_eq!(m.id(), "text-expand@1.2.0");
        assert_eq!(m.kind, Kind::Processor);
        assert_eq!(m.limits.memory, Some(ByteSize(64 * 1024 * 1024)));
        assert_eq!(
            m.limits.timeout,
            Some(HumanDuration(Duration::from_secs(2)))
        );
        assert_eq!(m.limits.max_concurrency, Some(4));
        assert_eq!(m.limits.max_effect_calls, Some(8));
        // Round trip through TOML keeps every field.
        assert_eq!(Manifest::parse(&m.to_toml()).unwrap(), m);
    }

    fn err(text: &str) -> String {
        Manifest::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = err(&format!("{TEXT_EXPAND}\ncolour = \"red\""));
        assert!(e.contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn each_rule_names_the_field() {
        let e = err(&TEXT_EXPAND.replace("text-expand", "Text_Expand"));
        assert!(e.starts_with("invalid plugin name `Text_Expand`"), "{e}");
        let e = err(&TEXT_EXPAND.replace("1.2.0", "one"));
        assert!(e.contains("version"), "{e}");
        let e = err(&TEXT_EXPAND.replace("\"blob.created.text-input-v1\"", "\"blob..x\""));
        assert!(e.contains("empty token"), "{e}");
        let e = err(&TEXT_EXPAND.replace("blob.created.text-input-v1", "blob.created.chapter-v1"));
        assert_eq!(
            e,
            "invalid `subscribes`: `blob.created.chapter-v1` names schema `chapter-v1`, which is not in `inputs`"
        );
        let e = err(&TEXT_EXPAND.replace("expanded-text-v1", "Expanded"));
        assert!(e.contains("invalid schema id `Expanded`"), "{e}");
        let e = err(&TEXT_EXPAND.replace("\"64MiB\"", "\"lots\""));
        assert!(e.contains("invalid size `lots`"), "{e}");
        let e = err(&TEXT_EXPAND.replace(
            "effects = [\"llm\"]",
            "allowed-hosts = [\"api.example.com:443\"]",
        ));
        assert!(
            e.starts_with("invalid `allowed-hosts`: only effect plugins"),
            "{e}"
        );
        let e = err(&TEXT_EXPAND.replace("max-concurrency = 4", "max-concurrency = 0"));
        assert_eq!(e, "invalid `limits.max-concurrency`: must be at least 1");
        let e = err(&TEXT_EXPAND.replace("max-effect-calls = 8", "max-effect-calls = 0"));
        assert!(
            e.starts_with("invalid `limits.max-effect-calls`: must be at least 1"),
            "{e}"
        );
        let e = err(
            "name = \"x\"\nversion = \"0.1.0\"\nkind = \"effect\"\n[limits]\nmax-effect-calls = 2\n",
        );
        assert_eq!(
            e,
            "invalid `limits.max-effect-calls`: an effect plugin cannot call other effects"
        );
    }

    #[test]
    fn allowed_hosts_match_scheme_host_and_port() {
        let h = AllowedHost::parse("api.example.com:443").unwrap();
        assert!(h.allows("https", "api.example.com", 443));
        assert!(!h.allows("https", "api.example.com", 8443));
        assert!(!h.allows("https", "evil.example.com", 443));
        let h = AllowedHost::parse("https://api.example.com").unwrap();
        assert!(h.allows("https", "api.example.com", 443));
        assert!(!h.allows("http", "api.example.com", 443));
        assert!(AllowedHost::parse("https://x.com/path").is_err());
        assert!(AllowedHost::parse("ftp://x.com").is_err());
        assert!(AllowedHost::parse("x.com:99999").is_err());
    }

    #[test]
    fn an_entry_without_a_scheme_allows_https_only() {
        for text in [
            "127.0.0.1:8080",
            "api.example.com",
            "api.example.com:*",
            "*",
        ] {
            let h = AllowedHost::parse(text).unwrap();
            assert_eq!(h.scheme(), "https", "{text}");
            for port in [80, 443, 8080] {
                assert!(
                    !h.allows("http", &h.host.replace('*', "x.com"), port),
                    "{text}"
                );
            }
        }
        let h = AllowedHost::parse("127.0.0.1:8080").unwrap();
        assert!(h.allows("https", "127.0.0.1", 8080));
        assert!(!h.allows("http", "127.0.0.1", 8080));
        let h = AllowedHost::parse("http://127.0.0.1:8080").unwrap();
        assert!(h.allows("http", "127.0.0.1", 8080));
        assert!(!h.allows("https", "127.0.0.1", 8080));
        // A bare host defaults to the port of the scheme it allows.
        let h = AllowedHost::parse("http://hooks.example.com").unwrap();
        assert!(h.allows("http", "hooks.example.com", 80));
        assert!(!h.allows("http", "hooks.example.com", 443));
        // An operator approval reading as plain http is refused, with the fix.
        let e = AllowedHost::parse_approval("hooks.example.com:80").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`hooks.example.com:80` names no scheme, and an entry without one allows https \
             only: write `http://hooks.example.com:80` to allow plain http (or \
             `https://hooks.example.com:80`)"
        );
        assert!(AllowedHost::parse_approval("http://hooks.example.com:80").is_ok());
        assert!(AllowedHost::parse_approval("hooks.example.com:443").is_ok());
    }

    #[test]
    fn a_port_wildcard_is_only_what_the_entry_spells_out() {
        let h = AllowedHost::parse("api.example.com").unwrap();
        assert_eq!(h.port, AllowedPort::Default);
        assert!(h.allows("https", "api.example.com", 443));
        assert!(!h.allows("https", "api.example.com", 8443));
        let h = AllowedHost::parse("api.example.com:*").unwrap();
        assert_eq!(h.port, AllowedPort::Any);
        assert!(h.allows("https", "api.example.com", 8443));
        assert!(h.allows("https", "api.example.com", 1));
        // `*` as a host: any host, still on the default port only.
        let h = AllowedHost::parse("https://*").unwrap();
        assert!(h.allows("https", "x.example.com", 443));
        assert!(!h.allows("https", "x.example.com", 8443));
        let h = AllowedHost::parse("http://[::1]:*").unwrap();
        assert!(h.allows("http", "::1", 9));
        assert!(AllowedHost::parse("x.com:**").is_err());
    }

    #[test]
    fn ip_hosts_are_kept_in_one_text_form() {
        let h = AllowedHost::parse("[::ffff:7f00:1]:8080").unwrap();
        assert_eq!(h.host, "::ffff:127.0.0.1");
        let h = AllowedHost::parse("[2001:DB8:0:0::1]").unwrap();
        assert_eq!(h.host, "2001:db8::1");
    }
}
