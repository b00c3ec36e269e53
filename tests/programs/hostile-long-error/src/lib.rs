//! Test program `hostile-long-error`: Fails with a 15 MiB error message: what the host stores and returns of it must be cut.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct Verbose;

impl Processor for Verbose {
    type Input = serde_json::Value;
    fn process(_input: serde_json::Value, _ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        Err(Error::Fatal("e".repeat(15 << 20)))
    }
}

reyna_sdk::export_processor!(Verbose);
