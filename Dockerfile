# Pemba in a container: a static binary on an empty (scratch) base, run as
# an unprivileged user. Build from the repository root:
#
#   docker build --build-arg VERSION=v0.5.0 -t pemba:v0.5.0 .
#   docker run -p 50051:50051 -v pemba-data:/data -v /etc/pemba:/etc/pemba:ro pemba:v0.5.0
#
# docs/operations.md ("Installing") explains the arguments, the keys file
# and the release build this follows.

# The builder's Go version is the one go.mod names (TestDockerfileRules
# checks that they agree).
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
# Static (no cgo), reproducible paths (-trimpath), the version stamped into
# main.version; the commit and its time come from the VCS stamp Go adds.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/pemba ./cmd/pemba \
	&& mkdir -p /out/data

FROM scratch
# CA roots, for HTTPS to an identity provider's JWKS or a TLS PostgreSQL.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build /out/pemba /usr/local/bin/pemba
# 65532 is "nonroot" by convention (distroless); scratch has no user
# database, so the ids are numeric.
USER 65532:65532
ENV PEMBA_DATA_DIR=/data
VOLUME /data
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/pemba"]
# On a non-loopback address pemba refuses to serve without keys: mount a
# keys file at /etc/pemba/keys (or override the command).
CMD ["serve", "-listen", "0.0.0.0:50051", "-keys-file", "/etc/pemba/keys"]
