//! Test program `fan-out`: returns `width` (config, default 16) variants of
//! its input text-input-v1 blob, each of which triggers it again. Within the
//! hop limit that is 16^16 blobs from one; the tree budget must stop it.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct FanOut;

#[derive(Debug, serde::Deserialize)]
pub struct Text {
    content: String,
}

impl Processor for FanOut {
    type Input = Text;
    fn process(input: Text, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let width = ctx
            .config("width")
            .and_then(|w| w.parse::<usize>().ok())
            .unwrap_or(16);
        (0..width)
            .map(|i| {
                let text = format!("{}.{i}", input.content);
                Output::json("text-input-v1", &serde_json::json!({ "content": text }))
            })
            .collect()
    }
}

reyna_sdk::export_processor!(FanOut);
