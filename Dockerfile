# syntax=docker/dockerfile:1
# Paraply: a FHIR R4 server. Build: docker build -t paraply .

FROM rust:1.94-bookworm AS builder
WORKDIR /src
COPY . .
# The registry cache speeds up rebuilds; target/ stays in the layer so the binary can be copied.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked -p paraply-server

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 paraply \
    && useradd --system --uid 10001 --gid paraply --home-dir /var/lib/paraply --create-home paraply
COPY --from=builder /src/target/release/paraply /usr/local/bin/paraply
# The default database (sqlite://paraply-data/paraply.db) is relative to this directory.
WORKDIR /var/lib/paraply
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["paraply"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
