"""The kind node image, built by hand once per machine since `kind build node-image` needs a registry.

Steps (see ../shared/argocd-facts.md, "kind on this machine"): a bookworm rootfs with kind's base files
on top; the Kubernetes binaries built at the local control plane's version; `FROM scratch` images of
what kubeadm deploys, tagged with the names kubeadm expects and imported into the node's containerd;
the running node committed and saved to the cache, keyed by every version that went into it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from argobridge_dev import containers, gobuild, versions
from argobridge_dev.kind import rootfs

PAUSE_VERSION = "3.10.1"
# Bumped when the recipe below changes what goes into the node, so a machine builds the new one.
NODE_RECIPE = "2"
NODE_KEY = hashlib.sha256(
    "\n".join([NODE_RECIPE, PAUSE_VERSION, versions.KIND.key, *(t.key for t in versions.KIND_NODE_TOOLS)]).encode()
).hexdigest()[:10]
NODE_TAG = f"localhost/argobridge/kind-node:{versions.KUBERNETES_VERSION}-kind{versions.KIND.version}-{NODE_KEY}"

# The pause process: sleep until told to stop, reap what it inherits; static so it runs FROM scratch.
PAUSE_C = r"""
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction s = {0}, r = {0};
    s.sa_handler = stop; sigaction(SIGINT, &s, 0); sigaction(SIGTERM, &s, 0);
    r.sa_handler = reap; r.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &r, 0);
    for (;;) pause();
}
"""

# kube-proxy calls `iptables` and friends; the node chose legacy or nft (kind's entrypoint), and the pod
# must use the same backend. Installed under each name in /usr/local/sbin, ahead of /usr/sbin in PATH.
IPTABLES_WRAPPER = """#!/bin/bash
legacy=$( (iptables-legacy-save; ip6tables-legacy-save) 2>/dev/null | grep -c '^-')
nft=$( (iptables-nft-save; ip6tables-nft-save) 2>/dev/null | grep -c '^-')
mode=nft; [ "$legacy" -gt "$nft" ] && mode=legacy
exec -a "$(basename "$0")" "/usr/sbin/xtables-$mode-multi" "$@"
"""
IPTABLES_NAMES = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore")

# A single node: the bridge plugin gives pods addresses in kind's default pod subnet.
BRIDGE_CNI = """{
  "cniVersion": "1.0.0",
  "name": "kind-bridge",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "isDefaultGateway": true, "ipMasq": true,
     "hairpinMode": true, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/16"}]]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
"""


def _log(message: str) -> None:
    print(f"[argobridge kind] {message}", file=sys.stderr, flush=True)


def kind_dir() -> Path:
    return gobuild.cache_root() / "kind"


def podman_env() -> dict[str, str]:
    """podman with the project's own containers.conf and storage.conf (`argobridge_dev.containers`)."""
    return containers.environment()


def podman(*args: str, capture: bool = False) -> str:
    result = containers.podman(*args, capture=capture)
    return result.stdout.strip() if capture else ""


def archive_path() -> Path:
    """The saved node image: one per machine and set of versions."""
    return kind_dir() / f"node-{versions.KUBERNETES_VERSION}-kind{versions.KIND.version}-{NODE_KEY}.tar"


def kubeadm_images(kubeadm: Path) -> dict[str, str]:
    """The image names kubeadm of this version deploys, by component (kube-apiserver, etcd, ...)."""
    out = subprocess.run(
        [str(kubeadm), "config", "images", "list", "--kubernetes-version", versions.KUBERNETES_VERSION],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = {}
    for line in out.split():
        component = line.rsplit("/", 1)[1].split(":", 1)[0]
        names[component] = line
    return names


def archive_for(tag: str) -> Path:
    return kind_dir() / "images" / (tag.replace("/", "_").replace(":", "_") + ".tar")


def build_archive(tag: str, ctx: Path) -> Path:
    """Build the Containerfile in `ctx` as `tag` and save it as an archive `kind load` takes (cached)."""
    out = archive_for(tag)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    podman("build", "-q", "-t", tag, str(ctx))
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    podman("save", "--format", "docker-archive", "-o", str(tmp), tag)
    tmp.rename(out)
    return out


def _scratch_image(tag: str, files: dict[str, Path | str], entrypoint: list[str], base: str = "scratch") -> Path:
    """Build `tag` from `files` (image path -> host file or text) and save it as an archive."""
    if archive_for(tag).exists():
        return archive_for(tag)
    with tempfile.TemporaryDirectory() as ctx_name:
        ctx = Path(ctx_name)
        lines = [f"FROM {base}"]
        for index, (dest, source) in enumerate(files.items()):
            local = ctx / f"f{index}"
            if isinstance(source, Path):
                shutil.copy(source, local)
            else:
                local.write_text(source)
            local.chmod(0o755)
            lines.append(f"COPY f{index} {dest}")
        lines.append("ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/bin:/usr/sbin:/sbin")
        quoted = ", ".join(f'"{part}"' for part in entrypoint)
        lines.append(f"ENTRYPOINT [{quoted}]")
        (ctx / "Containerfile").write_text("\n".join(lines) + "\n")
        return build_archive(tag, ctx)


def _image_exists(tag: str) -> bool:
    return subprocess.run(["podman", "image", "exists", tag], env=podman_env()).returncode == 0


def base_debian_image() -> str:
    """The bookworm rootfs (node packages) imported as an image: base of the node and of Argo CD's image."""
    tag = f"localhost/argobridge/debian-node:{rootfs.SUITE}"
    if not _image_exists(tag):
        podman("import", str(rootfs.build_rootfs_tar(kind_dir() / "rootfs-node-bookworm.tar")), tag)
    return tag


def _pause_binary() -> Path:
    target = kind_dir() / "bin" / "pause"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        source = target.with_suffix(".c")
        source.write_text(PAUSE_C)
        subprocess.run(["gcc", "-static", "-O2", "-o", str(target), str(source)], check=True)
    return target


def _base_image() -> str:
    """The node's rootfs as an image: kind's files on Debian's packages, entrypoint as kind's base."""
    tag = f"localhost/argobridge/kind-base:{rootfs.SUITE}-kind{versions.KIND.version}"
    if _image_exists(tag):
        return tag
    debian = base_debian_image()
    files = gobuild.module_dir(versions.KIND.module, versions.KIND.version) / "images" / "base" / "files"
    with tempfile.TemporaryDirectory() as ctx_name:
        ctx = Path(ctx_name)
        shutil.copytree(files, ctx / "files", symlinks=True)
        for path in (ctx / "files").rglob("*"):
            path.chmod(0o755 if path.is_dir() or "bin" in path.parts else 0o644)
        script = " && ".join(
            (
                "rm -f /etc/systemd/system/containerd-fuse-overlayfs.service",
                "mkdir -p /usr/local/bin /usr/local/sbin /opt/cni /etc/kubernetes/manifests /etc/cni/net.d",
                "ln -sf /usr/bin/containerd /usr/local/bin/containerd",
                "ln -sf /usr/bin/ctr /usr/local/bin/ctr",
                "ln -sf /usr/bin/containerd-shim-runc-v2 /usr/local/bin/containerd-shim-runc-v2",
                "ln -sf /usr/sbin/runc /usr/local/sbin/runc",
                "rm -rf /opt/cni/bin && ln -s /usr/lib/cni /opt/cni/bin",
                'ctr oci spec | jq \'.hooks.createContainer |= . + [{"path": "/kind/bin/mount-product-files.sh"}]\''
                " > /etc/containerd/cri-base.json",
                "find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete",
                "rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/*"
                " /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev*"
                " /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*",
                "echo ReadKMsg=no >> /etc/systemd/journald.conf",
                "systemctl enable kubelet.service containerd.service undo-mount-hacks.service",
                "systemctl mask systemd-binfmt.service",
                "sed -i -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/'"
                f" -e 's#registry.k8s.io/pause:3.10\"#registry.k8s.io/pause:{PAUSE_VERSION}\"#'"
                " -e '/proxy_plugins/,/fuse-overlayfs.sock\"/d' /etc/containerd/config.toml",
            )
        )
        (ctx / "10-bridge.conflist").write_text(BRIDGE_CNI)
        (ctx / "Containerfile").write_text(
            f"FROM {debian}\nCOPY files/ /\nCOPY 10-bridge.conflist /etc/cni/net.d/10-bridge.conflist\n"
            f"RUN {script}\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\n"
            'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n'
        )
        podman("build", "-q", "-t", tag, str(ctx))
    return tag


def component_images(kubeadm: Path) -> list[Path]:
    """Archives of every image kubeadm deploys, built here and tagged with kubeadm's names."""
    names = kubeadm_images(kubeadm)
    bins = {
        tool.name: gobuild.ensure_built(tool) for tool in (*versions.KIND_NODE_TOOLS, *versions.CONTROL_PLANE_TOOLS)
    }
    archives = []
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        archives.append(_scratch_image(names[name], {f"/usr/local/bin/{name}": bins[name]}, [f"/usr/local/bin/{name}"]))
    archives.append(_scratch_image(names["etcd"], {"/usr/local/bin/etcd": bins["etcd"]}, ["/usr/local/bin/etcd"]))
    archives.append(_scratch_image(names["coredns"], {"/coredns": bins["coredns"]}, ["/coredns"]))
    archives.append(_scratch_image(names["pause"], {"/pause": _pause_binary()}, ["/pause"]))
    # kube-proxy needs iptables: it runs on the node's own rootfs with the backend-choosing wrapper.
    archives.append(
        _scratch_image(
            names["kube-proxy"],
            {
                "/usr/local/bin/kube-proxy": bins["kube-proxy"],
                **{f"/usr/local/sbin/{name}": IPTABLES_WRAPPER for name in IPTABLES_NAMES},
            },
            ["/usr/local/bin/kube-proxy"],
            base=_base_image(),
        )
    )
    return archives


# The image names the provisioner's manifest gives (a bare name means Docker Hub's library).
LOCAL_PATH_IMAGE = f"docker.io/rancher/local-path-provisioner:{versions.LOCAL_PATH_PROVISIONER.version}"
HELPER_IMAGE = "docker.io/library/busybox:latest"


def _busybox_binary() -> Path:
    """Debian's static busybox, unpacked from its package (no root needed): the provisioner's helper pod."""
    target = kind_dir() / "bin" / "busybox"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        download = ["apt-get", "download", "-q", "busybox-static"]
        if subprocess.run(download, cwd=work, capture_output=True).returncode:
            # Package lists never fetched on this machine: fetch them once (root, as for podman) and retry.
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
            subprocess.run(download, cwd=work, check=True, capture_output=True)
        deb = next(Path(work).glob("busybox-static_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), f"{work}/root"], check=True)
        shutil.copy(Path(work) / "root" / "bin" / "busybox", target)
    return target


def storage_manifest() -> str:
    """The provisioner's own manifest, with its StorageClass as kind's stock node names it: `standard`, default."""
    source = gobuild.module_dir(versions.LOCAL_PATH_PROVISIONER.module, versions.LOCAL_PATH_PROVISIONER.version)
    docs = [d for d in yaml.safe_load_all((source / "deploy" / "local-path-storage.yaml").read_text()) if d]
    for doc in docs:
        if doc["kind"] == "StorageClass":
            doc["metadata"]["name"] = "standard"
            doc["metadata"]["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return yaml.safe_dump_all(docs)


def storage_images() -> list[Path]:
    """The provisioner and its helper (sh, mkdir, rm from busybox), built FROM scratch."""
    provisioner = gobuild.ensure_built(versions.LOCAL_PATH_PROVISIONER)
    busybox = _busybox_binary()
    return [
        _scratch_image(
            LOCAL_PATH_IMAGE,
            {"/usr/local/bin/local-path-provisioner": provisioner},
            ["/usr/local/bin/local-path-provisioner"],
        ),
        _scratch_image(
            HELPER_IMAGE, {f"/bin/{name}": busybox for name in ("sh", "mkdir", "rm", "busybox")}, ["/bin/sh"]
        ),
    ]


def ensure_host_modules_dir() -> None:
    """kind's podman provider always mounts the host's /lib/modules; a VM without modules lacks it."""
    Path("/lib/modules").mkdir(exist_ok=True)


def ensure_node_image() -> str:
    """The node image's tag, loaded into podman; built and saved once per machine and versions."""
    ensure_host_modules_dir()
    if _image_exists(NODE_TAG):
        return NODE_TAG
    archive = archive_path()
    if archive.exists():
        podman("load", "-q", "-i", str(archive))
        return NODE_TAG
    started = time.monotonic()
    bins = {tool.name: gobuild.ensure_built(tool) for tool in versions.KIND_NODE_TOOLS}
    base = _base_image()
    archives = [*component_images(bins["kubeadm"]), *storage_images()]
    name = "argobridge-kind-node-build"
    subprocess.run(["podman", "rm", "-f", name], env=podman_env(), capture_output=True)
    podman(
        "run",
        "-d",
        "--name",
        name,
        "--privileged",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/run",
        "-v",
        "/lib/modules:/lib/modules:ro",
        base,
    )
    try:
        for tool in ("kubelet", "kubeadm", "kubectl", "crictl"):
            podman("cp", str(bins[tool]), f"{name}:/usr/bin/{tool}")
        podman("exec", name, "sh", "-c", f"echo {versions.KUBERNETES_VERSION} > /kind/version")
        manifest = Path(tempfile.mkdtemp()) / "default-storage.yaml"
        manifest.write_text(storage_manifest())
        podman("exec", name, "mkdir", "-p", "/kind/manifests")
        podman("cp", str(manifest), f"{name}:/kind/manifests/default-storage.yaml")
        deadline = time.monotonic() + 120
        while subprocess.run(
            ["podman", "exec", name, "ctr", "version"], env=podman_env(), capture_output=True
        ).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("containerd did not start in the node being built")
            time.sleep(1)
        # Debian's ctr 1.6 has no --label, so the images are not pinned: kubelet's image GC only
        # collects under disk pressure, which a test cluster of minutes does not reach.
        for image in archives:
            podman("cp", str(image), f"{name}:/tmp/image.tar")
            podman(
                "exec",
                name,
                "ctr",
                "-n",
                "k8s.io",
                "images",
                "import",
                "--no-unpack",
                "--digests",
                "/tmp/image.tar",
            )
        podman("exec", name, "sh", "-c", "systemctl stop containerd; rm -f /tmp/image.tar")
        # /var is no volume here, so containerd's store is committed with the image; kind mounts a fresh
        # volume on /var, which podman fills from the image's /var on first use.
        podman("commit", "-q", "--change", 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]', name, NODE_TAG)
    finally:
        subprocess.run(["podman", "rm", "-f", name], env=podman_env(), capture_output=True)
    tmp = archive.with_name(archive.name + ".tmp")
    tmp.unlink(missing_ok=True)
    podman("save", "--format", "docker-archive", "-o", str(tmp), NODE_TAG)
    tmp.rename(archive)
    _log(f"node image {NODE_TAG} built in {time.monotonic() - started:.0f}s, {archive.stat().st_size / 1e9:.2f} GB")
    return NODE_TAG


if __name__ == "__main__":
    print(ensure_node_image())
