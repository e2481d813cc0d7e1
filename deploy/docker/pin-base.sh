#!/bin/sh
# Pin deploy/docker/Dockerfile's base to the digest debian:bookworm-slim has
# now (the multi-platform index), then rebuild. Needs one of docker buildx,
# crane or skopeo, and the registry. Run it on a schedule: a pinned base
# gets Debian's security fixes only when its digest moves.
#   deploy/docker/pin-base.sh [IMAGE]    (default debian:bookworm-slim)
set -eu
image=${1:-debian:bookworm-slim}
dockerfile=$(dirname "$0")/Dockerfile
if command -v crane >/dev/null 2>&1; then
    digest=$(crane digest "$image")
elif command -v skopeo >/dev/null 2>&1; then
    digest=$(skopeo inspect --format '{{.Digest}}' "docker://$image")
elif command -v docker >/dev/null 2>&1; then
    digest=$(docker buildx imagetools inspect "$image" | sed -n 's/^Digest: *//p' | head -n1)
else
    echo "pin-base.sh: needs crane, skopeo or docker buildx" >&2
    exit 1
fi
case "$digest" in
sha256:[0-9a-f]*) ;;
*)
    echo "pin-base.sh: no digest for $image (got '$digest')" >&2
    exit 1
    ;;
esac
sed -i "s/^ARG DEBIAN_DIGEST=sha256:[0-9a-f]*$/ARG DEBIAN_DIGEST=$digest/" "$dockerfile"
grep -n '^ARG DEBIAN_DIGEST=' "$dockerfile"
