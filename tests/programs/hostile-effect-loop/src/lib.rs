//! Test program `hostile-effect-loop`: Calls its declared effect 12,000 times in one call (or as many times as the first word of the input's `content` says), asking for more effect calls than the operator allows.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct Caller;

impl Processor for Caller {
    type Input = serde_json::Value;
    fn process(input: serde_json::Value, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let calls = input["content"]
            .as_str()
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
            .unwrap_or(12_000u32);
        let mut answered = 0u32;
        for i in 0..calls {
            // Errors are ignored: the host must stop the loop itself.
            if ctx.call_effect("echo", &i.to_le_bytes()).is_ok() {
                answered += 1;
            }
        }
        Ok(vec![Output::json(
            "word-count-v1",
            &serde_json::json!({ "words": answered }),
        )?])
    }
}

reyna_sdk::export_processor!(Caller);
