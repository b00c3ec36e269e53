//! Test program `hostile-invalid-output`: Returns an output that is not JSON and one of an undeclared schema.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct Garbage;

impl Processor for Garbage {
    type Input = serde_json::Value;
    fn process(_input: serde_json::Value, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let mode = ctx.config("mode").unwrap_or_default();
        let output = if mode == "undeclared-schema" {
            Output::json(
                "expanded-text-v1",
                &serde_json::json!({ "original": "not declared" }),
            )?
        } else if mode == "schema-violation" {
            Output::json("word-count-v1", &serde_json::json!({ "words": "many" }))?
        } else {
            Output {
                schema: "word-count-v1".to_owned(),
                data: b"{not json".to_vec(),
                extra_parents: vec![],
            }
        };
        Ok(vec![output])
    }
}

reyna_sdk::export_processor!(Garbage);
