// Shared by several test binaries, each of which uses a part of it.
#![allow(dead_code)]

//! Runs the real `atk` binary as a server process: started on a free port
//! (port 0; the address is read from what it prints), stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`
    pub address: String,
    /// What the server printed before it said where it listens (the
    /// first-start notices: admin token, console setup link).
    pub printed: Vec<String>,
}

impl Server {
    /// Starts `atk serve` with `env` on top of a clean environment and
    /// returns once it listens (it says so on stdout: no sleeping, no polling).
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_atk"));
        command.arg("serve");
        Self::launch(command, data_dir, env)
    }

    /// Like [`Server::start`], with the server's open-file limit lowered
    /// to `open_files` (by the shell's `ulimit`, before `exec`).
    pub fn start_with_open_file_limit(
        data_dir: &Path,
        env: &[(&str, &str)],
        open_files: u32,
    ) -> Self {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {open_files} && exec \"$0\" serve"),
            env!("CARGO_BIN_EXE_atk"),
        ]);
        Self::launch(command, data_dir, env)
    }

    fn launch(mut command: Command, data_dir: &Path, env: &[(&str, &str)]) -> Self {
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ATK_LISTEN", "127.0.0.1:0")
            .env("ATK_DATA_DIR", data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("atk serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        let listening = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|line| {
                printed.push(line.clone());
                line.contains("listening on http://")
            })
            .expect("the server says where it listens");
        let address = listening
            .rsplit("http://")
            .next()
            .unwrap()
            .trim()
            .to_owned();
        // Keep draining stdout so the server can never block on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            address,
            printed,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (no chance to finish anything), then wait for the process
    /// to be gone.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL is delivered");
        self.child.wait().expect("the server is gone");
    }

    /// SIGTERM, then wait for the process to exit.
    pub fn stop(mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM was delivered");
        self.child.wait().expect("the server exits")
    }
}

/// A test that fails before `stop` must not leave a server running.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `atk serve` with `admin_token` as its platform admin token, and
/// an `atk-client` that uses it.
pub fn start_with_admin(data_dir: &Path, admin_token: &str) -> (Server, atk_client::Client) {
    let server = Server::start(data_dir, &[("ATK_ADMIN_TOKEN", admin_token)]);
    let admin = atk_client::Client::builder(server.url(""))
        .token(admin_token)
        .build()
        .expect("the server's address is a valid base URL");
    (server, admin)
}
