//! The progress bar long runs show on stderr: both testbench targets, and
//! the `quantize` and `eval` commands.

/// A progress bar for `len` steps labelled `what`; `None` when `on` is false
/// (indicatif hides it by itself when stderr is not a terminal).
pub fn progress_bar(on: bool, len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    if !on {
        return None;
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_prefix(what.to_string());
    Some(pb)
}
