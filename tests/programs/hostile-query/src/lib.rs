//! Test program `hostile-query`: Queries every chapter-v1 blob of its tenant at once and counts them: results must be bounded in bytes and time.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct Hoarder;

impl Processor for Hoarder {
    type Input = serde_json::Value;
    fn process(_input: serde_json::Value, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        // The host's refusal is the call's failure, as the guest got it.
        let found = ctx.query_blobs("chapter-v1", &serde_json::json!({}))?;
        Ok(vec![Output::json(
            "word-count-v1",
            &serde_json::json!({ "words": found.len() }),
        )?])
    }
}

reyna_sdk::export_processor!(Hoarder);
