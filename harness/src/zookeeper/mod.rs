//! The real software of the incident: Debian's ZooKeeper (3.8) in the server namespace
//! with a small `maxClientCnxns`, and real Java ZooKeeper clients on the application
//! node. The assets are in `harness/zookeeper/` (its README says why the class path and
//! the client look as they do).

mod log;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail};

pub use self::log::logged_rejections;
use crate::{
    apt, exec,
    netns::Netns,
    process::Process,
    ready::{wait_for_line, wait_listening},
    runner::time_scale,
    spawn::Spawn,
    topology::Topology,
};

/// The Debian packages: ZooKeeper and a Java runtime to run it.
pub const PACKAGES: [&str; 2] = ["zookeeper", "default-jre-headless"];
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// The one SLF4J backend on the class path (see harness/zookeeper/README.md).
pub const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
pub const PORT: u16 = 2181;

const CONFIG_TEMPLATE: &str = include_str!("../../zookeeper/zoo.cfg.in");
const CLIENT_SOURCE: &str = include_str!("../../zookeeper/ZkSessions.java");

/// JVM options that keep start-up and memory small on a 2-CPU machine.
const JVM_OPTIONS: [&str; 3] = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k"];

/// On the host; a slow machine gets [`time_scale`] times more (a JVM on one emulated
/// CPU took over 30 s to open its sessions).
const SERVER_START: Duration = Duration::from_secs(60);
const SESSIONS_START: Duration = Duration::from_secs(30);

/// Installs ZooKeeper and a Java runtime if they are missing (root only).
pub fn install() -> anyhow::Result<()> {
    apt::install_missing(&PACKAGES)
}

/// Where the scenario keeps its files (configuration, compiled client, logs), and the
/// class path it runs with.
#[derive(Debug)]
pub struct ZooKeeper {
    dir: PathBuf,
    class_path: String,
    /// The cgroups the server and the clients start in (containers of pods on a
    /// Kubernetes-shaped node); `None`: the harness's own.
    cgroups: Placement,
}

/// Which cgroup each side's processes join before they start.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    pub server: Option<PathBuf>,
    pub clients: Option<PathBuf>,
}

impl ZooKeeper {
    /// Checks that Java and ZooKeeper are installed, and compiles the client into
    /// `dir`.
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
        exec::stdout(
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
            cgroups: Placement::default(),
        })
    }

    /// Starts the server and the clients in these cgroups from now on.
    pub fn placed(mut self, cgroups: Placement) -> Self {
        self.cgroups = cgroups;
        self
    }

    /// A spawn of `cmd` that joins `cgroup` first, when there is one.
    fn spawn(name: &str, cmd: Command, cgroup: Option<&PathBuf>) -> Spawn {
        let spawn = Spawn::new(name, cmd);
        match cgroup {
            Some(dir) => spawn.in_cgroup(dir),
            None => spawn,
        }
    }

    /// The log a process of the scenario writes through slf4j-simple.
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Where a process's stdout and stderr go.
    fn output(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.out"))
    }

    /// `java` inside a namespace, logging into `name.log`.
    fn java(&self, netns: &Netns, name: &str, heap: &str) -> Command {
        let mut cmd = netns.command("java");
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

    /// Starts a standalone server on the topology's server address, port 2181, and
    /// waits until it listens.
    pub fn start_server(
        &self,
        topology: &Topology,
        max_client_cnxns: usize,
    ) -> anyhow::Result<Process> {
        let config = CONFIG_TEMPLATE
            .replace("@DATA_DIR@", &self.dir.join("data").display().to_string())
            .replace("@ADDRESS@", &topology.server_v4.to_string())
            .replace("@PORT@", &PORT.to_string())
            .replace("@MAX_CLIENT_CNXNS@", &max_client_cnxns.to_string());
        let config_path = self.dir.join("zoo.cfg");
        fs::write(&config_path, config)?;
        let mut cmd = self.java(&topology.server, "zookeeper", "256m");
        cmd.arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(&config_path);
        let mut server = Self::spawn("ZooKeeper", cmd, self.cgroups.server.as_ref())
            .log_to(&self.output("zookeeper"))
            .start()?;
        wait_listening(
            &topology.server,
            PORT,
            &mut server,
            SERVER_START * time_scale(),
        )
        .with_context(|| {
            let log = fs::read_to_string(self.log("zookeeper")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            format!(
                "ZooKeeper did not start; the end of {}:\n{}",
                self.log("zookeeper").display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })?;
        Ok(server)
    }

    /// An application process with `sessions` ZooKeeper sessions; returns once it has
    /// opened them all. Applications are started one after the other, as pods start: a
    /// burst of connections can slip past maxClientCnxns (ZkSessions.java explains the
    /// race).
    pub fn start_sessions(
        &self,
        topology: &Topology,
        name: &str,
        sessions: usize,
    ) -> anyhow::Result<Process> {
        let mut cmd = self.java(&topology.client, name, "64m");
        cmd.arg("ZkSessions")
            .arg(format!("{}:{PORT}", topology.server_v4))
            .arg(sessions.to_string());
        let out = self.output(name);
        let mut process = Self::spawn(name, cmd, self.cgroups.clients.as_ref())
            .log_to(&out)
            .start()?;
        wait_for_line(&out, "opened", &mut process, SESSIONS_START * time_scale())?;
        Ok(process)
    }

    /// ZooKeeper's own CLI (what `zkCli.sh` runs), interactive: one session, kept while
    /// its stdin stays open.
    pub fn start_cli(&self, topology: &Topology, name: &str) -> anyhow::Result<Process> {
        let mut cmd = self.java(&topology.client, name, "64m");
        cmd.args(["org.apache.zookeeper.ZooKeeperMain", "-server"])
            .arg(format!("{}:{PORT}", topology.server_v4));
        Self::spawn(name, cmd, self.cgroups.clients.as_ref())
            .log_to(&self.output(name))
            .keep_stdin_open()
            .start()
    }
}
