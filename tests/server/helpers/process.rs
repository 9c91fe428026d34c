//! The real otpgate binary, run as a console command or started as a server in a child
//! process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The real binary, started as a child process.
pub struct Process {
    pub child: Child,
    pub address: String,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

pub fn otpgate_command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_otpgate"));
    command
        .env_remove("OTPGATE_LISTEN")
        .env("OTPGATE_DATA_DIR", data_dir)
        .env("OTPGATE_LOG", "warn")
        // No configuration file from the machine running the tests; a caller may set
        // OTPGATE_CONFIG again to use one of its own.
        .env("OTPGATE_CONFIG", empty_config(data_dir))
        .env("XDG_CONFIG_HOME", data_dir.join("no-config"));
    command
}

fn empty_config(data_dir: &Path) -> PathBuf {
    let path = data_dir.with_extension("test-config.toml");
    if !path.exists() {
        // The built-in defaults, but RADIUS, whose fixed ports parallel tests would share.
        std::fs::write(&path, "[radius]\nlisten = []\naccounting_listen = []\n")
            .expect("write config");
    }
    path
}

impl Process {
    /// Starts `otpgate serve` on a free port and waits for its listening line.
    pub fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Result<Process, String> {
        let mut command = otpgate_command(data_dir);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().map_err(|e| e.to_string())?;
        let stderr_text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let collector = stderr_text.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut text) = collector.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(line)) if line.starts_with("listening on ") => {
                let address = line.trim_start_matches("listening on ").to_string();
                std::thread::spawn(move || for _ in lines {});
                Ok(Process {
                    child,
                    address,
                    stderr: stderr_text,
                })
            }
            _ => {
                let status = child.wait().map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_millis(100));
                let text = stderr_text.lock().map(|t| t.clone()).unwrap_or_default();
                Err(format!("exited with {status}: {text}"))
            }
        }
    }

    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("wait")
    }
}
