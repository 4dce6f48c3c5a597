//! The stages a node runs, each an adapter from a part's library to [`crate::Stage`].

mod alert_log;
mod baseline;
mod baseline_net;
mod bus;
mod detection;
mod fleet_report;
pub mod flow_report;
mod image_scan;
mod netflow;
mod outputs;
mod recorder;
mod response;

pub use alert_log::{AlertLog, AlertLogStage};
pub use baseline::{BaselineHandle, BaselineStage};
pub use baseline_net::BLOCKED_RULE as BASELINE_BLOCKED_RULE;
pub use bus::{BusPublisherConfig, BusPublisherStage, ReportSender};
pub use detection::DetectionStage;
pub use fleet_report::{
    health_report, rules_report, with_recorder_lag, FleetReportConfig, FleetReportStage,
};
pub use flow_report::{FlowReportConfig, FlowReportStage};
pub use image_scan::{ContainerReport, Drift, DroppedBinary, ImageScanConfig, ImageScanStage};
pub use netflow::NetflowStage;
pub use outputs::{LatencySummary, OutputsReport, OutputsStage};
pub use recorder::RecorderStage;
pub use response::ResponseStage;
