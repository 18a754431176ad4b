//! Cgroup paths, as the kubelet and the container runtimes lay them out, parsed into
//! runtime, container id, pod UID and QoS class. Pure: no file is read here.
//!
//! The shapes (each test row below cites the code that writes it, or a peer that
//! parses it):
//!
//! - kubelet, systemd driver: `/kubepods.slice/kubepods-<qos>.slice/
//!   kubepods-<qos>-pod<uid with _>.slice/<container>`; guaranteed pods sit directly
//!   under `kubepods.slice` (`kubepods-pod<uid>.slice`). A `--cgroup-root` prefixes
//!   every name (`kubelet.slice/kubelet-kubepods.slice/...`, as kind does).
//! - kubelet, cgroupfs driver: `/kubepods/<qos>/pod<uid>/<container>`, guaranteed pods
//!   as `/kubepods/pod<uid>/...`.
//! - container leaves: containerd `cri-containerd-<id>.scope` (systemd) or `<id>`
//!   (cgroupfs); CRI-O `crio-<id>.scope` or `crio-<id>`; docker `docker-<id>.scope` or
//!   `/docker/<id>`; podman `libpod-<id>.scope` or `libpod-<id>`. A systemd path the
//!   cgroupfs driver took literally keeps its `slice:prefix:id` form.
//! - runtime helpers (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`) are not
//!   containers, and are not guessed to be.

use super::{Qos, Runtime};

/// Where a cgroup path places its processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The host's own processes: the root, `init.scope`, systemd services and user
    /// sessions that are not container scopes.
    Host,
    /// A container, or a pod's own cgroup (then `id` is `None`).
    Workload(Parsed),
    /// No known layout.
    Unknown,
}

/// What a container or pod cgroup path says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// `None` where the layout does not tell (a cgroupfs kubelet path holds a bare id
    /// for containerd and for docker alike).
    pub runtime: Option<Runtime>,
    pub id: Option<String>,
    /// The kubelet pod UID with dashes, or podman's pod id.
    pub pod_uid: Option<String>,
    pub qos: Option<Qos>,
}

/// A container id as every runtime here writes it: 64 lowercase hex digits.
pub fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A kubelet pod UID: a UUID, or the 32-hex-digit hash the kubelet gives static pods.
fn is_pod_uid(s: &str) -> bool {
    (32..=36).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Parses one cgroup path (a `/proc/PID/cgroup` path, or a path below a cgroup mount).
pub fn parse(path: &str) -> Placement {
    if !path.starts_with('/') {
        return Placement::Unknown;
    }
    // Paths read inside another cgroup namespace start with `/..` steps up to the
    // reader's root; the components that follow are what the layouts below name.
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .collect();
    if parts.is_empty() {
        return Placement::Host;
    }
    if let Some(parsed) = parts.iter().find_map(|p| colon_form(p)) {
        return Placement::Workload(parsed);
    }
    if let Some(at) = parts.iter().position(|p| is_kubepods(p)) {
        return kubepods(&parts[at..]);
    }
    if let Some(placement) = standalone(&parts) {
        return placement;
    }
    if is_host(&parts) {
        return Placement::Host;
    }
    Placement::Unknown
}

/// `kubepods.slice`, `kubepods`, or a `--cgroup-root`-prefixed `...-kubepods.slice`.
fn is_kubepods(part: &str) -> bool {
    part == "kubepods" || part == "kubepods.slice" || part.ends_with("-kubepods.slice")
}

fn runtime_of_prefix(prefix: &str) -> Option<Runtime> {
    match prefix {
        "cri-containerd" => Some(Runtime::Containerd),
        "crio" => Some(Runtime::CriO),
        "docker" => Some(Runtime::Docker),
        "libpod" => Some(Runtime::Podman),
        _ => None,
    }
}

/// A container leaf: `<prefix>-<id>.scope` (systemd) or `<prefix>-<id>` / `<id>`
/// (cgroupfs). `Err(())` for a runtime helper (conmon) that is no container.
fn container_leaf(part: &str) -> Option<Result<(Option<Runtime>, String), ()>> {
    if is_container_id(part) {
        return Some(Ok((None, part.to_owned())));
    }
    let name = part.strip_suffix(".scope").unwrap_or(part);
    let (prefix, id) = name.rsplit_once('-')?;
    if !is_container_id(id) {
        return None;
    }
    if prefix.ends_with("-conmon") {
        return Some(Err(()));
    }
    let runtime = runtime_of_prefix(prefix)?;
    Some(Ok((Some(runtime), id.to_owned())))
}

/// The systemd `slice:prefix:id` cgroup path a runtime passes to runc, found verbatim
/// in the tree when the cgroupfs driver was given it.
fn colon_form(part: &str) -> Option<Parsed> {
    let mut fields = part.split(':');
    let (slice, prefix, id) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() || !is_container_id(id) {
        return None;
    }
    let runtime = runtime_of_prefix(prefix)?;
    let mut parsed = Parsed {
        runtime: Some(runtime),
        id: Some(id.to_owned()),
        ..Parsed::default()
    };
    if let Some(name) = slice.strip_suffix(".slice") {
        pod_slice_fields(name, &mut parsed);
    }
    Some(parsed)
}

/// Reads QoS and pod UID from one systemd slice name without `.slice`
/// (`kubepods-burstable-pod<uid with _>`): systemd's `-` is the hierarchy step, and
/// the kubelet escaped the UID's own dashes as `_`.
fn pod_slice_fields(name: &str, parsed: &mut Parsed) {
    let mut saw_kubepods = false;
    for step in name.split('-') {
        match step {
            "kubepods" => saw_kubepods = true,
            "burstable" => parsed.qos = Some(Qos::Burstable),
            "besteffort" => parsed.qos = Some(Qos::BestEffort),
            _ => {
                if let Some(uid) = step.strip_prefix("pod").map(|u| u.replace('_', "-"))
                    && is_pod_uid(&uid)
                {
                    parsed.pod_uid = Some(uid);
                }
            }
        }
    }
    if saw_kubepods && parsed.pod_uid.is_some() && parsed.qos.is_none() {
        parsed.qos = Some(Qos::Guaranteed);
    }
}

/// The parts from the kubepods component on: QoS and pod levels, then the container
/// leaf right below the pod (deeper cgroups a container made for itself are still that
/// container).
fn kubepods(parts: &[&str]) -> Placement {
    let mut parsed = Parsed::default();
    let mut rest = parts.iter().skip(1);
    let mut leaf = None;
    for part in rest.by_ref() {
        if let Some(name) = part.strip_suffix(".slice") {
            pod_slice_fields(name, &mut parsed);
        } else if *part == "burstable" {
            parsed.qos = Some(Qos::Burstable);
        } else if *part == "besteffort" {
            parsed.qos = Some(Qos::BestEffort);
        } else if let Some(uid) = part.strip_prefix("pod").filter(|u| is_pod_uid(u)) {
            parsed.pod_uid = Some(uid.to_owned());
            parsed.qos.get_or_insert(Qos::Guaranteed);
        } else {
            leaf = Some(*part);
            break;
        }
        if parsed.pod_uid.is_some() {
            leaf = rest.next().copied();
            break;
        }
    }
    if parsed.pod_uid.is_none() {
        return Placement::Unknown;
    }
    let Some(leaf) = leaf else {
        // A process in the pod's own cgroup: the pod, no container.
        return Placement::Workload(parsed);
    };
    match container_leaf(leaf) {
        Some(Ok((runtime, id))) => {
            parsed.runtime = runtime;
            parsed.id = Some(id);
            Placement::Workload(parsed)
        }
        Some(Err(())) | None => Placement::Unknown,
    }
}

/// Containers outside the kubelet's tree: docker, podman (and its pods), a CRI
/// runtime used without a kubelet.
fn standalone(parts: &[&str]) -> Option<Placement> {
    if parts.len() >= 2 && parts[0] == "docker" && is_container_id(parts[1]) {
        return Some(Placement::Workload(Parsed {
            runtime: Some(Runtime::Docker),
            id: Some(parts[1].to_owned()),
            ..Parsed::default()
        }));
    }
    // A bare id (a podman pod's cgroup, an unknown parent's child) names no runtime:
    // only prefixed leaves count here.
    let (at, leaf) = parts
        .iter()
        .enumerate()
        .find_map(|(i, p)| match container_leaf(p) {
            Some(Ok((None, _))) | None => None,
            Some(leaf) => Some((i, leaf)),
        })?;
    let Ok((Some(runtime), id)) = leaf else {
        // A conmon scope: not a container, and not guessed to be one.
        return Some(Placement::Unknown);
    };
    let mut parsed = Parsed {
        runtime: Some(runtime),
        id: Some(id),
        ..Parsed::default()
    };
    if runtime == Runtime::Podman && at > 0 {
        parsed.pod_uid = podman_pod(parts[at - 1]);
    }
    Some(Placement::Workload(parsed))
}

/// podman's pod cgroup: `<pod id>` below the cgroupfs parent, or
/// `machine-libpod_pod_<pod id>.slice` with systemd.
fn podman_pod(parent: &str) -> Option<String> {
    if is_container_id(parent) {
        return Some(parent.to_owned());
    }
    let name = parent.strip_suffix(".slice")?;
    let (_, id) = name.rsplit_once("libpod_pod_")?;
    is_container_id(id).then(|| id.to_owned())
}

fn is_host(parts: &[&str]) -> bool {
    match parts {
        ["init.scope"] | ["system.slice"] | ["user.slice", ..] => true,
        // A systemd service, or a slice of services (`system-getty.slice/...`).
        ["system.slice", unit, ..] => unit.ends_with(".service") || unit.ends_with(".slice"),
        _ => false,
    }
}

/// The lines of a `/proc/PID/cgroup` file: the v2 path (`0::path`) and the v1
/// hierarchies (`N:controllers:path`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcCgroups {
    pub v2: Option<String>,
    /// `(controllers, path)`, in file order.
    pub v1: Vec<(String, String)>,
}

impl ProcCgroups {
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                out.v2 = Some(path.to_owned());
            } else {
                out.v1.push((controllers.to_owned(), path.to_owned()));
            }
        }
        out
    }

    /// Where the process is. A container or pod named by any hierarchy wins (on v1 and
    /// hybrid hosts the v2 path may be `/` while every v1 path names the container).
    /// Otherwise the v2 path decides between host and unknown when it is below the
    /// root, else the `name=systemd` path does (on v1 hosts the `0::/` line means
    /// nothing). Other v1 controllers never make a process the host: they group
    /// resources, not placement.
    pub fn placement(&self) -> Placement {
        let mut pod_only = None;
        let all = self
            .v2
            .iter()
            .map(String::as_str)
            .chain(self.v1.iter().map(|(_, p)| p.as_str()));
        for path in all {
            match parse(path) {
                Placement::Workload(parsed) if parsed.id.is_some() => {
                    return Placement::Workload(parsed);
                }
                Placement::Workload(parsed) => {
                    pod_only.get_or_insert(parsed);
                }
                Placement::Host | Placement::Unknown => {}
            }
        }
        if let Some(parsed) = pod_only {
            return Placement::Workload(parsed);
        }
        let systemd = self
            .v1
            .iter()
            .find(|(c, _)| c == "name=systemd")
            .map(|(_, p)| p.as_str());
        let deciding = match self.v2.as_deref() {
            Some(v2) if v2 != "/" => Some(v2),
            Some(v2) => systemd.or(Some(v2)),
            None => systemd,
        };
        match deciding.map(parse) {
            Some(Placement::Host) => Placement::Host,
            _ => Placement::Unknown,
        }
    }
}

#[cfg(test)]
mod tests;
