"""The simulated Xen host (network namespaces, a xenstored on a unix socket, libxl-shaped calls) for tests, demo and benches."""
