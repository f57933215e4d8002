# smsblast container image.
#   docker build -t smsblast .
#   docker run --rm -v $PWD/config:/etc/smsblast:ro -e SMSBLAST_TSEL_PASSWORD=... smsblast run
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
USER smsblast
WORKDIR /var/lib/smsblast
VOLUME ["/var/lib/smsblast"]
EXPOSE 9464
ENTRYPOINT ["smsblast"]
CMD ["--help"]
