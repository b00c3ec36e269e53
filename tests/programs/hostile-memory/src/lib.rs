//! Test program `hostile-memory`: Allocates until it hits the memory limit.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct Hog;

impl Processor for Hog {
    type Input = serde_json::Value;
    fn process(_input: serde_json::Value, _ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            chunks.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

reyna_sdk::export_processor!(Hog);
