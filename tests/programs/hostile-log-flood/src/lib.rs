//! Test program `hostile-log-flood`: Writes 10 MiB of logs and stdout/stderr: the host must bound what it keeps.

use reyna_sdk::{Context, Error, Output, Processor};

#[derive(Debug)]
pub struct Chatty;

impl Processor for Chatty {
    type Input = serde_json::Value;
    #[allow(clippy::print_stdout, clippy::print_stderr)]
    fn process(_input: serde_json::Value, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let line = "y".repeat(1024);
        for i in 0..4 * 1024 {
            ctx.info(&line);
            println!("{i} {line}");
            eprintln!("{i} {line}");
        }
        Ok(vec![Output::json(
            "word-count-v1",
            &serde_json::json!({ "words": 0 }),
        )?])
    }
}

reyna_sdk::export_processor!(Chatty);
