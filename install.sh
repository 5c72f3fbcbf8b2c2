#!/bin/sh
cd "$(dirname "$0")" && exec "${PYTHON:-/usr/bin/python3}" -E -s -m xenscripts.admin.main install "$@"
