//! Test program `hostile-empty-log`: Logs empty lines in a loop until its deadline: every line must count against the log budget.

use reyna_sdk::{Context, Error, LogLevel, Output, Processor};

#[derive(Debug)]
pub struct Mute;

impl Processor for Mute {
    type Input = serde_json::Value;
    fn process(_input: serde_json::Value, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        loop {
            ctx.log(LogLevel::Info, "");
        }
    }
}

reyna_sdk::export_processor!(Mute);
