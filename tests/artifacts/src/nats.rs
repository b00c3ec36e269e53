//! A real `nats-server` with JetStream on a free loopback port, for tests and
//! benches of the scale-out. Debian's package provides it (`.ci/run` installs
//! it when missing).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Bound on waiting for the server to say it is ready, or to stop.
const WAIT: Duration = Duration::from_secs(30);

/// A running `nats-server -js`; killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store_dir: PathBuf,
}

impl NatsServer {
    /// Starts a server with JetStream storing in `store_dir`, on a free
    /// loopback port, and waits until it is ready.
    pub fn start(store_dir: &Path) -> std::io::Result<NatsServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Self::start_on(port, store_dir)
    }

    /// Starts a server on `port` (e.g. the port of one stopped earlier).
    pub fn start_on(port: u16, store_dir: &Path) -> std::io::Result<NatsServer> {
        Self::spawn(port, store_dir, None)
    }

    /// Starts a server whose largest message payload is `max_payload` bytes
    /// (the server's `max_payload` setting), on a free loopback port.
    pub fn start_with_max_payload(
        store_dir: &Path,
        max_payload: usize,
    ) -> std::io::Result<NatsServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = store_dir.join("nats-server.conf");
        std::fs::write(&config, format!("max_payload: {max_payload}\n"))?;
        Self::spawn(port, store_dir, Some(&config))
    }

    fn spawn(port: u16, store_dir: &Path, config: Option<&Path>) -> std::io::Result<NatsServer> {
        let mut command = Command::new("nats-server");
        if let Some(config) = config {
            command.arg("-c").arg(config);
        }
        let mut child = command
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot run nats-server (apt-get install nats-server): {e}"),
                )
            })?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("no stderr"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Keep draining after ready so the server never blocks on a full pipe.
                let _ = tx.send(line);
            }
        });
        let server = NatsServer {
            child: Some(child),
            port,
            store_dir: store_dir.to_owned(),
        };
        loop {
            match rx.recv_timeout(WAIT) {
                Ok(line) if line.contains("Server is ready") => return Ok(server),
                Ok(_) => {}
                Err(_) => {
                    return Err(std::io::Error::other(
                        "nats-server did not report ready within 30 s",
                    ));
                }
            }
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where JetStream keeps its data.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// Stops it with SIGTERM (JetStream flushes its store) and waits.
    pub fn stop(&mut self) -> std::io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other("kill -TERM failed"));
        }
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        rx.recv_timeout(WAIT)
            .map_err(|_| std::io::Error::other("nats-server did not stop within 30 s"))??;
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
