#!/bin/sh
# Builds the static server binary. This is the one build line the Dockerfile
# runs, so it is tested outside Docker too: ops/server_test.go builds with it
# and runs the binary, ops/flytoml_test.go checks the Dockerfile calls it.
#   VERSION=v1.2.3 sh ops/build.sh [output]
set -eu
cd "$(dirname "$0")/.."
VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o "${1:-party-sockets}" .
