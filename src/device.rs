//! Compute device selection (`--device cpu|cuda|metal`).
use anyhow::{Result, bail};
use candle_core::Device;

/// Which backend to run networks on. Shared randomness never depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum DeviceKind {
    #[default]
    Cpu,
    Cuda,
    Metal,
}

impl DeviceKind {
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceKind::Cpu => Ok(Device::Cpu),
            DeviceKind::Cuda => {
                if !cfg!(feature = "cuda") {
                    bail!("this build has no CUDA support: rebuild with `--features cuda`");
                }
                Ok(Device::new_cuda(0)?)
            }
            DeviceKind::Metal => {
                if !cfg!(feature = "metal") {
                    bail!("this build has no Metal support: rebuild with `--features metal`");
                }
                Ok(Device::new_metal(0)?)
            }
        }
    }
}
