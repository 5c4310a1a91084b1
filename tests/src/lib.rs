//! Black-box tests live in `tests/tests/`: they start the real `heimdall`
//! binary (built by `cargo build -p heimdall-server`, found at
//! `target/debug/heimdall` or `$HEIMDALL_BIN`) and talk HTTP to it.
