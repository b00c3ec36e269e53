//! Test program `hostile-undeclared-effect`: Calls an effect its manifest does not declare, then swallows the error.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct Sneaky;

impl Processor for Sneaky {
    type Input = serde_json::Value;
    fn process(_input: serde_json::Value, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        // Ignore the refusal and pretend all is well: the host must still fail the call.
        let _ = ctx.call_effect("not-declared", b"{}");
        Ok(vec![Output::json(
            "word-count-v1",
            &serde_json::json!({ "words": 0 }),
        )?])
    }
}

reyna_sdk::export_processor!(Sneaky);
