#!/bin/bash
# Build the chaos program against a build of roomcast:
#   tests/chaos/build.sh BUILD OUTPUT
# (the Makefile builds BUILD/libroomcast.a; this only adds tests/chaos).
set -eu
cd "$(dirname "$0")/../.."
build=${1:?usage: build.sh BUILD OUTPUT}
output=${2:?usage: build.sh BUILD OUTPUT}
pkgs="libczmq libzmq libsodium msgpack"
mkdir -p "$(dirname "$output")"
# shellcheck disable=SC2046,SC2086 # pkg-config's words are meant to split
cc -std=gnu11 -O2 -g -D_GNU_SOURCE \
    -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
    -Wmissing-prototypes -Wformat=2 -Wvla \
    -Ilibclient -Itests/integration $(pkg-config --cflags $pkgs) \
    tests/chaos/chaos.c tests/chaos/core.c tests/integration/harness.c \
    "$build/libroomcast.a" $(pkg-config --libs $pkgs) -lm -lpthread \
    -o "$output"
