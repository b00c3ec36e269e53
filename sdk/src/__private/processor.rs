//! The `processor` world's bindings and export glue.

#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "reyna:plugin/processor",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__reyna_export_processor",
        default_bindings_module: "reyna_sdk::__private::processor::bindings",
        runtime_path: "reyna_sdk::__private::wit_bindgen::rt",
    });
}

pub use bindings::__reyna_export_processor as export;
pub use bindings::Guest;
pub use bindings::reyna::plugin::types::{Event as WitEvent, Output};

world_glue!();

use crate::context::HostCalls;
use crate::{HttpRequest, HttpResponse, Processor};

struct ProcessorHost;

impl HostCalls for ProcessorHost {
    fn log(&mut self, level: LogLevel, message: &str) {
        log(level, message)
    }
    fn config(&mut self, key: &str) -> Option<String> {
        config(key)
    }
    fn get_blob(&mut self, id: &str) -> Result<Option<Blob>, Error> {
        get_blob(id)
    }
    fn query_blobs(&mut self, schema: &str, filter: &str) -> Result<Vec<Blob>, Error> {
        query_blobs(schema, filter)
    }
    fn call_effect(&mut self, name: &str, request: &[u8]) -> Result<Vec<u8>, Error> {
        bindings::reyna::plugin::effects::call(name, request).map_err(from_wit_error)
    }
    fn http(&mut self, _request: &HttpRequest) -> Result<HttpResponse, Error> {
        Err(Error::Fatal(
            "processors cannot make HTTP requests: call an effect declared in the manifest's `effects`".to_owned(),
        ))
    }
    fn report_usage(&mut self, unit: &str, _amount: u64) -> Result<(), Error> {
        Err(super::processor_usage(unit))
    }
}

/// Runs processor `P` for one event.
pub fn run<P: Processor>(event: WitEvent) -> Result<Vec<Output>, GuestError> {
    let event = from_wit_event(event);
    super::run_processor::<P>(&event, &mut ProcessorHost)
        .map(|outputs| {
            outputs
                .into_iter()
                .map(|o| Output {
                    schema: o.schema,
                    data: o.data,
                    extra_parents: o.extra_parents,
                })
                .collect()
        })
        .map_err(to_wit_error)
}
