#!/usr/bin/env bash
# Builds the release binary as the Dockerfile does, prints its size, and checks that it needs no
# shared library beyond those of the distroless/cc runtime image (glibc's libc, libm, the loader,
# and libgcc_s).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
binary=${CARGO_TARGET_DIR:-target}/release/wolkvox_exporter
echo "release binary: $(stat -c %s "$binary") bytes ($(du -h "$binary" | cut -f1))"

unexpected=$(ldd "$binary" | awk '{print $1}' | grep -vE '^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|/lib64/ld-linux-x86-64\.so\.2)$' || true)
if [[ -n $unexpected ]]; then
  echo "the binary links libraries the distroless/cc image lacks: $unexpected" >&2
  exit 1
fi
"$binary" --version
