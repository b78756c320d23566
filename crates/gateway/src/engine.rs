//! The seam to `maskgate-engine`: masking, buffered unmasking and stream unmasking.

pub use maskgate_engine::placeholder::is_placeholder;
pub use maskgate_engine::{
    ConfigError, CustomPattern, MaskError, Masked, Masker, MaskerConfig, Plan, PlanEntry, RequestMap, Resolver,
    UnmaskStats,
};

pub mod unmask {
    pub use maskgate_engine::unmask::{unmask_json, unmask_text, UnmaskError};
}

pub mod json {
    pub use maskgate_engine::json::MAX_BODY;
}

pub mod stream {
    pub use maskgate_engine::stream::{StreamError, StreamFormat, StreamUnmasker};
}
