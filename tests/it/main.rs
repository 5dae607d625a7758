//! The integration tests, as one binary: one link instead of one per file (on 2 cores the
//! links dominated the suite's build time).
mod common;

mod cli;
mod diffc_codec;
mod eval_baselines;
mod eval_pictures;
mod eval_shards;
mod fuzz_replay;
mod gaussian_experiment;
mod golden_bitstream;
mod hfd_codec;
mod interrupt;
mod limits;
mod metrics_fid;
mod metrics_inception;
mod metrics_ms_ssim;
mod pfr_statistics;
mod refiner_parity;
mod sd_codec;
mod sd_parity;
mod truncate;
mod unet_parity;
