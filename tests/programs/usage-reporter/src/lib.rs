//! Test program `usage-reporter`: an effect that reports usage units as its
//! request says, then ends as it says. Request:
//! `{"reports": [["tokens", 5], ...], "then": "answer" | "fail" | "panic" | "spin"}`.
//! Its answer lists what the host said to each report, in order: `"ok"` or
//! the error. `fail` returns a `fatal` error, `panic` traps and `spin` loops
//! until the host stops it, all after reporting.

use reyna_sdk::{Context, Effect, Error};
use serde::Deserialize;

#[derive(Deserialize)]
struct Request {
    reports: Vec<(String, u64)>,
    then: String,
}

#[derive(Debug)]
pub struct UsageReporter;

impl Effect for UsageReporter {
    fn perform(request: Vec<u8>, ctx: &mut Context<'_>) -> Result<Vec<u8>, Error> {
        let request: Request = serde_json::from_slice(&request)
            .map_err(|e| Error::invalid_input(format!("bad request: {e}")))?;
        let said: Vec<String> = request
            .reports
            .iter()
            .map(|(unit, amount)| match ctx.report_usage(unit, *amount) {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.to_string(),
            })
            .collect();
        match request.then.as_str() {
            "fail" => Err(Error::fatal("failed after reporting")),
            #[allow(clippy::panic)] // the trap is the test
            "panic" => panic!("panicked after reporting"),
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => serde_json::to_vec(&said).map_err(|e| Error::fatal(e.to_string())),
        }
    }
}

reyna_sdk::export_effect!(UsageReporter);
