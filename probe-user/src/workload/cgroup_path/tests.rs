//! Real-world cgroup paths, each with the code that writes it or the peer whose tests
//! carry it. Tags, so the lines can be found again:
//!
//! - kubelet: kubernetes/kubernetes `pkg/kubelet/cm/cgroup_manager_linux.go`
//!   (`CgroupName.ToSystemd`, `escapeSystemdCgroupName`: `-` becomes `_` and each
//!   component a `-`-joined slice; `ToCgroupfs`: plain `/`-joined),
//!   `pkg/kubelet/cm/pod_container_manager_linux.go` (`"pod" + uid`),
//!   `pkg/kubelet/cm/qos_container_manager_linux.go` (`burstable`, `besteffort`;
//!   guaranteed pods directly under `kubepods`).
//! - containerd v2.2.0 `internal/cri/server/helpers.go` `getCgroupsPath`:
//!   `<parent slice>:cri-containerd:<id>` with systemd, `<parent>/<id>` otherwise.
//! - CRI-O v1.34.0 `internal/config/cgmgr/systemd_linux.go` `ContainerCgroupPath`
//!   (`<parent>:crio:<id>`), `cgroupfs_linux.go` + `cgmgr_linux.go`
//!   `containerCgroupPath` (`<parent>/crio-<id>`).
//! - podman v4.3.1 `libpod/container_internal_linux.go` (`<parent>/libpod-<id>`, parent
//!   `/libpod_parent` or `machine.slice`), `libpod/runtime_pod_linux.go` (pod cgroup
//!   `<parent>/<pod id>`, systemd `libpod_pod_<pod id>` slice).
//! - coroot-node-agent v1.35.6 `cgroup/cgroup_test.go` (`TestContainerByCgroup`) and
//!   `cgroup/fixtures/proc/*/cgroup`.
//! - falcosecurity/libs 0.20.0 `userspace/libsinsp/container_engine/cri.cpp`
//!   (`CRI_CGROUP_LAYOUT`), `docker/docker_linux.cpp` (`DOCKER_CGROUP_LAYOUT`),
//!   `docker/podman.cpp` (`ROOT_PODMAN_CGROUP_LAYOUT` and its comments).
//! - Inspektor Gadget v0.55.1 `pkg/operators/kubemanager/hooks-utils.go` (`crioRegex`,
//!   a v1 `name=systemd` line).
//! - Tetragon v1.7.0 `pkg/cgroups/fsscan/fsscan.go` (skips `crio-conmon`) and
//!   `fsscan_test.go` (`kubepods-besteffort-pod<uid with _>.slice`).
//! - this machine: podman 4.3.1 with `--cgroup-manager cgroupfs` on a hybrid host
//!   (`/proc/PID/cgroup` of a container and of a pod's container).

use super::*;

const ID_A: &str = "d166c6190614efc91956b78e96d74c3fbc96ca8e91948c36de3bc5b0e7b27d48";

#[derive(Debug)]
struct Row {
    path: &'static str,
    runtime: Option<Runtime>,
    id: Option<&'static str>,
    pod_uid: Option<&'static str>,
    qos: Option<Qos>,
    cite: &'static str,
}

const fn row(
    path: &'static str,
    runtime: Option<Runtime>,
    id: Option<&'static str>,
    pod_uid: Option<&'static str>,
    qos: Option<Qos>,
    cite: &'static str,
) -> Row {
    Row {
        path,
        runtime,
        id,
        pod_uid,
        qos,
        cite,
    }
}

use Qos::{BestEffort, Burstable, Guaranteed};
use Runtime::{Containerd, CriO, Docker, Podman};

/// Container and pod paths: what each must parse to.
const WORKLOADS: &[Row] = &[
    row(
        "/kubepods/burstable/pod9729a196c4723b60ab401eaff722982d/d166c6190614efc91956b78e96d74c3fbc96ca8e91948c36de3bc5b0e7b27d48",
        None,
        Some(ID_A),
        Some("9729a196c4723b60ab401eaff722982d"),
        Some(Burstable),
        "coroot v1.35.6 cgroup_test.go: cgroupfs kubelet, static pod (hash UID)",
    ),
    row(
        "/kubepods/besteffort/pod0d08203e-255a-11e9-8cd9-0007cb0b2cc8/671a50f5d60566556912f61511d0ec9e4d5c78d53fbc4676727180438bbbbc55/kube-proxy",
        None,
        Some("671a50f5d60566556912f61511d0ec9e4d5c78d53fbc4676727180438bbbbc55"),
        Some("0d08203e-255a-11e9-8cd9-0007cb0b2cc8"),
        Some(BestEffort),
        "coroot v1.35.6 cgroup_test.go: a cgroup the container made below its own",
    ),
    row(
        "/kubepods/poda38c12e8-255a-11e9-8cd9-0007cb0b2cc8/32c562ed81a2622b37b80cb216859820ba51bd694f60ee4cf10d07a4011266f8",
        None,
        Some("32c562ed81a2622b37b80cb216859820ba51bd694f60ee4cf10d07a4011266f8"),
        Some("a38c12e8-255a-11e9-8cd9-0007cb0b2cc8"),
        Some(Guaranteed),
        "coroot v1.35.6 cgroup_test.go: guaranteed pod directly under kubepods",
    ),
    row(
        "/kubepods/burstable/pod6a4ce4a0-ba47-11ea-b2a7-0cc47ac5979e/17db96a24ae1e9dd57143e62b1cb0d2d35e693c65c774c7470e87b0572e07c1a",
        None,
        Some("17db96a24ae1e9dd57143e62b1cb0d2d35e693c65c774c7470e87b0572e07c1a"),
        Some("6a4ce4a0-ba47-11ea-b2a7-0cc47ac5979e"),
        Some(Burstable),
        "coroot v1.35.6 fixtures/proc/300/cgroup (v1 host)",
    ),
    row(
        "/kubepods/poda48c12e8-255a-11e9-8cd9-0007cb0b2cc8/crio-63425c4a8b4291744a79dd9011fddc7a1f8ffda61f65d72196aa01d00cae2e2e",
        Some(CriO),
        Some("63425c4a8b4291744a79dd9011fddc7a1f8ffda61f65d72196aa01d00cae2e2e"),
        Some("a48c12e8-255a-11e9-8cd9-0007cb0b2cc8"),
        Some(Guaranteed),
        "coroot v1.35.6 cgroup_test.go; CRI-O v1.34.0 cgroupfs_linux.go ContainerCgroupPath",
    ),
    row(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2942c55e_c9cb_428a_93f4_eaf89c1f3ce0.slice/crio-49f9e8e5395d57c1083996c09e2e6f042d5fe1ec0310facab32f94912b35ce59.scope",
        Some(CriO),
        Some("49f9e8e5395d57c1083996c09e2e6f042d5fe1ec0310facab32f94912b35ce59"),
        Some("2942c55e-c9cb-428a-93f4-eaf89c1f3ce0"),
        Some(Burstable),
        "coroot v1.35.6 cgroup_test.go; falco libs 0.20.0 cri.cpp {\"/crio-\", \".scope\"}",
    ),
    row(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podea19ff5d_943a_4466_a07e_a71e9e50cc62.slice/crio-21572039dd8398ff8272b031fa5422a40165145ab37f2f8794e1e7f844fe8118.scope/container",
        Some(CriO),
        Some("21572039dd8398ff8272b031fa5422a40165145ab37f2f8794e1e7f844fe8118"),
        Some("ea19ff5d-943a-4466-a07e-a71e9e50cc62"),
        Some(Burstable),
        "coroot v1.35.6 cgroup_test.go: crun's `container` sub-cgroup below the scope",
    ),
    row(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3e61c214bc3ed9ff81e21474dd6cba17.slice/cri-containerd-c74b0f5062f0bc726cae1e9369ad4a95deed6b298d247f0407475adb23fa3190",
        Some(Containerd),
        Some("c74b0f5062f0bc726cae1e9369ad4a95deed6b298d247f0407475adb23fa3190"),
        Some("3e61c214bc3ed9ff81e21474dd6cba17"),
        Some(Burstable),
        "coroot v1.35.6 cgroup_test.go: containerd, static pod, no .scope suffix",
    ),
    row(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod8712f785_1a3e_41ec_a00b_e2dcc77431cb.slice/docker-73051af271105c07e1f493b34856a77e665e3b0b4fc72f76c807dfbffeb881bd.scope",
        Some(Docker),
        Some("73051af271105c07e1f493b34856a77e665e3b0b4fc72f76c807dfbffeb881bd"),
        Some("8712f785-1a3e-41ec-a00b-e2dcc77431cb"),
        Some(BestEffort),
        "coroot v1.35.6 fixtures/proc/400/cgroup; falco libs 0.20.0 cri.cpp {\"/docker-\", \".scope\"} (cri-dockerd)",
    ),
    row(
        "/system.slice/containerd.service/kubepods-burstable-pod4ed02c0b_0df8_4d14_a30e_fd589ee4143a.slice:cri-containerd:d4a9f9195eaf7e4a729f24151101e1de61f1398677e7b82acfb936dff0b4ce55",
        Some(Containerd),
        Some("d4a9f9195eaf7e4a729f24151101e1de61f1398677e7b82acfb936dff0b4ce55"),
        Some("4ed02c0b-0df8-4d14-a30e-fd589ee4143a"),
        Some(Burstable),
        "coroot v1.35.6 cgroup_test.go; falco libs 0.20.0 cri.cpp {\":cri-containerd:\", \"\"}; containerd v2.2.0 getCgroupsPath",
    ),
    row(
        "/kubepods.slice/kubepods-pod1399d9c7_c86f_4371_8568_07b3d32258a4.slice/cri-containerd-69e8ded3c33c9d5e2b93acd74787b17a8629f74d6707bc5bb9b2e095337d0263.scope",
        Some(Containerd),
        Some("69e8ded3c33c9d5e2b93acd74787b17a8629f74d6707bc5bb9b2e095337d0263"),
        Some("1399d9c7-c86f-4371-8568-07b3d32258a4"),
        Some(Guaranteed),
        "kubelet ToSystemd (guaranteed: no QoS slice) + containerd v2.2.0 getCgroupsPath; UID from Tetragon v1.7.0 fsscan_test.go",
    ),
    row(
        "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod1399d9c7_c86f_4371_8568_07b3d32258a4.slice/cri-containerd-69e8ded3c33c9d5e2b93acd74787b17a8629f74d6707bc5bb9b2e095337d0263.scope",
        Some(Containerd),
        Some("69e8ded3c33c9d5e2b93acd74787b17a8629f74d6707bc5bb9b2e095337d0263"),
        Some("1399d9c7-c86f-4371-8568-07b3d32258a4"),
        Some(BestEffort),
        "kubelet ToSystemd with --cgroup-root=/kubelet (kind nodes): every slice name prefixed",
    ),
    row(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2942c55e_c9cb_428a_93f4_eaf89c1f3ce0.slice",
        None,
        None,
        Some("2942c55e-c9cb-428a-93f4-eaf89c1f3ce0"),
        Some(Burstable),
        "kubelet pod_container_manager_linux.go: the pod's own cgroup (a pod, no container)",
    ),
    row(
        "/docker/63425c4a8b4291744a79dd9011fddc7a1f8ffda61f65d72196aa01d00cae2e2d",
        Some(Docker),
        Some("63425c4a8b4291744a79dd9011fddc7a1f8ffda61f65d72196aa01d00cae2e2d"),
        None,
        None,
        "coroot v1.35.6 cgroup_test.go; falco libs 0.20.0 docker_linux.cpp {\"/\", \"\"}",
    ),
    row(
        "/system.slice/docker-ba7b10d15d16e10e3de7a2dcd408a3d971169ae303f46cfad4c5453c6326fee2.scope",
        Some(Docker),
        Some("ba7b10d15d16e10e3de7a2dcd408a3d971169ae303f46cfad4c5453c6326fee2"),
        None,
        None,
        "coroot v1.35.6 cgroup_test.go; falco libs 0.20.0 docker_linux.cpp {\"/docker-\", \".scope\"}",
    ),
    row(
        "/../../../../system.slice/docker-ba7b10d15d16e10e3de7a2dcd408a3d971169ae303f46cfad4c5453c6326fee2.scope",
        Some(Docker),
        Some("ba7b10d15d16e10e3de7a2dcd408a3d971169ae303f46cfad4c5453c6326fee2"),
        None,
        None,
        "coroot v1.35.6 fixtures/proc/500/cgroup: read from inside another cgroup namespace",
    ),
    row(
        // coroot v1.35.6 calls this a standalone process; the scope name is containerd's
        // own (getCgroupsPath), so it is a containerd container outside any kubelet pod.
        "/system.slice/cri-containerd-69e8ded3c33c9d5e2b93acd74787b17a8629f74d6707bc5bb9b2e095337d0263.scope",
        Some(Containerd),
        Some("69e8ded3c33c9d5e2b93acd74787b17a8629f74d6707bc5bb9b2e095337d0263"),
        None,
        None,
        "coroot v1.35.6 cgroup_test.go (differs on purpose, see above)",
    ),
    row(
        "/machine.slice/libpod-ba7b10d15d16e10e3de7a2dcd408a3d971169ae303f46cfad4c5453c6326fee2.scope/container",
        Some(Podman),
        Some("ba7b10d15d16e10e3de7a2dcd408a3d971169ae303f46cfad4c5453c6326fee2"),
        None,
        None,
        "falco libs 0.20.0 podman.cpp: \"Root: /machine.slice/libpod-$ID.scope/container\"",
    ),
    row(
        "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-ba7b10d15d16e10e3de7a2dcd408a3d971169ae303f46cfad4c5453c6326fee2.scope/container",
        Some(Podman),
        Some("ba7b10d15d16e10e3de7a2dcd408a3d971169ae303f46cfad4c5453c6326fee2"),
        None,
        None,
        "falco libs 0.20.0 podman.cpp: \"User: /user.slice/user-1000.slice/user@1000.service/user.slice/libpod-$ID.scope/container\"",
    ),
    row(
        "/machine.slice/machine-libpod_pod_56967be6ba7eec1111d63ff8ef796856c5a0840f0a3be66b78890368fb49c1d4.slice/libpod-52bda45b9f3f61286728b94d032c8aca3d3aaa0e2a07cae601ddf296fcda1dd3.scope",
        Some(Podman),
        Some("52bda45b9f3f61286728b94d032c8aca3d3aaa0e2a07cae601ddf296fcda1dd3"),
        Some("56967be6ba7eec1111d63ff8ef796856c5a0840f0a3be66b78890368fb49c1d4"),
        None,
        "podman v4.3.1 runtime_pod_linux.go: systemd pod slice libpod_pod_<pod id>",
    ),
    row(
        "/libpod_parent/libpod-1c71379e44e0714ce15e9d0ac09c13b515ab9fd1efa5823239941cf2b4a1bf4f",
        Some(Podman),
        Some("1c71379e44e0714ce15e9d0ac09c13b515ab9fd1efa5823239941cf2b4a1bf4f"),
        None,
        None,
        "this machine, podman 4.3.1 cgroupfs; podman v4.3.1 container_internal_linux.go; falco libs 0.20.0 podman.cpp {\"/libpod-\", \"\"}",
    ),
    row(
        "/libpod_parent/56967be6ba7eec1111d63ff8ef796856c5a0840f0a3be66b78890368fb49c1d4/libpod-52bda45b9f3f61286728b94d032c8aca3d3aaa0e2a07cae601ddf296fcda1dd3",
        Some(Podman),
        Some("52bda45b9f3f61286728b94d032c8aca3d3aaa0e2a07cae601ddf296fcda1dd3"),
        Some("56967be6ba7eec1111d63ff8ef796856c5a0840f0a3be66b78890368fb49c1d4"),
        None,
        "this machine, a podman 4.3.1 pod with cgroupfs; podman v4.3.1 runtime_pod_linux.go",
    ),
];

/// Paths of the host's own processes.
const HOST: &[(&str, &str)] = &[
    ("/", "the root cgroup"),
    ("/init.scope", "coroot v1.35.6 fixtures/proc/600/cgroup"),
    (
        "/system.slice/docker.service",
        "coroot v1.35.6 fixtures/proc/100/cgroup: the docker daemon itself",
    ),
    (
        "/system.slice/containerd.service",
        "coroot v1.35.6 cgroup_test.go: the containerd daemon",
    ),
    (
        "/system.slice/system-serial\\x2dgetty.slice",
        "coroot v1.35.6 cgroup_test.go",
    ),
    (
        "/system.slice/system-postgresql.slice/postgresql@9.4-main.service",
        "coroot v1.35.6 cgroup_test.go",
    ),
    (
        "/user.slice/user-1000.slice/session-3.scope",
        "a login session",
    ),
];

/// Paths no layout here explains, or that are runtime helpers: never guessed.
const UNKNOWN: &[(&str, &str)] = &[
    (
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2942c55e_c9cb_428a_93f4_eaf89c1f3ce0.slice/crio-conmon-49f9e8e5395d57c1083996c09e2e6f042d5fe1ec0310facab32f94912b35ce59.scope",
        "Tetragon v1.7.0 fsscan.go skips crio-conmon; coroot v1.35.6 returns unknown",
    ),
    (
        "/machine.slice/libpod-conmon-ba7b10d15d16e10e3de7a2dcd408a3d971169ae303f46cfad4c5453c6326fee2.scope",
        "podman v4.3.1 oci_conmon_linux.go createUnitName(\"libpod-conmon\", id)",
    ),
    (
        "/lxc/mysql-primary-db",
        "coroot v1.35.6 cgroup_test.go: LXC, not handled here",
    ),
    (
        "/runtime.slice/kubelet.service",
        "coroot v1.35.6 cgroup_test.go: a vendor slice, not guessed",
    ),
    (
        "/podruntime/kubelet",
        "coroot v1.35.6 cgroup_test.go: Talos, not handled here",
    ),
    (
        "/system.slice/run-ra2ddf9594bbf4a1986439b594f89eb0f.scope",
        "coroot v1.35.6 cgroup_test.go: a transient scope",
    ),
    (
        "/kubepods.slice/kubepods-burstable.slice",
        "the QoS parent holds no process",
    ),
    (
        "/kubepods/burstable/podnot-a-uid/ba7b10d15d16e10e3de7a2dcd408a3d971169ae303f46cfad4c5453c6326fee2",
        "not a pod UID",
    ),
    (
        "/kubepods/burstable/pod6a4ce4a0-ba47-11ea-b2a7-0cc47ac5979e/17db96a24ae1",
        "a short id is not guessed",
    ),
    (
        "/process_api/acf017d4c28a7daf7be77780fd8f6f2d",
        "this machine's sandbox memory cgroup",
    ),
    ("/tcpchurn-scope-sca-1234", "a test's own cgroup"),
    (
        "/ba7b10d15d16e10e3de7a2dcd408a3d971169ae303f46cfad4c5453c6326fee2",
        "a bare id outside any known parent",
    ),
];

#[test]
fn container_and_pod_paths_parse_to_runtime_id_pod_and_qos() {
    for r in WORKLOADS {
        let Placement::Workload(parsed) = parse(r.path) else {
            panic!("{} ({}): {:?}", r.path, r.cite, parse(r.path));
        };
        assert_eq!(parsed.runtime, r.runtime, "{r:?}");
        assert_eq!(parsed.id.as_deref(), r.id, "{r:?}");
        assert_eq!(parsed.pod_uid.as_deref(), r.pod_uid, "{r:?}");
        assert_eq!(parsed.qos, r.qos, "{r:?}");
    }
}

#[test]
fn host_paths_are_the_host() {
    for (path, cite) in HOST {
        assert_eq!(parse(path), Placement::Host, "{path} ({cite})");
    }
}

#[test]
fn paths_no_layout_explains_stay_unknown() {
    for (path, cite) in UNKNOWN {
        assert_eq!(parse(path), Placement::Unknown, "{path} ({cite})");
    }
}

#[test]
fn v1_only_file_names_the_container_from_its_hierarchies() {
    // coroot v1.35.6 fixtures/proc/300/cgroup (cgroup v1 node, cgroupfs kubelet).
    let text = "11:devices:/kubepods/burstable/pod6a4ce4a0-ba47-11ea-b2a7-0cc47ac5979e/17db96a24ae1e9dd57143e62b1cb0d2d35e693c65c774c7470e87b0572e07c1a\n\
                3:cpu,cpuacct:/kubepods/burstable/pod6a4ce4a0-ba47-11ea-b2a7-0cc47ac5979e/17db96a24ae1e9dd57143e62b1cb0d2d35e693c65c774c7470e87b0572e07c1a\n\
                1:name=systemd:/kubepods/burstable/pod6a4ce4a0-ba47-11ea-b2a7-0cc47ac5979e/17db96a24ae1e9dd57143e62b1cb0d2d35e693c65c774c7470e87b0572e07c1a";
    let cgroups = ProcCgroups::parse(text);
    assert_eq!(cgroups.v2, None);
    assert_eq!(cgroups.v1.len(), 3);
    let Placement::Workload(parsed) = cgroups.placement() else {
        panic!("{cgroups:?}");
    };
    assert_eq!(
        parsed.id.as_deref(),
        Some("17db96a24ae1e9dd57143e62b1cb0d2d35e693c65c774c7470e87b0572e07c1a")
    );
}

#[test]
fn hybrid_file_with_a_bare_v2_root_still_names_the_container() {
    // Inspektor Gadget v0.55.1 hooks-utils.go matches CRI-O by this `name=systemd`
    // line; on a hybrid host the `0::` line can be `/` for the same process.
    let text = "12:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2942c55e_c9cb_428a_93f4_eaf89c1f3ce0.slice/crio-49f9e8e5395d57c1083996c09e2e6f042d5fe1ec0310facab32f94912b35ce59.scope\n\
                1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2942c55e_c9cb_428a_93f4_eaf89c1f3ce0.slice/crio-49f9e8e5395d57c1083996c09e2e6f042d5fe1ec0310facab32f94912b35ce59.scope\n\
                0::/";
    let Placement::Workload(parsed) = ProcCgroups::parse(text).placement() else {
        panic!();
    };
    assert_eq!(parsed.runtime, Some(CriO));
    assert_eq!(
        parsed.pod_uid.as_deref(),
        Some("2942c55e-c9cb-428a-93f4-eaf89c1f3ce0")
    );
}

#[test]
fn hybrid_file_with_the_container_only_in_v2() {
    // coroot v1.35.6 fixtures/proc/800/cgroup.
    let text = "1:name=systemd:/\n0::/system.slice/docker-cf87ba651579c9231db817909e7865e5747bd7abcac0c57ce23cf4abbaee046b.scope";
    let Placement::Workload(parsed) = ProcCgroups::parse(text).placement() else {
        panic!();
    };
    assert_eq!(parsed.runtime, Some(Docker));
}

#[test]
fn this_machines_podman_container_on_a_hybrid_host() {
    let id = "1c71379e44e0714ce15e9d0ac09c13b515ab9fd1efa5823239941cf2b4a1bf4f";
    let mut text = String::new();
    for (n, c) in [(9, "name=systemd"), (4, "memory"), (1, "cpu")] {
        text.push_str(&format!("{n}:{c}:/libpod_parent/libpod-{id}\n"));
    }
    text.push_str(&format!("0::/libpod_parent/libpod-{id}\n"));
    let Placement::Workload(parsed) = ProcCgroups::parse(&text).placement() else {
        panic!();
    };
    assert_eq!(
        (parsed.runtime, parsed.id.as_deref()),
        (Some(Podman), Some(id))
    );
}

#[test]
fn host_processes_are_the_host_whatever_their_resource_controllers_say() {
    // This machine: v2 and name=systemd at the root, memory in the sandbox's group.
    let text =
        "9:name=systemd:/\n4:memory:/process_api/acf017d4c28a7daf7be77780fd8f6f2d\n1:cpu:/\n0::/";
    assert_eq!(ProcCgroups::parse(text).placement(), Placement::Host);
    // coroot v1.35.6 fixtures/proc/100/cgroup: the docker daemon.
    let text =
        "10:devices:/system.slice/docker.service\n1:name=systemd:/system.slice/docker.service";
    assert_eq!(ProcCgroups::parse(text).placement(), Placement::Host);
    // coroot v1.35.6 fixtures/proc/600/cgroup: a service on a v1 host.
    let text = "10:blkio:/init.scope\n1:name=systemd:/system.slice/springboot.service";
    assert_eq!(ProcCgroups::parse(text).placement(), Placement::Host);
}

#[test]
fn a_v2_path_below_the_root_decides_over_a_root_name_systemd_path() {
    // A hybrid host where a process was moved in the v2 hierarchy only.
    let text = "9:name=systemd:/\n0::/tcpchurn-test";
    assert_eq!(ProcCgroups::parse(text).placement(), Placement::Unknown);
    let text = "9:name=systemd:/tcpchurn-test\n0::/system.slice/ssh.service";
    assert_eq!(ProcCgroups::parse(text).placement(), Placement::Host);
    // v1 host: `0::/` is always there and says nothing.
    let text = "9:name=systemd:/tcpchurn-test\n0::/";
    assert_eq!(ProcCgroups::parse(text).placement(), Placement::Unknown);
}

#[test]
fn a_process_in_an_unknown_placement_is_not_the_host() {
    let text = "9:name=systemd:/tcpchurn-test\n0::/tcpchurn-test";
    assert_eq!(ProcCgroups::parse(text).placement(), Placement::Unknown);
    assert_eq!(ProcCgroups::parse("").placement(), Placement::Unknown);
    assert_eq!(
        ProcCgroups::parse("garbage\n::\n0:").placement(),
        Placement::Unknown
    );
}

#[test]
fn hostile_paths_do_not_panic() {
    let long = "a/".repeat(100_000);
    for path in [
        "",
        "//",
        "::",
        "a:b:c",
        ":::",
        "/kubepods",
        "/kubepods/pod",
        "/kubepods.slice/-.slice",
        "/kubepods.slice/kubepods-pod.slice",
        "\u{0}",
        "/é/ü.slice",
        &long,
    ] {
        let _placement = parse(path);
    }
}
