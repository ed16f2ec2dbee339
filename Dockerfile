FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY cadence ./cadence
COPY templates ./templates
RUN pip install --no-cache-dir -e . \
    && useradd --create-home cadence
USER cadence
ENV CADENCE_STATE_DIR=/home/cadence/state
ENTRYPOINT ["cadence"]
CMD ["--help"]
