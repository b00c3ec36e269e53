//! What one call used, as recorded in a derived blob's lineage and a dead
//! letter.

use serde::{Deserialize, Serialize};

/// What one call used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cost {
    /// Wall time of the whole call, waiting for a sandbox slot included (µs).
    pub wall_us: u64,
    /// Epoch ticks that passed while the guest ran.
    pub epoch_ticks: u64,
    /// Fuel consumed, when fuel metering is on.
    pub fuel: Option<u64>,
    /// Largest total linear memory the instance had (bytes).
    pub peak_memory: u64,
    /// Bytes of the input given to the guest.
    pub bytes_in: u64,
    /// Bytes the guest returned.
    pub bytes_out: u64,
    /// Number of outputs.
    pub outputs: u32,
}
