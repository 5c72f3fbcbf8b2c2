"""Process edges: the thin client, the hotplugd wire format, the entry-file format (standard library only).

May import: core. The package beyond the standard library only through ``commands.inprocess``, by name.
"""
