//! The host side of the `reyna:plugin` contract, generated from `wit/` by
//! wasmtime's `bindgen!`. This is the only place the host calls `bindgen!`.
//!
//! Exposed so that embedders and the raw-wasmtime floor in `benches/` can
//! drive a processor without the runtime; the runtime itself is the normal way
//! to call a plugin.

#![allow(missing_docs)]

/// Bindings for the `processor` world: `host` and `effects` imports, the
/// `process` export.
pub mod processor {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "reyna:plugin/processor",
        imports: {
            // A denied effect stops the guest at once (a trap the runtime
            // classifies as `Failure::EffectDenied`), so the guest cannot
            // swallow the refusal and carry on.
            "reyna:plugin/effects.call": async | trappable,
            default: async,
        },
        exports: { default: async },
        require_store_data_send: true,
    });
}

/// Bindings for the `effect` world: the `perform` and `deliver` exports. Its
/// imports are the processor world's `host` interface (one implementation
/// serves both worlds), its own `usage` interface, `wasi:http` from
/// wasmtime-wasi-http and WASI from wasmtime-wasi.
pub mod effect {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "reyna:plugin/effect",
        imports: { default: async },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "reyna:plugin/types": super::processor::reyna::plugin::types,
            "reyna:plugin/host": super::processor::reyna::plugin::host,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

pub use effect::{Effect, EffectPre};
pub use processor::reyna::plugin::types::{Blob, Error, Event, LogLevel, Output};
pub use processor::{Processor, ProcessorPre};
