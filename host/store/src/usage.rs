//! Per-tenant quotas and metered usage: the records behind a tenant's
//! limits (kept on its [`TenantRecord`](crate::TenantRecord)) and its usage
//! per hour, day and month (kept in their own table, written in the same
//! transaction as what they count).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A tenant's limits. Every field is optional: on a tenant's record a
/// missing field means "the operator's default", and in the operator's
/// defaults it means "no limit".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Blobs the tenant may create per second, on average (a token bucket
    /// refilled at this rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs_per_second: Option<u32>,
    /// How many blobs the tenant may create at once before the rate applies
    /// (the bucket's size; the rate when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_burst: Option<u32>,
    /// Bytes of blob data the tenant may keep stored (derived blobs count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
    /// Jobs the tenant may have waiting (pending, retrying or deferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_jobs: Option<u64>,
    /// Jobs of the tenant that may run at once: its cap on the workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_jobs: Option<u32>,
    /// The tenant's weight when jobs are claimed (1 when unset): a tenant
    /// with share 2 gets two claims for every one of a tenant with share 1
    /// while both have work due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<u32>,
    /// Effect calls the tenant's jobs may make per day (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect_calls_per_day: Option<u64>,
    /// Budgets in the units effects report (`tokens` for the `llm`
    /// example), by unit. On a tenant's record a unit's budget replaces the
    /// default's for that unit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub budgets: BTreeMap<String, Budget>,
}

/// A budget in one effect-reported unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Most units per day (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u64>,
    /// Most units per calendar month (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_month: Option<u64>,
}

impl Quotas {
    /// These overrides over `defaults`: each field set here wins, and
    /// budgets merge by unit.
    pub fn over(&self, defaults: &Quotas) -> Quotas {
        let mut budgets = defaults.budgets.clone();
        for (unit, budget) in &self.budgets {
            budgets.insert(unit.clone(), *budget);
        }
        Quotas {
            blobs_per_second: self.blobs_per_second.or(defaults.blobs_per_second),
            blob_burst: self.blob_burst.or(defaults.blob_burst),
            stored_bytes: self.stored_bytes.or(defaults.stored_bytes),
            queued_jobs: self.queued_jobs.or(defaults.queued_jobs),
            running_jobs: self.running_jobs.or(defaults.running_jobs),
            share: self.share.or(defaults.share),
            effect_calls_per_day: self.effect_calls_per_day.or(defaults.effect_calls_per_day),
            budgets,
        }
    }

    /// The claim weight (at least 1).
    pub fn weight(&self) -> u32 {
        self.share.unwrap_or(1).max(1)
    }

    /// Every windowed limit: the effect-call quota and each budget.
    pub fn window_limits(&self) -> Vec<WindowLimit> {
        let mut limits = Vec::new();
        if let Some(limit) = self.effect_calls_per_day {
            limits.push(WindowLimit {
                metric: Metric::EffectCalls,
                window: Window::Day,
                limit,
            });
        }
        for (unit, budget) in &self.budgets {
            for (window, limit) in [
                (Window::Day, budget.per_day),
                (Window::Month, budget.per_month),
            ] {
                if let Some(limit) = limit {
                    limits.push(WindowLimit {
                        metric: Metric::Unit(unit.clone()),
                        window,
                        limit,
                    });
                }
            }
        }
        limits
    }

    /// Checks the values: a unit name like the contract's, no zero share.
    pub fn validate(&self) -> Result<(), String> {
        if self.share == Some(0) {
            return Err("share must be at least 1".to_owned());
        }
        if self.running_jobs == Some(0) {
            return Err(
                "running_jobs must be at least 1 (a tenant with none could never run a job)"
                    .to_owned(),
            );
        }
        if self.blob_burst.is_some() && self.blobs_per_second.is_none() {
            return Err("blob_burst needs blobs_per_second".to_owned());
        }
        if self.budgets.len() > MAX_UNITS {
            return Err(format!(
                "at most {MAX_UNITS} budgets (units) per tenant; this sets {}",
                self.budgets.len()
            ));
        }
        for unit in self.budgets.keys() {
            check_unit_name(unit)?;
        }
        Ok(())
    }
}

/// Whether `unit` is a valid usage unit name (the contract's rule,
/// [`reyna_types::check_unit_name`]).
pub fn check_unit_name(unit: &str) -> Result<(), String> {
    reyna_types::check_unit_name(unit).map_err(|e| e.to_string())
}

/// What a windowed limit counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Effect calls made.
    EffectCalls,
    /// Units of this name that effects reported.
    Unit(String),
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::EffectCalls => f.write_str("effect calls"),
            Metric::Unit(unit) => write!(f, "`{unit}`"),
        }
    }
}

/// A limit on a metric over a calendar window.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WindowLimit {
    /// What it counts.
    pub metric: Metric,
    /// Over which window.
    pub window: Window,
    /// The most allowed in one window.
    pub limit: u64,
}

impl WindowLimit {
    /// How much of the metric `usage` holds.
    pub fn used(&self, usage: &Usage) -> u64 {
        match &self.metric {
            Metric::EffectCalls => usage.effect_calls,
            Metric::Unit(unit) => usage.units.get(unit).copied().unwrap_or(0),
        }
    }

    /// The name a refusal or an event gives it, e.g. `budget:tokens:day`
    /// or `effect-calls:day`.
    pub fn name(&self) -> String {
        match &self.metric {
            Metric::EffectCalls => format!("effect-calls:{}", self.window.as_str()),
            Metric::Unit(unit) => format!("budget:{unit}:{}", self.window.as_str()),
        }
    }
}

/// A calendar window of a windowed limit (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    /// A day.
    Day,
    /// A calendar month.
    Month,
}

impl Window {
    /// `day` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// The usage granularity that holds one window.
    pub fn granularity(self) -> Granularity {
        match self {
            Window::Day => Granularity::Day,
            Window::Month => Granularity::Month,
        }
    }
}

/// Most distinct units one usage record keeps by name (see [`Usage::add`]).
pub const MAX_UNITS: usize = 64;
/// The unit the amounts of units past [`MAX_UNITS`] add up under.
pub const OTHER_UNITS: &str = "_other";

/// What a tenant used over a period. Every figure is a sum over the period
/// except `peak_memory`, the largest of the period's calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Blobs the tenant created (through the API or the engine).
    pub blobs_created: u64,
    /// Blobs its jobs derived.
    pub blobs_derived: u64,
    /// Bytes of blob data stored (created and derived).
    pub bytes_stored: u64,
    /// Job runs (each attempt counts once), failed ones included.
    pub jobs_run: u64,
    /// Job runs that failed (retried or dead-lettered).
    pub jobs_failed: u64,
    /// Wall time of the runs in the sandbox (µs).
    pub wall_us: u64,
    /// CPU time of the runs (µs).
    pub cpu_us: u64,
    /// Epoch ticks the runs used.
    pub epoch_ticks: u64,
    /// Fuel the runs used (when fuel metering is on).
    pub fuel: u64,
    /// The largest linear memory one run had (bytes).
    pub peak_memory: u64,
    /// Bytes given to the runs as input.
    pub bytes_in: u64,
    /// Bytes the runs returned.
    pub bytes_out: u64,
    /// Effect calls the runs made.
    pub effect_calls: u64,
    /// Units effects reported, by unit (e.g. `tokens`).
    pub units: BTreeMap<String, u64>,
}

impl Usage {
    /// Adds `other` into this (sums saturate; peak memory is the larger).
    pub fn add(&mut self, other: &Usage) {
        let sums = [
            (&mut self.blobs_created, other.blobs_created),
            (&mut self.blobs_derived, other.blobs_derived),
            (&mut self.bytes_stored, other.bytes_stored),
            (&mut self.jobs_run, other.jobs_run),
            (&mut self.jobs_failed, other.jobs_failed),
            (&mut self.wall_us, other.wall_us),
            (&mut self.cpu_us, other.cpu_us),
            (&mut self.epoch_ticks, other.epoch_ticks),
            (&mut self.fuel, other.fuel),
            (&mut self.bytes_in, other.bytes_in),
            (&mut self.bytes_out, other.bytes_out),
            (&mut self.effect_calls, other.effect_calls),
        ];
        for (mine, theirs) in sums {
            *mine = mine.saturating_add(theirs);
        }
        self.peak_memory = self.peak_memory.max(other.peak_memory);
        for (unit, amount) in &other.units {
            // A record keeps at most MAX_UNITS units; the rest add up under
            // `_other` (not a valid unit name, so it names no real unit).
            let unit = if self.units.contains_key(unit) || self.units.len() < MAX_UNITS {
                unit.clone()
            } else {
                OTHER_UNITS.to_owned()
            };
            let mine = self.units.entry(unit).or_default();
            *mine = mine.saturating_add(*amount);
        }
    }

    /// The usage of one job run that cost `cost`.
    pub fn of_run(cost: &crate::Cost, failed: bool) -> Usage {
        Usage {
            jobs_run: 1,
            jobs_failed: u64::from(failed),
            wall_us: cost.wall_us,
            cpu_us: cost.cpu_us,
            epoch_ticks: cost.epoch_ticks,
            fuel: cost.fuel.unwrap_or(0),
            peak_memory: cost.peak_memory,
            bytes_in: cost.bytes_in,
            bytes_out: cost.bytes_out,
            ..Usage::default()
        }
    }
}

/// The quotas a new blob is checked against in the transaction that
/// stores it (so concurrent creations cannot pass them together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestLimits {
    /// Most bytes of blob data the tenant may store.
    pub stored_bytes: Option<u64>,
    /// Most jobs the tenant may have waiting.
    pub queued_jobs: Option<u64>,
}

/// How a claim shares the workers among the tenants with due work.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// Where the previous claim stopped.
    pub after: Option<ClaimCursor>,
    /// Each tenant's weight (jobs per turn); 1 when absent.
    pub weights: std::collections::HashMap<String, u32>,
    /// How many more jobs a tenant may have running (its running-jobs
    /// quota less what runs now); `default_cap` when absent.
    pub caps: std::collections::HashMap<String, usize>,
    /// The cap of a tenant absent from `caps`; no cap when `None`.
    pub default_cap: Option<usize>,
}

impl ClaimPolicy {
    /// `tenant`'s jobs per turn (at least 1).
    pub fn weight(&self, tenant: &str) -> u32 {
        self.weights.get(tenant).copied().unwrap_or(1).max(1)
    }

    /// How many more jobs `tenant` may claim (`None`: no cap).
    pub fn cap(&self, tenant: &str) -> Option<usize> {
        self.caps.get(tenant).copied().or(self.default_cap)
    }
}

/// Where a claim stopped: the tenant it served last and how much of that
/// tenant's turn was left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimCursor {
    /// The tenant served last.
    pub tenant: String,
    /// Jobs it may still claim in its turn.
    pub left: u32,
}

/// What a tenant holds now, against its quotas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holdings {
    /// Bytes of blob data it stores.
    pub stored_bytes: u64,
    /// Jobs waiting (pending, retrying or deferred).
    pub queued_jobs: u64,
}

/// One period of a tenant's usage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsagePeriod {
    /// Its start (ms since the epoch, UTC).
    pub start: u64,
    /// Its end, exclusive.
    pub end: u64,
    /// What the tenant used in it.
    #[serde(flatten)]
    pub usage: Usage,
}

/// A windowed limit that usage just reached: 80% of it (a warning) or all
/// of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitCrossing {
    /// The limit.
    pub limit: WindowLimit,
    /// How much of it is used now.
    pub used: u64,
    /// Whether it is used up (else it passed 80%).
    pub exhausted: bool,
    /// When its window resets (ms).
    pub resets_at: u64,
}

/// How finely usage is kept and read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One record per hour.
    Hour,
    /// One record per day (UTC).
    Day,
    /// One record per calendar month (UTC).
    Month,
}

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

impl Granularity {
    /// Every granularity, finest first.
    pub const ALL: [Granularity; 3] = [Granularity::Hour, Granularity::Day, Granularity::Month];

    /// `hour`, `day` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
            Granularity::Month => "month",
        }
    }

    /// Its code in the usage table's key.
    pub(crate) fn code(self) -> u8 {
        match self {
            Granularity::Hour => 0,
            Granularity::Day => 1,
            Granularity::Month => 2,
        }
    }

    /// The start of the period that holds `at` (ms, UTC).
    pub fn start(self, at: u64) -> u64 {
        match self {
            Granularity::Hour => at - at % HOUR_MS,
            Granularity::Day => at - at % DAY_MS,
            Granularity::Month => {
                let (year, month, _) = civil_from_days(at / DAY_MS);
                days_from_civil(year, month, 1) * DAY_MS
            }
        }
    }

    /// The start of the period after the one starting at `start`.
    pub fn next(self, start: u64) -> u64 {
        match self {
            Granularity::Hour => start + HOUR_MS,
            Granularity::Day => start + DAY_MS,
            Granularity::Month => {
                let (year, month, _) = civil_from_days(start / DAY_MS);
                let (year, month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                days_from_civil(year, month, 1) * DAY_MS
            }
        }
    }
}

impl std::str::FromStr for Granularity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Granularity::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| format!("granularity must be hour, day or month, not `{s}`"))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (years from 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `at` (ms since the epoch) as an RFC 3339 UTC time, to the second.
pub fn rfc3339(at: u64) -> String {
    let (year, month, day) = civil_from_days(at / DAY_MS);
    let secs = (at % DAY_MS) / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_periods_start_and_end_where_utc_says() {
        // 2024-02-29T13:45:10Z
        let at = 1_709_214_310_000;
        assert_eq!(rfc3339(at), "2024-02-29T13:45:10Z");
        assert_eq!(rfc3339(Granularity::Hour.start(at)), "2024-02-29T13:00:00Z");
        assert_eq!(rfc3339(Granularity::Day.start(at)), "2024-02-29T00:00:00Z");
        let month = Granularity::Month.start(at);
        assert_eq!(rfc3339(month), "2024-02-01T00:00:00Z");
        assert_eq!(
            rfc3339(Granularity::Month.next(month)),
            "2024-03-01T00:00:00Z"
        );
        let december = Granularity::Month.start(1_733_011_200_000 + 5 * DAY_MS);
        assert_eq!(rfc3339(december), "2024-12-01T00:00:00Z");
        assert_eq!(
            rfc3339(Granularity::Month.next(december)),
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // The far end of the clock neither panics nor wraps.
        for g in Granularity::ALL {
            assert!(g.start(u64::MAX) <= u64::MAX - g.start(u64::MAX) % 1000);
        }
        // Every day of four years round-trips.
        for day in 19_000..20_500 {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn overrides_win_field_by_field_and_budgets_merge_by_unit() {
        let defaults = Quotas {
            blobs_per_second: Some(10),
            stored_bytes: Some(1 << 30),
            budgets: BTreeMap::from([
                (
                    "tokens".into(),
                    Budget {
                        per_day: Some(1000),
                        per_month: Some(20_000),
                    },
                ),
                (
                    "images".into(),
                    Budget {
                        per_day: Some(5),
                        per_month: None,
                    },
                ),
            ]),
            ..Quotas::default()
        };
        let overrides = Quotas {
            stored_bytes: Some(1 << 20),
            share: Some(3),
            budgets: BTreeMap::from([(
                "tokens".into(),
                Budget {
                    per_day: Some(50),
                    per_month: None,
                },
            )]),
            ..Quotas::default()
        };
        let q = overrides.over(&defaults);
        assert_eq!(q.blobs_per_second, Some(10));
        assert_eq!(q.stored_bytes, Some(1 << 20));
        assert_eq!(q.weight(), 3);
        assert_eq!(
            q.budgets["tokens"],
            Budget {
                per_day: Some(50),
                per_month: None
            }
        );
        assert_eq!(q.budgets["images"].per_day, Some(5));
        let names: Vec<String> = q.window_limits().iter().map(WindowLimit::name).collect();
        assert_eq!(names, ["budget:images:day", "budget:tokens:day"]);
        assert!(
            Quotas {
                share: Some(0),
                ..Quotas::default()
            }
            .validate()
            .is_err()
        );
        assert!(check_unit_name("Tokens").is_err());
        assert!(check_unit_name("prompt-tokens").is_ok());
    }

    #[test]
    fn a_usage_record_keeps_at_most_max_units_by_name() {
        let mut usage = Usage::default();
        for i in 0..MAX_UNITS + 10 {
            let one = Usage {
                units: [(format!("u{i}"), 2)].into(),
                ..Usage::default()
            };
            usage.add(&one);
            usage.add(&one);
        }
        assert_eq!(usage.units.len(), MAX_UNITS + 1);
        assert_eq!(usage.units[OTHER_UNITS], 40);
        assert_eq!(usage.units["u0"], 4);
    }
}
