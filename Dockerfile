# smsblast container image.
#   docker build -t smsblast .
#   docker run --rm -v $PWD/config:/etc/smsblast:ro -v smsblast-state:/var/lib/smsblast \
#       -e SMSBLAST_TSEL_PASSWORD=... -e SMSBLAST_ADMIN_TOKEN=... smsblast
# The mounted /etc/smsblast holds smsblast.yaml and campaigns.yaml. Inside a container,
# set `metrics.listen: 0.0.0.0:9464` so Prometheus can scrape it; the admin API stays on
# 127.0.0.1:8081 (the HEALTHCHECK below runs inside the container).
# Checked without a Docker engine by tests/test_dockerfile.py (hadolint, and each command
# of this file run in a clean virtualenv).

# Builder stage: build the wheel from the source tree, nothing else.
FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY smsblast ./smsblast
RUN pip install --no-cache-dir build==1.2.2 && python -m build --wheel --outdir /dist

# Runtime stage: the wheel and its dependencies, run as an unprivileged user.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SMSBLAST_CONFIG=/etc/smsblast/smsblast.yaml
RUN useradd --system --uid 10001 --home-dir /var/lib/smsblast --create-home smsblast
COPY --from=builder /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl
COPY config/ /etc/smsblast/
COPY campaigns.yaml /etc/smsblast/campaigns.yaml
USER 10001
WORKDIR /var/lib/smsblast
VOLUME ["/var/lib/smsblast"]
EXPOSE 9464
# Ready = the engine runs and a bind is up: GET /readyz on the admin API, with its token.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["smsblast", "ctl", "health"]
ENTRYPOINT ["smsblast"]
CMD ["run", "--campaigns", "/etc/smsblast/campaigns.yaml", "--progress", "plain"]
