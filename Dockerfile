# nwcd serve in a container.  See docs/operating.md ("Docker").
#
#   docker build -t nwcd .
#   docker run -d --name nwcd --stop-timeout 30 -v nwcd-data:/data \
#       -e NWCD_RELAYS=wss://relay.example.com nwcd
#   docker exec -it nwcd nwcd connection create --name my-app
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package build needs (pyproject.toml names README.md and LICENSE).
COPY pyproject.toml README.md LICENSE /tmp/nwcd/
COPY src /tmp/nwcd/src
RUN pip install '/tmp/nwcd[postgres]' && rm -rf /tmp/nwcd

# A non-root user; the data dir holds wallet keys (nwcd keeps it 0700, its files 0600).
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin nwcd \
    && mkdir -p /data && chown nwcd:nwcd /data && chmod 0700 /data

ENV NWCD_DATA_DIR=/data
VOLUME ["/data"]
USER nwcd
WORKDIR /data

# Relays from NWCD_RELAYS (comma-separated); config from NWCD_CONFIG or NWCD_* variables.
CMD ["nwcd", "serve"]
