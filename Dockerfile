ARG ARCH="amd64"
ARG OS="linux"
FROM quay.io/prometheus/busybox-${OS}-${ARCH}:latest
LABEL maintainer="veeam_failover_exporter maintainers"

ARG ARCH="amd64"
ARG OS="linux"
COPY .build/${OS}-${ARCH}/veeam_failover_exporter /bin/veeam_failover_exporter
COPY examples/veeam_failover_exporter.yml /etc/veeam_failover_exporter/veeam_failover_exporter.yml

EXPOSE      9852
USER        nobody
WORKDIR     /var/lib/veeam_failover_exporter
ENTRYPOINT  [ "/bin/veeam_failover_exporter" ]
CMD         [ "--config.file=/etc/veeam_failover_exporter/veeam_failover_exporter.yml" ]
