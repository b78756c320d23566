//! maskgate's masking engine: detectors for AWS identifiers, the placeholder grammar, request masking (text and
//! JSON), the leak check, and response unmasking (buffered and streaming). Pure: no I/O, no async runtime.

mod classify;
pub mod detect;
pub mod json;
pub mod kinds;
pub mod mask;
mod needles;
pub mod placeholder;
pub mod resolve;
mod skip;
pub mod sse;
pub mod stream;
pub mod unmask;

pub use detect::{ConfigError, CustomPattern, Detector, DetectorConfig, Finding, KeyContext};
pub use mask::{MaskError, Masked, Masker, MaskerConfig, Plan, PlanEntry};
pub use resolve::{RequestMap, Resolver, UnmaskStats};
pub use stream::{StreamError, StreamFormat, StreamUnmasker};
pub use unmask::{unmask_json, unmask_text, TextStream, UnmaskError};
