"""The simulated Xen host (network namespaces, a xenstored on a unix socket, libxl-shaped calls) for tests, demo and benches.

May import: the standard library only; it runs our scripts and Debian's as programs, never imports
xenscripts (an independent observer; setup.cfg ``[importlinter]``).
"""
