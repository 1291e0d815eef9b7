#!/bin/sh
# The SDK example builds out of tree against the *installed* SDK, using nothing
# but pkg-config, and the daemon loads it.
. "$(dirname "$0")/lib.sh"

DEST="$T/root"
make -C "$top_builddir" -s install DESTDIR="$DEST" >"$T/install.log" 2>&1 || { cat "$T/install.log"; not_ok "make install"; finish; }
PCDIR=$(dirname "$(find "$DEST" -name mailhub-plugin.pc | head -1)")
check "make install installs mailhub-plugin.pc" [ -f "$PCDIR/mailhub-plugin.pc" ]
check "make install installs the SDK headers" sh -c "find '$DEST' -path '*/mailhub/plugin.h' | grep -q ."

cp -r "$top_srcdir/sdk/examples/hello" "$T/hello"
chmod -R u+w "$T/hello"
export PKG_CONFIG_PATH="$PCDIR" PKG_CONFIG_SYSROOT_DIR="$DEST"
check "the example builds with pkg-config alone" make -C "$T/hello" -s
check "the example module exports only its descriptor" \
    sh -c "[ -f '$T/hello/hello.so' ] && ! nm -D --defined-only '$T/hello/hello.so' | awk '{print \$3}' | grep -v -E '^(_.*|mh_plugin_descriptor|hello_LTX_mh_plugin_descriptor)$' | grep -q ."

INSTALLED=$(find "$DEST" -name mailhubd -type f | head -1)
check "make install installs mailhubd" [ -x "$INSTALLED" ]
"$INSTALLED" -P "$T/hello" --list-plugins >"$T/list.out" 2>"$T/list.err" || true
check "mailhubd lists the out-of-tree plugin" grep -Eq '^notifier +hello ' "$T/list.out"

cat >"$T/hello.yaml" <<YAML
daemon: {data_dir: $T/data, shutdown_timeout: 3s}
plugins: {path: [$T/hello, $top_builddir/plugins]}
store: {plugin: sqlite}
notifiers:
  hi: {plugin: hello}
YAML
"$top_builddir/core/mailhubd" -c "$T/hello.yaml" -L debug 2>"$T/stderr" &
DAEMON_PID=$!
check "the out-of-tree plugin receives events" wait_for 15 grep -q '\[notifier/hi\]' "$T/stderr"
kill -TERM "$DAEMON_PID"; rc=0; wait "$DAEMON_PID" || rc=$?; DAEMON_PID=""
check "the daemon with the example plugin stops cleanly" [ "$rc" -eq 0 ]
finish
