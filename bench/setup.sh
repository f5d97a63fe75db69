#!/usr/bin/env bash
# Installs and builds everything `make bench` runs: the Rust peers and load
# generator, the C peer, the Python peers' packages (into .venv), the Node
# addon, and nginx + nchan and redis-server from Debian (when this user may
# install packages).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p tidings-ffi -p tidings-bench
gcc -O2 -std=c11 -Wall -Wextra -Werror bench/peers/c_peer.c -Iinclude \
    target/release/libtidings.a -lpthread -ldl -lm -o target/release/peer_c
.venv/bin/pip install -q -r bench/requirements.txt

packages=()
command -v taskset >/dev/null || packages+=(util-linux)
command -v wrk >/dev/null || packages+=(wrk)  # bench/asgi.py's load generator
[ -x /usr/sbin/nginx ] || packages+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || packages+=(libnginx-mod-nchan)
command -v redis-server >/dev/null || packages+=(redis-server)  # the cluster scenarios' broker
if [ ${#packages[@]} -gt 0 ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
    if "${sudo[@]}" true 2>/dev/null; then
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${packages[@]}" >/dev/null
    else
        echo "bench: cannot install ${packages[*]} (not root, no sudo): those peers are skipped" >&2
    fi
fi
