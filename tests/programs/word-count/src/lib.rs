//! Test program `word-count`: Counts words: the trivial processor for benches and well-behaved neighbour in sandbox tests.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(serde::Deserialize, Debug)]
pub struct Input {
    content: String,
}

#[derive(Debug)]
pub struct WordCount;

impl Processor for WordCount {
    type Input = Input;
    fn process(input: Input, _ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let words = input.content.split_whitespace().count();
        Ok(vec![Output::json(
            "word-count-v1",
            &serde_json::json!({ "words": words }),
        )?])
    }
}

reyna_sdk::export_processor!(WordCount);
