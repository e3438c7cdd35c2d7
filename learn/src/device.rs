//! Choosing where tensors live, at run time.

use std::fmt;
use std::str::FromStr;

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use crate::LearnError;

/// Which burn backend runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// burn's pure-Rust CPU backend (the default: works everywhere).
    #[default]
    Flex,
    /// The GPU path through wgpu (Vulkan/Metal/DX12; Mesa lavapipe on CPU-only machines).
    Wgpu,
}

impl BackendChoice {
    /// The (non-autodiff) device for this backend.
    pub fn device(self) -> Result<Device, LearnError> {
        match self {
            BackendChoice::Flex => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            BackendChoice::Wgpu => Ok(Device::wgpu(burn::prelude::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "wgpu"))]
            BackendChoice::Wgpu => Err(LearnError::InvalidConfig(
                "this build has no wgpu backend (cargo feature `wgpu` of autodidact-learn)".into(),
            )),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Flex => "flex",
            BackendChoice::Wgpu => "wgpu",
        })
    }
}

impl FromStr for BackendChoice {
    type Err = LearnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "flex" | "cpu" => Ok(BackendChoice::Flex),
            "wgpu" | "gpu" => Ok(BackendChoice::Wgpu),
            other => Err(LearnError::InvalidConfig(format!(
                "unknown backend {other:?}: use flex or wgpu"
            ))),
        }
    }
}
