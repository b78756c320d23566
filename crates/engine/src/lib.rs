//! maskgate's masking engine: detectors for AWS identifiers, the placeholder grammar, request masking (text and
//! JSON), the leak check, and response unmasking (buffered and streaming). Pure: no I/O, no async runtime.

pub mod placeholder;
pub mod resolve;
pub mod sse;
pub mod stream;
pub mod unmask;

pub use resolve::{RequestMap, Resolver, UnmaskStats};
pub use stream::{StreamError, StreamFormat, StreamUnmasker};
pub use unmask::{unmask_json, unmask_text, TextStream, UnmaskError};
