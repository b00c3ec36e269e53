//! Test program `cycle`: returns its input as a new text-input-v1 blob, so it
//! triggers itself again; the host's hop limit must stop it.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct Cycle;

impl Processor for Cycle {
    type Input = serde_json::Value;
    fn process(input: serde_json::Value, _ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        Ok(vec![Output::json("text-input-v1", &input)?])
    }
}

reyna_sdk::export_processor!(Cycle);
