# The shipped image: fleetscope built with its default "bundled" feature
# (DuckDB compiled in and linked statically; about an hour on 2 cores, a
# few minutes on a big builder), on a distroless base with glibc and
# libstdc++, running as the non-root user the Kubernetes manifests expect.
#   docker build -t REGISTRY/fleetscope:0.1.0 .
# Not built by scripts/test.sh: the CI machine has no container runtime.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin fleetscope

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/fleetscope /usr/local/bin/fleetscope
USER 65532:65532
EXPOSE 9470
ENTRYPOINT ["/usr/local/bin/fleetscope"]
CMD ["serve", "--config", "/etc/fleetscope/fleetscope.toml"]
