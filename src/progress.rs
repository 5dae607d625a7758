//! Progress bars on stderr (hidden when not wanted), one style for every long loop.

/// A progress bar on stderr with `len` ticks, or a hidden one when `show` is false.
pub fn bar(show: bool, len: usize, msg: &'static str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::with_draw_target(
        Some(len as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>14} [{bar:30}] {pos}/{len} {elapsed_precise}",
        )
        .expect("a valid progress template")
        .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}
