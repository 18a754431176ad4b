//! The real software of the incident: Debian's ZooKeeper (3.8) in the server
//! namespace with a small `maxClientCnxns`, and real Java ZooKeeper clients on the
//! application node. The assets are shared with `tests/tests/zookeeper.rs`; see
//! `tests/zookeeper/README.md` for why the class path and the client look as they do.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::scenario::{Process, Topology, command_output, wait_for_line, wait_listening};

pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// The one SLF4J backend on the class path (see tests/zookeeper/README.md).
pub const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
pub const PORT: u16 = 2181;

const CONFIG_TEMPLATE: &str = include_str!("../../tests/zookeeper/zoo.cfg.in");
const CLIENT_SOURCE: &str = include_str!("../../tests/zookeeper/ZkSessions.java");

/// JVM options that keep start-up and memory small on a 2-CPU machine.
const JVM_OPTIONS: [&str; 3] = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k"];

/// Where the scenario keeps its files, and the class path it runs with.
#[derive(Debug)]
pub struct ZooKeeper {
    dir: PathBuf,
    class_path: String,
}

impl ZooKeeper {
    /// Checks that Java and ZooKeeper are installed, and compiles the client.
    pub fn prepare(dir: &Path) -> anyhow::Result<Self> {
        for path in [ZOOKEEPER_JAR, SLF4J_SIMPLE_JAR] {
            if !Path::new(path).exists() {
                bail!("{path} is missing: run `cargo xtask setup --zookeeper`");
            }
        }
        let classes = dir.join("classes");
        fs::create_dir_all(&classes)?;
        fs::create_dir_all(dir.join("data"))?;
        let source = dir.join("ZkSessions.java");
        fs::write(&source, CLIENT_SOURCE)?;
        // The runtime's own compiler module: a JRE without `javac` has it on Debian.
        command_output(
            Command::new("java")
                .args(["-m", "jdk.compiler/com.sun.tools.javac.Main", "-cp"])
                .arg(ZOOKEEPER_JAR)
                .arg("-d")
                .arg(&classes)
                .arg(&source),
        )
        .context(
            "compiling the ZooKeeper client with `java -m jdk.compiler/...` (is a Java \
             runtime with the jdk.compiler module installed?)",
        )?;
        Ok(Self {
            dir: dir.to_path_buf(),
            class_path: format!("{ZOOKEEPER_JAR}:{SLF4J_SIMPLE_JAR}:{}", classes.display()),
        })
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// `java` inside a namespace, logging through slf4j-simple into `name.log`.
    fn java(&self, namespace: &str, name: &str, heap: &str) -> Command {
        let mut cmd = Topology::command(namespace, "java");
        cmd.arg(format!("-Xmx{heap}"))
            .args(JVM_OPTIONS)
            .arg(format!(
                "-Dorg.slf4j.simpleLogger.logFile={}",
                self.log(name).display()
            ))
            .args([
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
                "-cp",
                &self.class_path,
            ]);
        cmd
    }

    /// Starts a standalone server on `address:2181` and waits until it listens.
    pub fn start_server(
        &self,
        topology: &Topology,
        max_client_cnxns: u32,
    ) -> anyhow::Result<Process> {
        let config = CONFIG_TEMPLATE
            .replace("@DATA_DIR@", &self.dir.join("data").display().to_string())
            .replace("@ADDRESS@", &topology.server_ip.to_string())
            .replace("@PORT@", &PORT.to_string())
            .replace("@MAX_CLIENT_CNXNS@", &max_client_cnxns.to_string());
        let config_path = self.dir.join("zoo.cfg");
        fs::write(&config_path, config)?;
        let mut cmd = self.java(&topology.server, "zookeeper", "256m");
        cmd.arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(&config_path);
        let mut server = Process::spawn("ZooKeeper", cmd, &self.dir.join("zookeeper.out"))?;
        wait_listening(&topology.server, PORT, &mut server, Duration::from_secs(60))
            .with_context(|| format!("see {}", self.log("zookeeper").display()))?;
        Ok(server)
    }

    /// An application process with `handles` ZooKeeper sessions; returns once it has
    /// started them all. Applications are started one after the other, as pods start:
    /// a burst of connections can slip past maxClientCnxns (ZkSessions.java explains
    /// the race).
    pub fn start_sessions(
        &self,
        topology: &Topology,
        name: &str,
        handles: u32,
    ) -> anyhow::Result<Process> {
        let mut cmd = self.java(&topology.node, name, "64m");
        cmd.arg("ZkSessions")
            .arg(format!("{}:{PORT}", topology.server_ip))
            .arg(handles.to_string());
        let out = self.dir.join(format!("{name}.out"));
        let mut process = Process::spawn(name, cmd, &out)?;
        wait_for_line(&out, "opened", &mut process, Duration::from_secs(30))?;
        Ok(process)
    }

    /// ZooKeeper's own CLI (`zkCli.sh`), interactive: one session, kept while its
    /// stdin stays open.
    pub fn start_cli(&self, topology: &Topology, name: &str) -> anyhow::Result<Process> {
        let mut cmd = self.java(&topology.node, name, "64m");
        cmd.args(["org.apache.zookeeper.ZooKeeperMain", "-server"])
            .arg(format!("{}:{PORT}", topology.server_ip));
        Process::spawn_with_stdin(name, cmd, &self.dir.join(format!("{name}.out")))
    }
}

/// How many connections ZooKeeper's log says it rejected for "Too many connections".
///
/// 3.8 rate-limits this message (`RateLogger`, 100 ms): a first `Message:... Value:`
/// line, then `[K times] Message: ...` lines that count K rejections each (one without
/// the prefix).
pub fn logged_rejections(log: &str) -> u64 {
    log.lines()
        .filter(|line| line.contains("Too many connections"))
        .map(|line| {
            line.find(" times] Message")
                .and_then(|end| {
                    let start = line[..end].rfind('[')? + 1;
                    line[start..end].parse().ok()
                })
                .unwrap_or(1)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::logged_rejections;

    #[test]
    fn rate_limited_rejections_are_counted_once_each() {
        let log = "\
2026-11-25T10:30:11.512 [NIOServerCxnFactory.AcceptThread:/10.78.0.1:2181] WARN org.apache.zookeeper.server.NIOServerCnxnFactory - Message:Error accepting new connection: Too many connections from /10.78.0.2 - max is 4 Value:null
2026-11-25T10:30:12.672 [NIOServerCxnFactory.AcceptThread:/10.78.0.1:2181] WARN org.apache.zookeeper.server.NIOServerCnxnFactory - [3 times] Message: Error accepting new connection: Too many connections from /10.78.0.2 - max is 4
2026-11-25T10:30:13.073 [NIOServerCxnFactory.AcceptThread:/10.78.0.1:2181] WARN org.apache.zookeeper.server.NIOServerCnxnFactory - Message: Error accepting new connection: Too many connections from /10.78.0.2 - max is 4
2026-11-25T10:30:13.100 [main] INFO org.apache.zookeeper.server.ZooKeeperServer - something else
";
        assert_eq!(logged_rejections(log), 5);
    }
}
