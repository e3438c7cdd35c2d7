//! rosbag2 bags as a transport: training on recorded data (`train`), recording the simulator
//! (`record`), what a bag holds for the learner (`info`), and the translation between bag
//! messages and the components' (`convert`).

pub mod convert;
pub mod info;
pub mod record;
pub mod train;

pub use info::{BagInfo, TopicSummary, bag_info};
pub use record::SimRecorder;
pub use train::{BagProgress, BagReport, BagTrainConfig, BagTrainReport, train_on_bags};
