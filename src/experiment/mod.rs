//! Research experiments run with the real codec (their results are committed under eval/results).
pub mod gaussian;
pub mod rcc_bench;
pub mod spectrum_fit;
pub mod unet_bench;
pub mod vlb;
