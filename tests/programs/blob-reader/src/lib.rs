//! Test program `blob-reader`: reads the blob whose id is the input's `content`
//! with `get-blob` and reports `{"words": 1}` when it is visible, `0` when not.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug, serde::Deserialize)]
pub struct Input {
    content: String,
}

#[derive(Debug)]
pub struct BlobReader;

impl Processor for BlobReader {
    type Input = Input;
    fn process(input: Input, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let found = ctx.get_blob(input.content.trim())?.is_some();
        Ok(vec![Output::json(
            "word-count-v1",
            &serde_json::json!({ "words": u8::from(found) }),
        )?])
    }
}

reyna_sdk::export_processor!(BlobReader);
