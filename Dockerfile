# syntax=docker/dockerfile:1
#
#   docker build -t veeam-failover-exporter .          # or: make docker
#   docker run -p 9852:9852 veeam-failover-exporter --demo
#   docker run -p 9852:9852 -v /etc/veeam_failover_exporter:/etc/veeam_failover_exporter:ro \
#       -v veeam-state:/var/lib/veeam_failover_exporter veeam-failover-exporter
#
# The binary is cross-compiled on the build machine for the image's platform
# (docker buildx build --platform linux/amd64,linux/arm64 works without emulation).

ARG TARGETOS TARGETARCH

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH
# The version comes from the VERSION file; git is not in the build context.
ARG REVISION=unknown BRANCH=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH make build BIN=/out/veeam_failover_exporter TOOL=/out/veeam_failover_tool \
        REVISION=$REVISION BRANCH=$BRANCH \
    && mkdir -p /out/state/veeam_failover_exporter

# The automatic platform arguments name the base image built for the target.
FROM quay.io/prometheus/busybox-${TARGETOS}-${TARGETARCH}:latest
LABEL org.opencontainers.image.title="veeam_failover_exporter" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/veeam-failover/veeam_failover_exporter"

COPY --from=build /out/veeam_failover_exporter /bin/veeam_failover_exporter
COPY --from=build /out/veeam_failover_tool /bin/veeam_failover_tool
# The example config and its secret files ("change-me"), so that the default
# command starts (dry-run, example targets unreachable). Mount your own
# directory over /etc/veeam_failover_exporter.
COPY examples/veeam_failover_exporter.yml /etc/veeam_failover_exporter/veeam_failover_exporter.yml
COPY examples/secrets/ /etc/veeam_failover_exporter/secrets/
COPY LICENSE /LICENSE
# The trigger's state file and audit log live here, owned by the image's user.
COPY --from=build --chown=65534:65534 /out/state/ /var/lib/

USER       65534:65534
VOLUME     [ "/var/lib/veeam_failover_exporter" ]
WORKDIR    /var/lib/veeam_failover_exporter
EXPOSE     9852
ENTRYPOINT [ "/bin/veeam_failover_exporter" ]
CMD        [ "--config.file=/etc/veeam_failover_exporter/veeam_failover_exporter.yml" ]
