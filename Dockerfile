# syntax=docker/dockerfile:1
# The one maskgate binary (gateway, sidecar, `ca`, `iptables`, `check-config`, `mock-provider`) in a small image.
#
#   docker build -t maskgate .
#
# Runs as UID/GID 1337 by default: the sidecar's identity, which `maskgate iptables install` exempts from capture
# (--proxy-uid/--proxy-gid 1337), and an unprivileged user for the gateway. The iptables init step is the only thing
# that runs as root, with CAP_NET_ADMIN and nothing else (see deploy/compose and deploy/kubernetes).

FROM rust:1-bookworm AS build
WORKDIR /src
# Manifests first so that the dependency download is cached apart from the sources.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY crates ./crates
# No debug info in the shipped binary (the workspace's release profile keeps some for profiling).
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p maskgate \
    && install -m 0755 target/release/maskgate /usr/local/bin/maskgate

FROM debian:bookworm-slim AS runtime
# ca-certificates: the system roots `maskgate ca env` bundles with the sidecar's CA (the gateway itself carries
# webpki roots). iptables: `maskgate iptables install` runs iptables/ip6tables (nft backend on bookworm, so
# CAP_NET_ADMIN is enough).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates iptables \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 1337 maskgate \
    && useradd --system --uid 1337 --gid 1337 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin maskgate \
    && install -d -o 1337 -g 1337 -m 0750 /etc/maskgate /etc/maskgate/ca
COPY --from=build /usr/local/bin/maskgate /usr/local/bin/maskgate
USER 1337:1337
# proxy, gateway admin (/metrics, /health/*), sidecar capture/explicit proxy, sidecar admin
EXPOSE 8000 8001 15001 15000
ENTRYPOINT ["/usr/local/bin/maskgate"]
CMD ["gateway"]
