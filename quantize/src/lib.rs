//! bxflow's front half: ONNX import, the layer IR, ap_fixed-exact fixed-point
//! types, precision configuration and calibration, and the golden model that
//! every backend must match bit for bit.

pub mod accum;
pub mod auto;
pub mod bxq;
pub mod calibrate;
pub mod config;
pub mod fixed;
pub mod golden;
pub mod ir;
pub mod load;
pub mod npy;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod qmodel;
pub mod quantizer;
pub mod random;
pub mod report;
pub mod tables;
pub mod taps;
pub mod thresholds;
pub mod validate;
pub mod work;

pub use load::{load_model, LoadError};

/// An error with its causes on one line, `outer: cause: cause`, each cause
/// left out when the text before it already says it. Many errors display
/// their source as well as return it (`"{path}: {source}"`), and printing
/// every link of the chain (anyhow's `{:#}`) then says the same thing twice.
/// The command line and the Python module both word errors with this.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let m = c.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}: {source}")]
    struct Shown {
        path: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("loading the model")]
    struct Hidden {
        #[source]
        source: Shown,
    }

    #[test]
    fn describe_says_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = Shown {
            path: "m.bxq",
            source: io(),
        };
        assert_eq!(super::describe(&e), "reading m.bxq: no such file");
        let e = Hidden {
            source: Shown {
                path: "m.bxq",
                source: io(),
            },
        };
        assert_eq!(
            super::describe(&e),
            "loading the model: reading m.bxq: no such file"
        );
    }
}
