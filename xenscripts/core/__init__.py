"""The core every layer uses: errors, conf, args, validate, log, lock, state files, the request (stdlib only).

May import: the standard library only.
"""
