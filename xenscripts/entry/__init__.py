"""Process edges: the thin client, the hotplugd wire format, the entry-file format (standard library only)."""
