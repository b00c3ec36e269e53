//! Test program `hostile-panic`: Panics: must fail as a trap with the panic message.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct Panics;

impl Processor for Panics {
    type Input = serde_json::Value;
    #[allow(clippy::panic)]
    fn process(_input: serde_json::Value, _ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        panic!("hostile-panic was asked to panic");
    }
}

reyna_sdk::export_processor!(Panics);
