//! Test program `hostile-loop`: Spins forever: must be stopped by the deadline.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct Spin;

impl Processor for Spin {
    type Input = serde_json::Value;
    fn process(_input: serde_json::Value, _ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let mut x: u64 = 1;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

reyna_sdk::export_processor!(Spin);
