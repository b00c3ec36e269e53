//! Conversions between the generated bindings and the SDK's types, shared by
//! both worlds (each world's bindings are distinct Rust types, so this is a
//! macro expanded once per world module).

macro_rules! world_glue {
    () => {
        use crate::{Blob, Error, Event, LogLevel};
        use bindings::reyna::plugin::{host, types as wit};

        /// The guest-side error type of this world.
        pub type GuestError = wit::Error;

        pub(crate) fn to_wit_error(e: Error) -> wit::Error {
            match e {
                Error::InvalidInput(m) => wit::Error::InvalidInput(m),
                Error::Retryable(m) => wit::Error::Retryable(m),
                Error::Fatal(m) => wit::Error::Fatal(m),
            }
        }

        pub(crate) fn from_wit_error(e: wit::Error) -> Error {
            match e {
                wit::Error::InvalidInput(m) => Error::InvalidInput(m),
                wit::Error::Retryable(m) => Error::Retryable(m),
                wit::Error::Fatal(m) => Error::Fatal(m),
            }
        }

        pub(crate) fn from_wit_blob(b: wit::Blob) -> Blob {
            Blob {
                id: b.id,
                tenant: b.tenant,
                schema: b.schema,
                data: b.data,
                parents: b.parents,
            }
        }

        pub(crate) fn from_wit_event(e: wit::Event) -> Event {
            Event {
                subject: e.subject,
                blob: from_wit_blob(e.blob),
            }
        }

        fn log(level: LogLevel, message: &str) {
            let level = match level {
                LogLevel::Trace => wit::LogLevel::Trace,
                LogLevel::Debug => wit::LogLevel::Debug,
                LogLevel::Info => wit::LogLevel::Info,
                LogLevel::Warn => wit::LogLevel::Warn,
                LogLevel::Error => wit::LogLevel::Error,
            };
            host::log(level, message);
        }

        fn config(key: &str) -> Option<String> {
            host::config(key)
        }

        fn get_blob(id: &str) -> Result<Option<Blob>, Error> {
            host::get_blob(id)
                .map(|b| b.map(from_wit_blob))
                .map_err(from_wit_error)
        }

        fn query_blobs(schema: &str, filter: &str) -> Result<Vec<Blob>, Error> {
            host::query_blobs(schema, filter)
                .map(|v| v.into_iter().map(from_wit_blob).collect())
                .map_err(from_wit_error)
        }
    };
}
