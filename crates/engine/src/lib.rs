//! maskgate's masking engine: detectors for AWS identifiers, the placeholder grammar, request masking (text and
//! JSON), the leak check, and response unmasking (buffered and streaming). Pure: no I/O, no async runtime.

pub mod placeholder;
pub mod resolve;

pub use resolve::{RequestMap, Resolver, UnmaskStats};
pub mod detect;
pub mod kinds;

pub use detect::{ConfigError, CustomPattern, Detector, DetectorConfig, Finding, KeyContext};
pub mod json;
pub mod mask;

pub use mask::{MaskError, Masked, Masker, MaskerConfig, Plan, PlanEntry};
