# Cadence's image: the wheel (not the source tree) installed into a slim Python, run as a
# fixed numeric non-root user. The embedded Redis stays installed with the wheel's
# dependencies, but production settings refuse it: compose points CADENCE_REDIS_URL at Redis.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cadence ./cadence
COPY templates ./templates
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CADENCE_STATE_DIR=/var/lib/cadence
COPY --from=build /wheels /wheels
RUN pip install /wheels/cadence-*.whl \
    && rm -rf /wheels \
    && groupadd --gid 10001 cadence \
    && useradd --uid 10001 --gid 10001 --home-dir /var/lib/cadence --no-create-home \
       --shell /usr/sbin/nologin cadence \
    && mkdir -p /var/lib/cadence \
    && chown 10001:10001 /var/lib/cadence
USER 10001:10001
WORKDIR /var/lib/cadence
EXPOSE 8000
ENTRYPOINT ["cadence"]
CMD ["--help"]
