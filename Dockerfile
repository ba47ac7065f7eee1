# ---- build ----
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
    && install -m 0755 target/release/sshpipe /usr/local/bin/sshpipe

# ---- runtime ----
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 sshpipe \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin sshpipe \
    && mkdir -p /data \
    && chown sshpipe:sshpipe /data \
    && chmod 0700 /data
COPY --from=builder /usr/local/bin/sshpipe /usr/local/bin/sshpipe

ENV SSHPIPE_DATA_DIR=/data \
    SSHPIPE_SSH_LISTEN=0.0.0.0:2222 \
    SSHPIPE_HTTP_LISTEN=0.0.0.0:8080

USER sshpipe
WORKDIR /data
VOLUME ["/data"]
EXPOSE 2222 8080

ENTRYPOINT ["/usr/local/bin/sshpipe"]
CMD ["serve"]
