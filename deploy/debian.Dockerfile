# deploy/Dockerfile's runtime stage on a base image made from Debian's packages
# (bookworm, python3 3.11): built by deploy/debian-image.sh (`just image-debian`), which
# passes the imported base and a context holding the wheel and its dependencies as wheels,
# so that this build needs no network. Keep the two runtime stages alike.

ARG BASE
FROM ${BASE}
ARG WHEEL
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/ssmd \
    && /opt/ssmd/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \
        --find-links /tmp/wheels "/tmp/wheels/${WHEEL}" "dumb-init>=1.2.5" \
    && rm -rf /tmp/wheels \
    && groupadd --system --gid 10001 ssmd \
    && useradd --system --uid 10001 --gid ssmd --home-dir /var/lib/ssmd --create-home ssmd \
    && install -d -o ssmd -g ssmd /var/lib/ssmd/data
ENV PATH=/opt/ssmd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SSMD_CONFIG_DIR=/etc/ssmd/exchanges \
    SSMD_DATA_DIR=/var/lib/ssmd/data
USER 10001:10001
WORKDIR /var/lib/ssmd
VOLUME ["/var/lib/ssmd/data"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-m", "ssmd.deploy.healthcheck"]
ENTRYPOINT ["dumb-init", "--", "ssmd"]
CMD ["--help"]
