//! Glue used by the export macros. Not a public API: it changes without notice.

use crate::context::HostCalls;
use crate::{Context, Effect, Error, Event, Output, Processor};

#[cfg(target_arch = "wasm32")]
pub use wit_bindgen;

#[cfg(target_arch = "wasm32")]
#[macro_use]
mod glue;
#[cfg(all(target_arch = "wasm32", feature = "effect"))]
pub mod effect;
#[cfg(all(target_arch = "wasm32", feature = "processor"))]
pub mod processor;

/// Runs a processor on an event: decode the input, call it. Shared by the
/// component export and the native test harness, so both behave the same.
// Used by the component glue of one world and by the native harness.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn run_processor<P: Processor>(
    event: &Event,
    host: &mut dyn HostCalls,
) -> Result<Vec<Output>, Error> {
    let input: P::Input = event.blob.json()?;
    let mut ctx = Context::new(event, host);
    P::process(input, &mut ctx)
}

/// Runs an effect's `perform`. The context's blob is empty: a perform serves a
/// processor's call, not an event.
// Used by the component glue of one world and by the native harness.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn run_perform<E: Effect>(
    request: Vec<u8>,
    host: &mut dyn HostCalls,
) -> Result<Vec<u8>, Error> {
    let event = Event {
        subject: String::new(),
        blob: crate::Blob {
            id: String::new(),
            tenant: String::new(),
            schema: String::new(),
            data: Vec::new(),
            parents: Vec::new(),
        },
    };
    let mut ctx = Context::new(&event, host);
    E::perform(request, &mut ctx)
}

/// Runs an effect's `deliver` for an event it subscribed to.
// Used by the component glue of one world and by the native harness.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn run_deliver<E: Effect>(
    event: Event,
    host: &mut dyn HostCalls,
) -> Result<Vec<u8>, Error> {
    let owned = event.clone();
    let mut ctx = Context::new(&owned, host);
    E::deliver(event, &mut ctx)
}

/// What [`Context::report_usage`] returns in a processor, in a component and
/// in the native harness alike: only effects have usage to report.
// Used by the processor glue and by the native harness.
#[cfg_attr(
    all(target_arch = "wasm32", not(feature = "processor")),
    allow(dead_code)
)]
pub(crate) fn processor_usage(unit: &str) -> Error {
    Error::Fatal(format!(
        "processors cannot report usage (`{unit}`): the effect that did the work reports it"
    ))
}
