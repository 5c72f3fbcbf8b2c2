"""Is the root file system on the network?  Upstream's check, done right (its ``=~ "^nfs"`` never matches)."""

from __future__ import annotations

NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "ceph", "glusterfs", "9p")
REFUSAL = "bridging not supported on network root; not starting"  # upstream's text after "network-bridge: "


def network_root(mounts: str, cmdline: str) -> tuple[bool, str | None]:
    """(root is on the network, the server's address if known) from ``/proc/self/mounts`` and ``/proc/cmdline``.

    The root entry is the last one mounted on ``/``. It is a network root when
    its type is NFS-like or its options carry ``_netdev``. The server comes from
    ``nfsroot=[server:]path`` on the kernel command line, else from the mount
    source ``server:/path`` or an ``addr=`` option.
    """
    root = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] == "/":
            root = fields
    if root is None:
        return False, None
    source, fstype, options = root[0], root[2], root[3].split(",")
    if not (fstype.split(".")[0] in NETWORK_FS or "_netdev" in options):
        return False, None
    for word in cmdline.split():
        if word.startswith("nfsroot=") and ":" in word:
            return True, word[len("nfsroot="):].split(":", 1)[0] or None
    for option in options:
        if option.startswith("addr="):
            return True, option[len("addr="):]
    if ":" in source and not source.startswith("["):
        return True, source.split(":", 1)[0] or None
    if source.startswith("[") and "]:" in source:
        return True, source[1:source.index("]")]
    return True, None
