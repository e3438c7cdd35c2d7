//! Choosing where tensors live, at run time: `auto` takes a real GPU when wgpu finds one and
//! burn's CPU backend (`flex`) otherwise, and says why.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use crate::LearnError;

/// Which burn backend runs the model, as asked for (config file, CLI, node parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// A hardware GPU adapter if wgpu finds one (discrete, then integrated, then virtual),
    /// otherwise `flex`. Software adapters (Mesa's lavapipe/llvmpipe) are never taken: they
    /// train slower than `flex` on the same cores. On Linux, a machine with no GPU device file
    /// (`/dev/dri/renderD*`, `/dev/nvidia*`) is `flex` without loading the Vulkan drivers.
    #[default]
    Auto,
    /// burn's pure-Rust CPU backend, with this crate's direct convolution kernels.
    Flex,
    /// wgpu on its default adapter, software ones included (lavapipe on a machine without a
    /// GPU). An error, not a panic, when there is no adapter at all.
    Wgpu,
}

/// A backend once `auto` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's CPU backend.
    Flex,
    /// burn's wgpu backend.
    Wgpu,
}

impl BackendKind {
    /// The (non-autodiff) device.
    pub fn device(self) -> Device {
        match self {
            Self::Flex => Device::flex(),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => Device::wgpu(burn::prelude::DeviceKind::DefaultDevice),
            // `choose` never gives Wgpu without the feature.
            #[cfg(not(feature = "wgpu"))]
            Self::Wgpu => Device::flex(),
        }
    }

    /// `flex` or `wgpu`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Wgpu => "wgpu",
        }
    }
}

impl From<BackendKind> for BackendChoice {
    /// The choice that gives `kind` again (a follower loading onto the backend decided at start).
    fn from(kind: BackendKind) -> Self {
        match kind {
            BackendKind::Flex => Self::Flex,
            BackendKind::Wgpu => Self::Wgpu,
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a model runs and why: what a node logs at start and carries in its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The backend.
    pub kind: BackendKind,
    /// Why, in words: the adapter taken, or why there is none.
    pub reason: String,
}

impl Placement {
    /// The (non-autodiff) device.
    pub fn device(&self) -> Device {
        self.kind.device()
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.kind, self.reason)
    }
}

/// Where a trainer's two halves run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placements {
    /// Training (the autodiff model, the optimiser).
    pub training: Placement,
    /// Published snapshots: encoding frames and rollouts.
    pub inference: Placement,
}

/// What kind of device a wgpu adapter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    /// A GPU of its own.
    Discrete,
    /// A GPU sharing the CPU's memory (Jetson, laptops).
    Integrated,
    /// A GPU passed to a virtual machine.
    Virtual,
    /// A software rasteriser on the CPU (lavapipe, llvmpipe, SwiftShader).
    Software,
    /// The driver does not say.
    Other,
}

/// One adapter wgpu found: what [`BackendChoice::resolve`] decides from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapter {
    /// The driver's name for it (`NVIDIA GeForce RTX 4090`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// Its kind.
    pub kind: AdapterKind,
    /// The graphics API it was found through (`Vulkan`, `Gl`, …).
    pub api: String,
}

impl BackendChoice {
    /// Decides the backend on this machine (the adapters are looked for once per process).
    pub fn resolve(self) -> Result<Placement, LearnError> {
        if self == Self::Auto
            && let Some(why) = no_gpu_device()
        {
            return Ok(Placement {
                kind: BackendKind::Flex,
                reason: format!("auto: {why}"),
            });
        }
        match self {
            Self::Flex => choose(self, &[]),
            Self::Auto | Self::Wgpu => match adapters() {
                Ok(found) => choose(self, found),
                Err(why) if self == Self::Auto => Ok(Placement {
                    kind: BackendKind::Flex,
                    reason: format!("auto: no GPU ({why})"),
                }),
                Err(why) => Err(LearnError::Backend(format!("backend wgpu: {why}"))),
            },
        }
    }

    /// The (non-autodiff) device for this choice on this machine.
    pub fn device(self) -> Result<Device, LearnError> {
        Ok(self.resolve()?.device())
    }
}

/// The decision itself, from the adapters found (none for `flex`).
pub fn choose(choice: BackendChoice, adapters: &[Adapter]) -> Result<Placement, LearnError> {
    let describe = |a: &Adapter| format!("{} through {}", a.name, a.api);
    match choice {
        BackendChoice::Flex => Ok(Placement {
            kind: BackendKind::Flex,
            reason: "asked for".into(),
        }),
        BackendChoice::Wgpu => match adapters.first() {
            _ if !cfg!(feature = "wgpu") => Err(LearnError::Backend(
                "this build has no wgpu backend (cargo feature `wgpu` of autodidact-learn)".into(),
            )),
            None => Err(LearnError::Backend(
                "backend wgpu: wgpu finds no adapter on this machine (no GPU driver, and no \
                 Vulkan software driver such as Mesa's lavapipe); use backend auto or flex"
                    .into(),
            )),
            Some(_) => Ok(Placement {
                kind: BackendKind::Wgpu,
                reason: format!(
                    "asked for; wgpu's default adapter among {}",
                    adapters.iter().map(describe).collect::<Vec<_>>().join(", ")
                ),
            }),
        },
        BackendChoice::Auto => match best_hardware(adapters) {
            Some(gpu) if cfg!(feature = "wgpu") => Ok(Placement {
                kind: BackendKind::Wgpu,
                reason: format!("auto: GPU {}", describe(gpu)),
            }),
            _ => {
                let software: Vec<String> = adapters
                    .iter()
                    .filter(|a| a.kind == AdapterKind::Software)
                    .map(describe)
                    .collect();
                let why = if !cfg!(feature = "wgpu") {
                    "this build has no wgpu backend".to_string()
                } else if software.is_empty() {
                    "wgpu finds no GPU adapter".to_string()
                } else {
                    format!(
                        "only the software adapter {} (backend wgpu takes it)",
                        software.join(", ")
                    )
                };
                Ok(Placement {
                    kind: BackendKind::Flex,
                    reason: format!("auto: {why}"),
                })
            }
        },
    }
}

/// Where a GPU shows itself on Linux: DRM render nodes (Mesa's drivers, NVIDIA's open kernel
/// modules, Jetson), NVIDIA's proprietary device files.
const GPU_DEVICE_FILES: [(&str, &str); 3] = [
    ("/dev/dri", "renderD"),
    ("/dev", "nvidia"),
    ("/dev", "nvhost-ctrl-gpu"),
];

/// On Linux, why there is no GPU to look for when no device file of one exists (a machine or
/// container without one): `auto` then does not load the Vulkan drivers at all, whose software
/// rasteriser complains on stderr where `XDG_RUNTIME_DIR` is not set. `None`: look.
fn no_gpu_device() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let found = GPU_DEVICE_FILES.iter().any(|(dir, prefix)| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    });
    (!found).then(|| "no GPU device (/dev/dri/renderD*, /dev/nvidia*): the CPU".to_string())
}

/// The hardware adapter `auto` takes: discrete, then integrated, then virtual.
fn best_hardware(adapters: &[Adapter]) -> Option<&Adapter> {
    [
        AdapterKind::Discrete,
        AdapterKind::Integrated,
        AdapterKind::Virtual,
    ]
    .iter()
    .find_map(|kind| adapters.iter().find(|a| a.kind == *kind))
}

/// The adapters wgpu finds, looked for once per process.
fn adapters() -> Result<&'static [Adapter], String> {
    static FOUND: OnceLock<Result<Vec<Adapter>, String>> = OnceLock::new();
    FOUND
        .get_or_init(probe)
        .as_deref()
        .map_err(std::clone::Clone::clone)
}

#[cfg(feature = "wgpu")]
fn probe() -> Result<Vec<Adapter>, String> {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use burn::backend::wgpu::wgpu;

    // A driver that panics while being enumerated must not take the process with it.
    let found = std::panic::catch_unwind(|| {
        // Vulkan, Metal, DX12: the APIs burn's wgpu runs on. (An instance with GL as well
        // prints EGL errors on a machine without a display.)
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        descriptor.backends = wgpu::Backends::PRIMARY;
        let instance = wgpu::Instance::new(descriptor);
        let future = instance.enumerate_adapters(wgpu::Backends::PRIMARY);
        let mut future = std::pin::pin!(future);
        // Native wgpu enumerates synchronously: the future is ready at the first poll.
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(adapters) => Ok(adapters
                .iter()
                .map(|adapter| {
                    let info = adapter.get_info();
                    Adapter {
                        name: info.name,
                        kind: match info.device_type {
                            wgpu::DeviceType::DiscreteGpu => AdapterKind::Discrete,
                            wgpu::DeviceType::IntegratedGpu => AdapterKind::Integrated,
                            wgpu::DeviceType::VirtualGpu => AdapterKind::Virtual,
                            wgpu::DeviceType::Cpu => AdapterKind::Software,
                            wgpu::DeviceType::Other => AdapterKind::Other,
                        },
                        api: format!("{:?}", info.backend),
                    }
                })
                .collect()),
            Poll::Pending => Err("wgpu did not list its adapters at once".to_string()),
        }
    });
    found.unwrap_or_else(|_| Err("the graphics driver failed while listing adapters".into()))
}

#[cfg(not(feature = "wgpu"))]
fn probe() -> Result<Vec<Adapter>, String> {
    Err("this build has no wgpu backend".into())
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Flex => "flex",
            BackendChoice::Wgpu => "wgpu",
        })
    }
}

impl FromStr for BackendChoice {
    type Err = LearnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(BackendChoice::Auto),
            "flex" | "cpu" => Ok(BackendChoice::Flex),
            "wgpu" | "gpu" => Ok(BackendChoice::Wgpu),
            other => Err(LearnError::InvalidConfig(format!(
                "unknown backend {other:?}: use auto, flex or wgpu"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, kind: AdapterKind) -> Adapter {
        Adapter {
            name: name.into(),
            kind,
            api: "Vulkan".into(),
        }
    }

    #[test]
    fn auto_takes_a_hardware_gpu_and_prefers_a_discrete_one() {
        let found = [
            adapter("llvmpipe", AdapterKind::Software),
            adapter("Intel UHD", AdapterKind::Integrated),
            adapter("RTX 4090", AdapterKind::Discrete),
        ];
        let placement = choose(BackendChoice::Auto, &found).expect("auto");
        assert_eq!(placement.kind, BackendKind::Wgpu);
        assert!(
            placement.reason.contains("RTX 4090"),
            "{}",
            placement.reason
        );
        let jetson = [adapter("NVIDIA Tegra Orin", AdapterKind::Integrated)];
        assert_eq!(
            choose(BackendChoice::Auto, &jetson).expect("auto").kind,
            BackendKind::Wgpu
        );
    }

    #[test]
    fn auto_with_only_a_software_adapter_falls_back_to_flex_and_says_why() {
        let found = [adapter("llvmpipe (LLVM 15.0.6)", AdapterKind::Software)];
        let placement = choose(BackendChoice::Auto, &found).expect("auto");
        assert_eq!(placement.kind, BackendKind::Flex);
        assert!(
            placement.reason.contains("software adapter") && placement.reason.contains("llvmpipe"),
            "{}",
            placement.reason
        );
        let none = choose(BackendChoice::Auto, &[]).expect("auto");
        assert_eq!(none.kind, BackendKind::Flex);
        assert!(none.reason.contains("no GPU"), "{}", none.reason);
    }

    #[test]
    fn forced_wgpu_takes_a_software_adapter_and_without_any_adapter_is_an_error() {
        let found = [adapter("llvmpipe", AdapterKind::Software)];
        assert_eq!(
            choose(BackendChoice::Wgpu, &found).expect("wgpu").kind,
            BackendKind::Wgpu
        );
        let error = choose(BackendChoice::Wgpu, &[]).expect_err("no adapter");
        assert!(error.to_string().contains("no adapter"), "{error}");
    }

    #[test]
    fn backend_names_parse_and_auto_is_the_default() {
        assert_eq!(BackendChoice::default(), BackendChoice::Auto);
        for (text, choice) in [
            ("auto", BackendChoice::Auto),
            ("FLEX", BackendChoice::Flex),
            ("cpu", BackendChoice::Flex),
            ("wgpu", BackendChoice::Wgpu),
        ] {
            assert_eq!(text.parse::<BackendChoice>().expect(text), choice);
            assert_eq!(
                choice.to_string().parse::<BackendChoice>().expect(text),
                choice
            );
        }
        assert!("vulkan".parse::<BackendChoice>().is_err());
        assert!("cuda".parse::<BackendChoice>().is_err());
    }
}
