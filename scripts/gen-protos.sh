#!/usr/bin/env bash
# Regenerates the committed Swift code for every .proto under Protos/. CI never runs this; run it
# after changing a .proto and commit both.
#
#   scripts/gen-protos.sh                 regenerate from the committed Protos/
#   scripts/gen-protos.sh --refresh-etcd  first re-extract etcd's protos from Debian's
#                                         golang-etcd-server-dev package (the etcd we test against)
#
# protoc comes from apt (protobuf-compiler); the two plugins are built from this package's own
# dependencies (swift-protobuf, grpc-swift-protobuf) on a separate scratch path, never through the
# SwiftPM build plugin (which compiles protoc from C++ source for 15+ minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if ! command -v protoc > /dev/null; then
    apt-get install -y -qq --no-install-recommends protobuf-compiler
fi

if [ "${1:-}" = "--refresh-etcd" ]; then
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    (cd "$TMP" && apt-get download golang-etcd-server-dev > /dev/null && dpkg -x golang-etcd-server-dev_*.deb x)
    SRC="$TMP/x/usr/share/gocode/src/go.etcd.io/etcd"
    # Strip the gogoproto and grpc-gateway annotations: Go-only options the Swift generators don't need.
    strip() {
        sed -e '/gogoproto/d' -e '/google\/api\/annotations/d' -e '/option (google.api.http)/,/^    };/d' "$1"
    }
    for f in etcdserver/etcdserverpb/rpc.proto mvcc/mvccpb/kv.proto auth/authpb/auth.proto; do
        mkdir -p "Protos/etcd/$(dirname "$f")"
        { echo "// From etcd $(dpkg-deb -f "$TMP"/golang-etcd-server-dev_*.deb Version) (Debian golang-etcd-server-dev), $f;"
          echo "// gogoproto and google.api.http annotations stripped by scripts/gen-protos.sh --refresh-etcd."
          strip "$SRC/$f"; } > "Protos/etcd/$f"
    done
fi

SCRATCH=.build-protoc
swift build -q --scratch-path "$SCRATCH" --product protoc-gen-swift
swift build -q --scratch-path "$SCRATCH" --product protoc-gen-grpc-swift-2
BIN=$(swift build --scratch-path "$SCRATCH" --show-bin-path)

generate() {   # generate OUTDIR VISIBILITY GRPC-OPTIONS PROTO...
    local out=$1 visibility=$2 grpc_opts=$3
    shift 3
    rm -f "$out"/*.pb.swift "$out"/*.grpc.swift
    mkdir -p "$out"
    protoc \
        --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" \
        --plugin=protoc-gen-grpc-swift-2="$BIN/protoc-gen-grpc-swift-2" \
        -I Protos \
        --swift_opt=Visibility="$visibility" --swift_opt=FileNaming=DropPath \
        --swift_out="$out" \
        --grpc-swift-2_opt=Visibility="$visibility",FileNaming=DropPath"$grpc_opts" \
        --grpc-swift-2_out="$out" \
        "$@"
}

# etcd v3 client (StoreEtcd): client stubs only.
generate Sources/StoreEtcd/Generated Internal ",Server=False" \
    Protos/etcd/etcdserver/etcdserverpb/rpc.proto Protos/etcd/mvcc/mvccpb/kv.proto Protos/etcd/auth/authpb/auth.proto
# kv.proto and auth.proto define no service: their empty .grpc.swift files are not kept.
find Sources/StoreEtcd/Generated -name '*.grpc.swift' -size -600c -delete

# The io-engine API (IOEngineAPI): client and server, public.
if compgen -G "Protos/halyard/ioengine/v1/*.proto" > /dev/null; then
    generate Sources/IOEngineAPI/Generated Public "" Protos/halyard/ioengine/v1/*.proto
fi
echo "generated: $(cd "$ROOT" && git status --short -- Sources/*/Generated | wc -l) changed files"
