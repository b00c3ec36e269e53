//! Test program `echo-sink`: an effect subscribed to word-count-v1 events; its
//! `perform` returns the request unchanged, so as a sink its receipt is the
//! event JSON (the SDK's default `deliver`).

use reyna_sdk::{Context, Effect, Error};

#[derive(Debug)]
pub struct EchoSink;

impl Effect for EchoSink {
    fn perform(request: Vec<u8>, _ctx: &mut Context<'_>) -> Result<Vec<u8>, Error> {
        Ok(request)
    }
}

reyna_sdk::export_effect!(EchoSink);
