# wolkvox_exporter container image.
#   docker build -t wolkvox_exporter:0.1.0 --build-arg REVISION=$(git rev-parse --short=12 HEAD) .
#   docker run -p 10042:10042 wolkvox_exporter:0.1.0 --demo
# A real token comes from a mounted file (--wolkvox.token-file) or the environment (WOLKVOX_TOKEN);
# nothing secret is ever part of the image (.dockerignore admits only the sources). A mounted file
# keeps its owner and mode from the host, and the process runs as uid 65532: give the file to that
# uid (chown 65532:65532, mode 0400) or its group (chgrp 65532, mode 0440), or it cannot be read.
# No org.opencontainers.image.source label: the project publishes no public repository address.
# State (docs/state-and-backfill.md): the working directory is /, so the default --storage.path,
# data/, is /data: a volume owned by uid 65532, writable with a read-only root filesystem. Keep it
# across container re-creation with a named volume (-v wolkvox-exporter-data:/data); a host directory
# mounted there must belong to uid 65532 (install -d -m 0700 -o 65532 -g 65532 /srv/wolkvox/state).

# Builder: the Rust toolchain this project is tested with, on the Debian release the runtime uses.
FROM docker.io/library/rust:1.95.0-slim-bookworm AS builder
ARG REVISION=unknown
ENV WOLKVOX_REVISION=${REVISION}
WORKDIR /src
# README.md and docs/: the binary serves them at /README.md and /docs/*.md (include_str! in
# src/serve/router.rs).
COPY Cargo.toml Cargo.lock build.rs README.md ./
COPY docs ./docs
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked \
    && cp target/release/wolkvox_exporter /wolkvox_exporter \
    && install -d -m 0700 -o 65532 -g 65532 /data

# Runtime: distroless "cc" carries exactly the glibc libraries the binary links (libc, libm,
# libgcc_s) and CA certificates, and no shell or package manager. "nonroot" runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG REVISION=unknown
LABEL org.opencontainers.image.title="wolkvox_exporter" \
      org.opencontainers.image.description="Prometheus exporter for Wolkvox billing usage (gamification licenses)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /wolkvox_exporter /usr/local/bin/wolkvox_exporter
# The state directory; distroless has no shell to create it, so it comes from the build stage. A new
# named volume mounted here starts as a copy of it, owner included.
COPY --from=builder --chown=65532:65532 /data /data
# distroless' nonroot sets /home/nonroot; / makes the default data/ the volume below.
WORKDIR /
VOLUME /data
USER 65532:65532
EXPOSE 10042
ENTRYPOINT ["/usr/local/bin/wolkvox_exporter"]
