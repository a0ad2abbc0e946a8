#!/usr/bin/env bash
# The Node runtime interface client from npm (aws-lambda-ric), for `rapid check` and the
# drop-in tests. It builds curl and aws-lambda-cpp from source at install time (about
# 2.5 minutes), so it needs a C++ toolchain, the autotools and node's headers. Installed once into
# .cache/node-ric/ (git ignores it); the step does nothing when it is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.cache/node-ric
if [ -x "$dest/node_modules/.bin/aws-lambda-ric" ]; then
  echo "node-ric: already installed in $dest" >&2
  exit 0
fi
# tool -> the Debian package that provides it; only missing ones are installed (npm comes
# with NodeSource's nodejs where that is installed, and Debian's npm would conflict with it).
declare -A pkg=([g++]=g++ [make]=make [cmake]=cmake [autoconf]=autoconf [automake]=automake
                [libtoolize]=libtool [unzip]=unzip [python3]=python3 [npm]=npm)
need=()
for tool in "${!pkg[@]}"; do
  command -v "$tool" >/dev/null || need+=("${pkg[$tool]}")
done
bash "$(dirname "$0")/../apt-install" "node-ric" "${need[@]}"
# node-gyp builds the addon against node's headers; without them it would download them
# from nodejs.org, which CI cannot reach. Debian's nodejs keeps them in libnode-dev.
[ -f /usr/include/node/node.h ] || bash "$(dirname "$0")/../apt-install" "node-ric (node's headers)" libnode-dev
# aws-lambda-ric 4 declares node >= 22; on an older node take the newest 3.x, which runs there.
major=$(node -p 'process.versions.node.split(".")[0]')
package=aws-lambda-ric
if [ "$major" -lt 22 ]; then package=aws-lambda-ric@3; fi
mkdir -p "$dest"
[ -f "$dest/package.json" ] || echo '{"name": "rapid-node-ric", "private": true}' > "$dest/package.json"
(cd "$dest" && npm install --no-audit --no-fund --nodedir=/usr "$package")
if [ ! -x "$dest/node_modules/.bin/aws-lambda-ric" ]; then
  echo "node-ric: npm install finished but $dest/node_modules/.bin/aws-lambda-ric is missing" >&2
  exit 1
fi
echo "node-ric: installed in $dest" >&2
