"""One Kubernetes API client for the process: in-cluster when running in a Pod, else the kubeconfig."""

from __future__ import annotations

import os
from functools import cache

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException


@cache
def api_client() -> client.ApiClient:
    """The shared API client; credentials are loaded once, the way kubectl would find them."""
    try:
        config.load_incluster_config()
    except ConfigException:
        # KUBECONFIG is read now, not at import time (the client's default is frozen at import).
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
    return client.ApiClient()


def core_v1() -> client.CoreV1Api:
    return client.CoreV1Api(api_client())


def custom_objects() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client())
