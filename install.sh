#!/bin/sh
# Install xenscripts on a Xen host: a venv under $PREFIX, our entry points in
# place of upstream's in $SCRIPT_DIR (upstream's kept as <name>.upstream), and
# the hotplugd socket + service units. Re-running it is safe.
set -eu
PREFIX=${PREFIX:-/opt/xenscripts}
SCRIPT_DIR=${SCRIPT_DIR:-/etc/xen/scripts}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
PYTHON=${PYTHON:-/usr/bin/python3}
SCRIPTS="vif-bridge vif-setup"
here=$(cd "$(dirname "$0")" && pwd)

[ -x "$PREFIX/bin/python" ] || "$PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/pip" install -q --disable-pip-version-check "$here"
"$PREFIX/bin/python" -m compileall -q "$PREFIX/lib" >/dev/null

# The pure-Python package once more outside the venv: the entry points forward to
# hotplugd from here with whatever /usr/bin/python3 is, whichever Python built the venv.
rm -rf "$PREFIX/src.new" && mkdir -p "$PREFIX/src.new"
cp -r "$here/xenscripts" "$PREFIX/src.new/"
find "$PREFIX/src.new" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$PREFIX/src" && mv "$PREFIX/src.new" "$PREFIX/src"

mkdir -p "$SCRIPT_DIR"
for name in $SCRIPTS; do
    target="$SCRIPT_DIR/$name"
    if [ -e "$target" ] && [ ! -L "$target" ] && [ ! -e "$target.upstream" ] \
            && ! grep -q 'xenscripts entry point' "$target"; then
        mv "$target" "$target.upstream"
    fi
    # each entry file names its command: copies and symlinks of it run the same command
    sed -e "s|@SRC@|$PREFIX/src|" -e "s|@VENV@|$PREFIX|" "$here/bin/$name" > "$target.new"
    chmod 755 "$target.new"
    mv -f "$target.new" "$target"
done
rm -f "$SCRIPT_DIR/xenscripts-run"

if [ -d /run/systemd/system ]; then
    for unit in xenscripts-hotplugd.socket xenscripts-hotplugd.service; do
        sed "s|@VENV@|$PREFIX|" "$here/systemd/$unit" > "$UNIT_DIR/$unit"
    done
    systemctl daemon-reload
    systemctl enable --now xenscripts-hotplugd.socket
    echo "xenscripts: hotplugd socket-activated (systemctl status xenscripts-hotplugd.socket)"
else
    echo "xenscripts: no systemd; start '$PREFIX/bin/xenscripts-hotplugd' from your init (optional)"
fi
echo "xenscripts: installed $SCRIPTS into $SCRIPT_DIR (originals kept as *.upstream)"
