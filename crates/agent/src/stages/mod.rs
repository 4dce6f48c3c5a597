//! The stages a node runs, each an adapter from a part's library to [`crate::Stage`].

mod baseline;
mod bus;
mod detection;
mod image_scan;
mod outputs;
mod recorder;
mod response;

pub use baseline::{BaselineHandle, BaselineStage};
pub use bus::{BusPublisherConfig, BusPublisherStage};
pub use detection::DetectionStage;
pub use image_scan::{ContainerReport, Drift, DroppedBinary, ImageScanConfig, ImageScanStage};
pub use outputs::{LatencySummary, OutputsReport, OutputsStage};
pub use recorder::RecorderStage;
pub use response::ResponseStage;
