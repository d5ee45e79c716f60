//! Source connectors for segkit. (Being written.)
use std::sync::Arc;

use segkit::{Result, Source};

/// Opens a file source from a local path or URL, inferring the format from the extension.
pub fn open(location: &str) -> Result<Arc<dyn Source>> {
    Err(segkit::Error::InvalidArgument(format!("not implemented yet: {location}")))
}

/// Builds a source from a JSON config tagged by `type`.
pub fn from_config(config: &serde_json::Value) -> Result<Arc<dyn Source>> {
    Err(segkit::Error::InvalidArgument(format!("not implemented yet: {config}")))
}
