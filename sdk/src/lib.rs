//! `reyna-sdk`: write Reyna plugins as plain Rust types.
//!
//! A processor is a type that implements [`Processor`]: it receives the event
//! blob's JSON already deserialized into your input type, and returns
//! [`Output`]s. One macro exports it and embeds the plugin's manifest
//! (`reyna.toml` next to your `Cargo.toml`) into the `.wasm`:
//!
//! ```
//! use reyna_sdk::{Context, Error, Output, Processor};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Text { text: String }
//!
//! struct Shout;
//!
//! impl Processor for Shout {
//!     type Input = Text;
//!     fn process(input: Text, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
//!         ctx.info(&format!("shouting {} bytes", input.text.len()));
//!         let out = serde_json::json!({ "text": input.text.to_uppercase() });
//!         Ok(vec![Output::json("shouted-text-v1", &out)?])
//!     }
//! }
//! // In a plugin crate: reyna_sdk::export_processor!(Shout);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`. Unit-test it
//! natively with [`testing::Harness`], which fakes the host in memory.
//!
//! [`text`] measures a text (words, sentences, syllables, the Flesch reading
//! ease) the one way the bundled text plugins all use.
//!
//! Effects implement [`Effect`] instead, enable the SDK's `effect` feature
//! (`default-features = false, features = ["effect"]`), and are exported with
//! [`export_effect!`]; they may call approved hosts with [`Context::http`],
//! and report what the call cost in their own units (an LLM's tokens) with
//! [`Context::report_usage`], which the host meters per tenant and checks
//! against the operator's budgets.
#![deny(missing_docs)]

// The generated bindings name this crate by its public path.
#[cfg(target_arch = "wasm32")]
extern crate self as reyna_sdk;

mod context;
pub mod text;
mod types;

#[doc(hidden)]
pub mod __private;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use context::Context;
pub use serde_json;
pub use types::{Blob, Error, Event, HttpRequest, HttpResponse, LogLevel, Output};

/// A pure processor: turns one event's blob into derived blobs.
///
/// A fresh instance runs for every event: keep no state between calls.
pub trait Processor {
    /// The blob's JSON is deserialized into this type before [`Processor::process`]
    /// runs; a blob that does not fit fails the call with [`Error::InvalidInput`].
    /// Use `serde_json::Value` to take the JSON as it is.
    type Input: serde::de::DeserializeOwned;

    /// Handles one event. The blob is available through [`Context::blob`].
    fn process(input: Self::Input, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error>;
}

/// An effect: the only kind of plugin that may call the outside world.
pub trait Effect {
    /// Serves `effects.call(<this effect>, request)` from a processor.
    fn perform(request: Vec<u8>, ctx: &mut Context<'_>) -> Result<Vec<u8>, Error>;

    /// Runs as a sink for a subscribed event and returns a receipt. By default
    /// it performs the event itself, as JSON (see [`Event::to_json`]).
    fn deliver(event: Event, ctx: &mut Context<'_>) -> Result<Vec<u8>, Error> {
        let request = event.to_json()?;
        Self::perform(request, ctx)
    }
}

/// Embeds the plugin's `reyna.toml` into the `.wasm` as the `reyna-manifest`
/// custom section, which the host reads without running plugin code. The
/// export macros call it; call it yourself only if you export by hand.
#[macro_export]
macro_rules! embed_manifest {
    () => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        #[unsafe(link_section = "reyna-manifest")]
        #[used]
        static __REYNA_MANIFEST: [u8; include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/reyna.toml"
        ))
        .len()] = *include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/reyna.toml"));
    };
}

/// Exports a [`Processor`] as this component's `process` function and embeds
/// the manifest. Use once per plugin crate.
#[macro_export]
macro_rules! export_processor {
    ($ty:ty) => {
        $crate::embed_manifest!();
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ReynaProcessor;
            impl $crate::__private::processor::Guest for __ReynaProcessor {
                fn process(
                    event: $crate::__private::processor::WitEvent,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<$crate::__private::processor::Output>,
                    $crate::__private::processor::GuestError,
                > {
                    $crate::__private::processor::run::<$ty>(event)
                }
            }
            $crate::__private::processor::export!(
                __ReynaProcessor with_types_in $crate::__private::processor::bindings
            );
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            fn is_processor<T: $crate::Processor>() {}
            is_processor::<$ty>();
        };
    };
}

/// Exports an [`Effect`] as this component's `perform` and `deliver`
/// functions and embeds the manifest. Needs the SDK's `effect` feature.
#[macro_export]
macro_rules! export_effect {
    ($ty:ty) => {
        $crate::embed_manifest!();
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ReynaEffect;
            impl $crate::__private::effect::Guest for __ReynaEffect {
                fn perform(
                    request: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<u8>,
                    $crate::__private::effect::GuestError,
                > {
                    $crate::__private::effect::perform::<$ty>(request)
                }
                fn deliver(
                    event: $crate::__private::effect::WitEvent,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<u8>,
                    $crate::__private::effect::GuestError,
                > {
                    $crate::__private::effect::deliver::<$ty>(event)
                }
            }
            $crate::__private::effect::export!(
                __ReynaEffect with_types_in $crate::__private::effect::bindings
            );
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            fn is_effect<T: $crate::Effect>() {}
            is_effect::<$ty>();
        };
    };
}
