//! The PyTorch side as a child process, spoken to in JSON lines over its pipes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::PytorchOptions;

#[derive(Debug, Deserialize)]
pub(super) struct TorchSetup {
    pub(super) torch: String,
    pub(super) threads: usize,
    pub(super) mkldnn: bool,
    pub(super) params: usize,
}

#[derive(Debug, Deserialize)]
pub(super) struct TrainReply {
    pub(super) step_s: Vec<f64>,
    pub(super) losses: Vec<BTreeMap<String, f64>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct EncodeReply {
    pub(super) encode_s: Vec<f64>,
    pub(super) embedding: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub(super) struct QuitReply {
    pub(super) peak_rss_bytes: u64,
}

/// The PyTorch process, spoken to in JSON lines.
pub(super) struct TorchProcess {
    pub(super) child: Child,
    pub(super) stdin: ChildStdin,
    pub(super) stdout: BufReader<ChildStdout>,
}

impl TorchProcess {
    pub(super) fn spawn(options: &PytorchOptions, data: &Path) -> Result<(Self, TorchSetup)> {
        let mut child = Command::new(&options.python)
            .arg(&options.script)
            .arg("--data")
            .arg(data)
            .arg("--threads")
            .arg(options.threads.to_string())
            .env("OMP_NUM_THREADS", options.threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} {} (see bench/README.md for the PyTorch venv)",
                    options.python.display(),
                    options.script.display()
                )
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the PyTorch process has no pipes");
        };
        let mut process = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        let setup = process.read_reply().context("PyTorch setup")?;
        Ok((process, setup))
    }

    fn read_reply<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the PyTorch process exited (its error is printed above)");
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("PyTorch replied {line:?}"))?;
        if let Some(error) = value.get("error") {
            bail!("PyTorch: {error}");
        }
        serde_json::from_value(value).with_context(|| format!("PyTorch replied {line:?}"))
    }

    pub(super) fn request<T: serde::de::DeserializeOwned>(
        &mut self,
        command: serde_json::Value,
    ) -> Result<T> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        self.read_reply()
    }
}

impl Drop for TorchProcess {
    fn drop(&mut self) {
        // After `quit` it has exited; after an error it is stopped here.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
