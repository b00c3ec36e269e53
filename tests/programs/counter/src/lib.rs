//! Test program `counter`: Counts its calls in a static: with a fresh instance per call it always reports 1.

use reyna_sdk::{Context, Error, Output, Processor};

use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
pub struct Counter;

impl Processor for Counter {
    type Input = serde_json::Value;
    fn process(_input: serde_json::Value, _ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(vec![Output::json(
            "word-count-v1",
            &serde_json::json!({ "words": calls }),
        )?])
    }
}

reyna_sdk::export_processor!(Counter);
