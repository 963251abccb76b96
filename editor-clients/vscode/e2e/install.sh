#!/usr/bin/env bash
# Installs the end-to-end test's packages (code-server, playwright-core) into a per-user cache
# outside the repo ($LEDEX_CACHE_DIR/vscode-e2e/<hash of the lock file>, like the Makefile's other
# built artefacts) and links e2e/node_modules to it: a second run, or a fresh clone, builds nothing.
#
# - code-server 4.100.3 is the last release that runs on Node 20 (4.103+ need Node 22, later 24);
# - its postinstall builds VS Code's native modules with node-gyp: it needs build-essential,
#   pkg-config, libkrb5-dev (kerberos) and the Node headers (/usr/include/node, Debian's nodejs);
#   it refuses to run as root unless npm says `unsafe-perm` (an npm 6 option: we set the variable),
#   and node-pty's postinstall runs `npx node-gyp`, which must not stop to ask (npm_config_yes);
# - @vscode/ripgrep's postinstall downloads rg from GitHub, which is not reachable here: we seed
#   its download cache with a tarball of Debian's /usr/bin/rg (apt package ripgrep, also 13.0.0).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${LEDEX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ledex}/vscode-e2e"
key="$(cat "$here/package.json" "$here/package-lock.json" "$here/install.sh" | sha256sum | cut -c1-16)"
target="$cache_root/$key"

link() {
  rm -rf "$here/node_modules"
  ln -s "$target/node_modules" "$here/node_modules"
}

if [ -x "$target/node_modules/.bin/code-server" ] && [ -f "$target/.complete" ]; then
  link
  exit 0
fi

RG_PACKAGE=1.15.11     # @vscode/ripgrep in code-server 4.100.3's lib/vscode/npm-shrinkwrap.json
RG_RELEASE=v13.0.0-10  # its prebuilt ripgrep release
case "$(uname -m)" in
  x86_64) RG_TARGET=x86_64-unknown-linux-musl ;;
  aarch64) RG_TARGET=aarch64-unknown-linux-musl ;;
  *) RG_TARGET=unknown ;;
esac
rg_cache="$(node -p 'require("os").tmpdir()')/vscode-ripgrep-cache-$RG_PACKAGE"
asset="$rg_cache/ripgrep-$RG_RELEASE-$RG_TARGET.tar.gz"
if [ ! -s "$asset" ]; then
  if ! command -v rg >/dev/null; then
    echo "ripgrep (rg) is missing: apt-get install ripgrep" >&2
    exit 1
  fi
  mkdir -p "$rg_cache"
  staging="$(mktemp -d)"
  cp "$(command -v rg)" "$staging/rg"
  tar -czf "$asset.tmp" -C "$staging" rg && mv "$asset.tmp" "$asset"
  rm -rf "$staging"
fi

# node-gyp: build against the installed Node's headers instead of downloading them.
if [ -z "${npm_config_nodedir:-}" ]; then
  nodedir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  if [ -f "$nodedir/include/node/node.h" ]; then export npm_config_nodedir="$nodedir"; fi
fi
export npm_config_unsafe_perm=true
# node-pty's postinstall runs `npx node-gyp ...`: let npx fetch it without asking.
export npm_config_yes=true

echo "installing code-server and playwright-core into $target (once; several minutes: native modules)"
rm -rf "$target.tmp"
mkdir -p "$target.tmp"
cp "$here/package.json" "$here/package-lock.json" "$target.tmp/"
(cd "$target.tmp" && npm ci --no-audit --no-fund --loglevel=error)
test -x "$target.tmp/node_modules/.bin/code-server"
touch "$target.tmp/.complete"
rm -rf "$target"
mv "$target.tmp" "$target"
link
