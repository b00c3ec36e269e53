//! Test program `quiet`: succeeds with no outputs, so its job completes
//! without deriving a blob (and without a `blob.created` event).

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct Quiet;

impl Processor for Quiet {
    type Input = serde_json::Value;
    fn process(_input: serde_json::Value, _ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        Ok(Vec::new())
    }
}

reyna_sdk::export_processor!(Quiet);
