//! Test program `hostile-big-output`: Returns 10,000 outputs of 64 KiB: must hit the output limits.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct Flood;

impl Processor for Flood {
    type Input = serde_json::Value;
    fn process(_input: serde_json::Value, _ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let padding = "x".repeat(64 * 1024);
        let one = Output::json(
            "word-count-v1",
            &serde_json::json!({ "words": 1, "padding": padding }),
        )?;
        Ok(vec![one; 10_000])
    }
}

reyna_sdk::export_processor!(Flood);
