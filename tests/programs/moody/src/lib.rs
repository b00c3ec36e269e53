//! Test program `moody`: counts words, or fails the way its input's first
//! word asks: `trap` panics, `loop` spins until the deadline, `fatal` and
//! `retry` return those errors. It always reads the config key
//! `credential` (a secret in tests), and `log-secret` logs its value, which
//! the host must redact.

use reyna_sdk::{Context, Error, LogLevel, Output, Processor};

#[derive(serde::Deserialize, Debug)]
pub struct Input {
    content: String,
}

#[derive(Debug)]
pub struct Moody;

impl Processor for Moody {
    type Input = Input;
    #[allow(clippy::panic)] // Panicking on request is its job.
    fn process(input: Input, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let credential = ctx.config("credential").unwrap_or_default();
        match input.content.split_whitespace().next().unwrap_or_default() {
            "trap" => panic!("moody was asked to trap"),
            "loop" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "fatal" => return Err(Error::fatal("moody was asked to fail")),
            "retry" => return Err(Error::retryable("moody is waiting for something")),
            "log-secret" => ctx.log(LogLevel::Info, &format!("the credential is {credential}")),
            _ => {}
        }
        let words = input.content.split_whitespace().count();
        Ok(vec![Output::json(
            "word-count-v1",
            &serde_json::json!({ "words": words }),
        )?])
    }
}

reyna_sdk::export_processor!(Moody);
