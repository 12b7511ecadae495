"""The `argobridge` command: run the operator, render offline, and the local development helpers."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from argobridge.core.configplan import merge_context, merge_subscriptions
from argobridge.core.ownership import bridge_id
from argobridge.core.render import CONTEXT_KEY, SUBSCRIPTIONS_KEY, render_notifications_config, to_yaml
from argobridge.core.spec import KIND, NOTIFICATIONS_CONFIGMAP, SpecError, parse_bridge_spec

# Commands served by the separate argobridge_dev package (a checkout has it; the image does not).
DEV_COMMANDS = frozenset({"demo", "dev-cluster", "build-tools", "install-backstage"})


def render_command(path: str, argocd_url: str | None) -> int:
    """Print the ConfigMap data the operator would apply for a bridge file, without any cluster."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    documents = [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict) and doc.get("kind") == KIND]
    if not documents:
        print(f"error: no {KIND} found in {path}", file=sys.stderr)
        return 2
    for document in documents:
        try:
            spec = parse_bridge_spec(document.get("spec") or {})
            rendered = render_notifications_config(spec, spec.argocd_url or argocd_url)
        except SpecError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        data = dict(rendered.owned)
        namespace = (document.get("metadata") or {}).get("namespace", "argocd")
        owner = bridge_id(namespace, str((document.get("metadata") or {}).get("name", "backstage")))
        context = merge_context(None, rendered.context, owner)
        if context:
            data[CONTEXT_KEY] = context
        subscriptions = merge_subscriptions(None, rendered.subscriptions, owner)
        if subscriptions:
            data[SUBSCRIPTIONS_KEY] = subscriptions
        manifest: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": NOTIFICATIONS_CONFIGMAP, "namespace": namespace},
            "data": data,
        }
        print("# Keys ArgoBridge owns in this ConfigMap; other keys are left as they are.")
        print("# `context` and `subscriptions` are shared: only the entries shown here are ArgoBridge's.")
        print("---")
        print(to_yaml(manifest), end="")
    return 0


def run_command(namespaces: Sequence[str], liveness: str | None, leader_election: bool, debug: bool = False) -> int:
    """Run the operator until interrupted: every bridge in the cluster, or in the given namespaces.

    With leader election, serve the health endpoint as a standby and wait for the Lease first; every
    write then passes the Lease's write guard, and a leader that cannot renew in time stops and exits
    non-zero, so Kubernetes restarts it as a standby.
    """
    import os
    import signal
    import socket
    import threading

    from argobridge.runtime.operator_main import configure_logging, run_operator
    from argobridge.settings import Settings

    if not leader_election:
        run_operator(namespaces=namespaces, liveness_endpoint=liveness, debug=debug)
        return 0
    from argobridge.kube.client import WRITE_GUARD
    from argobridge.runtime.leader import LeaderElector, StandbyHealth, exit_if_stuck

    settings = Settings.from_env()
    configure_logging(settings, debug=debug)
    # A standby is a scrape target too (the chart's Service selects every replica): serve metrics now,
    # not only once kopf starts, or every standby would be a target that is down.
    from argobridge.handlers.startup import _serve_metrics_once

    _serve_metrics_once(settings.metrics_port)
    namespace = os.environ.get("POD_NAMESPACE", "default")
    name = os.environ.get("ARGOBRIDGE_LEASE_NAME", "argobridge")
    # Closes the write guard at once: nothing is written before this replica has taken the Lease.
    elector = LeaderElector(
        namespace=namespace,
        name=name,
        identity=os.environ.get("POD_ID") or socket.gethostname(),
        duration=int(os.environ.get("ARGOBRIDGE_LEASE_SECONDS", "15")),
        guard=WRITE_GUARD,
    )
    stop = threading.Event()
    # A standby asked to stop (a rollout, a scale-down) has nothing to hand over: exit 0 at once.
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with StandbyHealth(liveness, f"{namespace}/{name}"):
            if not elector.acquire(stop):
                return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    elector.keep_renewing(on_lost=stop)
    exit_if_stuck(elector.lost, grace=max(30.0, elector.timing.duration * 2))
    try:
        run_operator(namespaces=namespaces, liveness_endpoint=liveness, stop_flag=stop, debug=debug)
    finally:
        elector.release()
    return 1 if elector.lost.is_set() else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argobridge", description="Argo CD notifications to Backstage.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator against the current kubeconfig or in-cluster")
    run.add_argument("-n", "--namespace", action="append", default=[], help="watch only this namespace (repeatable)")
    run.add_argument(
        "--leader-election",
        action="store_true",
        help="reconcile only while holding a Lease (POD_NAMESPACE, ARGOBRIDGE_LEASE_NAME); for replicas > 1",
    )
    run.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="kopf health endpoint ('' to disable)")
    run.add_argument("--debug", action="store_true", help="log at debug level (tokens are never logged)")

    render = commands.add_parser("render", help="print the Argo CD configuration a bridge file stands for")
    render.add_argument("-f", "--filename", required=True, help="a YAML file with a BackstageBridge ('-' for stdin)")
    render.add_argument("--argocd-url", help="the Argo CD URL to assume when the bridge does not give one")

    preview = commands.add_parser(
        "preview", help="for one Application: which routes match each event, and the exact bodies sent"
    )
    preview.add_argument("--bridge", required=True, help="a YAML file with a BackstageBridge ('-' for stdin)")
    preview.add_argument("--app", required=True, help="a YAML file with an Argo CD Application")
    preview.add_argument("--event", action="append", default=[], help="only this event (repeatable)")
    preview.add_argument("--argocd-url", help="the Argo CD URL to assume when the bridge does not give one")

    demo = commands.add_parser(
        "demo", help="install the CRD, apply a sample bridge, show its result, and keep the operator running"
    )
    demo.add_argument("--once", action="store_true", help="stop after showing the result")

    commands.add_parser("install-crds", help="apply the CRDs to the current cluster")
    commands.add_parser("dev-cluster", help="start a local control plane and write its kubeconfig")
    build_tools = commands.add_parser("build-tools", help="build (or find cached) the pinned Go binaries")
    build_tools.add_argument("--kind", action="store_true", help="also kind and the kind node's binaries")
    commands.add_parser("install-backstage", help="install (or find cached) the Backstage test backend")

    rotate = commands.add_parser("rotate-token", help="rotate a bridge's token now (needs spec.token.mirror)")
    rotate.add_argument("--bridge", default="backstage", help="the BackstageBridge's name (default backstage)")
    rotate.add_argument("-n", "--namespace", default="argocd", help="its namespace (default argocd)")

    send = commands.add_parser("send-test", help="send a labelled test notification with the bridge's token")
    send.add_argument("--bridge", default="backstage", help="the BackstageBridge's name (default backstage)")
    send.add_argument("-n", "--namespace", default="argocd", help="its namespace (default argocd)")
    target = send.add_mutually_exclusive_group(required=True)
    target.add_argument("--entity-ref", help="an entity to notify, e.g. component:default/shop (its owners receive it)")
    target.add_argument("--broadcast", action="store_true", help="notify every Backstage user")
    send.add_argument("--via-relay", action="store_true", help="send it as Argo CD does in Relay mode: to the relay")
    send.add_argument("--relay-url", help="the relay's base URL from where you are, e.g. a port-forward")

    doctor = commands.add_parser("doctor", help="check a live installation for every known failure mode")
    doctor.add_argument("-n", "--namespace", default="argocd", help="the Argo CD namespace (default argocd)")
    doctor.add_argument("-o", "--output", choices=["text", "json"], default="text")

    from argobridge.relay.server import env as relay_env

    relay = commands.add_parser("relay", help="run the delivery relay (durable outbox in front of Backstage)")
    relay.add_argument("--listen", default=relay_env("LISTEN", "0.0.0.0:8090"))
    relay.add_argument("--status-listen", default=relay_env("STATUS_LISTEN", "0.0.0.0:8091"))
    relay.add_argument("--data-dir", default=relay_env("DATA_DIR", "/var/lib/argobridge-relay"))
    relay.add_argument("--config-secret", default=relay_env("CONFIG_SECRET", None), help="NAMESPACE/NAME")
    relay.add_argument("--config-file", default=relay_env("CONFIG_FILE", None), help="development: bridges JSON file")
    relay.add_argument("--replica", default=relay_env("REPLICA", None))
    relay.add_argument(
        "--shutdown-delay",
        type=float,
        default=float(relay_env("SHUTDOWN_DELAY", "0") or 0),
        help="seconds the ingress stays open after SIGTERM while readiness fails (the chart sets 5)",
    )

    args, _ = parser.parse_known_args(argv)
    if args.command == "relay":
        from argobridge.relay.server import run as run_relay

        return run_relay(
            args.listen,
            args.status_listen,
            args.data_dir,
            args.config_secret,
            args.config_file,
            args.replica,
            args.shutdown_delay,
        )
    if args.command == "send-test":
        from argobridge.commands.send_test import send_test_command

        return send_test_command(
            args.namespace,
            args.bridge,
            None if args.broadcast else args.entity_ref,
            args.via_relay or bool(args.relay_url),
            args.relay_url,
        )
    if args.command == "doctor":
        from argobridge.commands.doctor import doctor_command

        return doctor_command(args.namespace, args.output)
    if args.command == "rotate-token":
        from argobridge.commands.token_command import rotate_token_command

        return rotate_token_command(args.namespace, args.bridge)
    if args.command == "render":
        return render_command(args.filename, args.argocd_url)
    if args.command == "preview":
        from argobridge.commands.preview import preview_command

        return preview_command(args.bridge, args.app, args.event, args.argocd_url)
    if args.command == "run":
        return run_command(args.namespace, args.liveness or None, args.leader_election, args.debug)
    if args.command in DEV_COMMANDS and importlib.util.find_spec("argobridge_dev") is None:
        print(
            f"argobridge {args.command} is development machinery, not part of this install (the image carries"
            " only the operator): run it from a checkout of the repository (`make install`).",
            file=sys.stderr,
        )
        return 2
    if args.command == "demo":
        from argobridge_dev.demo import run_demo

        return run_demo(once=args.once)
    if args.command == "install-crds":
        from argobridge.kube.crds import install_crds

        for name in install_crds():
            print(f"applied CustomResourceDefinition {name}")
        return 0
    if args.command == "dev-cluster":
        from argobridge_dev.controlplane import main as dev_cluster

        return dev_cluster()
    if args.command == "build-tools":
        from argobridge_dev.gobuild import main as build

        if args.kind:
            from argobridge_dev.versions import ALL_TOOLS, KIND, KIND_NODE_TOOLS

            return build([tool.name for tool in (*ALL_TOOLS, KIND, *KIND_NODE_TOOLS)])
        return build([])
    if args.command == "install-backstage":
        from argobridge_dev.backstage import ensure_installed

        print(ensure_installed())
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
