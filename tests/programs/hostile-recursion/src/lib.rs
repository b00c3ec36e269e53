//! Test program `hostile-recursion`: Recurses without end: must trap with a stack overflow, not crash the host.

use reyna_sdk::{Context, Error, Output, Processor};

#[inline(never)]
#[allow(
    unconditional_recursion,
    reason = "the point: recurse until the stack runs out"
)]
fn descend(depth: u64) -> u64 {
    // Scalars only, so the wasm stack (not the shadow stack) runs out.
    std::hint::black_box(descend(std::hint::black_box(depth + 1))) + 1
}

#[derive(Debug)]
pub struct Deep;

impl Processor for Deep {
    type Input = serde_json::Value;
    fn process(_input: serde_json::Value, _ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let n = descend(0);
        Ok(vec![Output::json(
            "word-count-v1",
            &serde_json::json!({ "words": n }),
        )?])
    }
}

reyna_sdk::export_processor!(Deep);
