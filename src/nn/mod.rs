//! candle networks (U-Net, hyperprior). Leaves: they import nothing else of ours.
pub mod hyperprior;
pub mod unet;
