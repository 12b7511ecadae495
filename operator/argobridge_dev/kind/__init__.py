"""A kind cluster built on this machine: node image, the images kubeadm expects, the cluster itself.

No image registry is reachable here, so everything kind would pull is built from Debian packages and
the project's pinned Go modules, and cached under the user's cache directory keyed by the versions.
"""
