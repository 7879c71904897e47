//! Yosys synthesis reports (filled in below).
