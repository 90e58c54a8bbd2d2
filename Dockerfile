# syntax=docker/dockerfile:1
#
# release-bot image.   docker build -t release-bot:0.1.0 .
#                      docker run --env-file release-bot.env -p 3000:3000 -v release-bot-data:/data release-bot:0.1.0
#
# Layout: /app holds bot/, installed in editable mode into /opt/venv. The default checklist and the migrations are
# package data inside bot/ (bot/checklist/deployment.yaml, bot/db/migrations/), so nothing else is copied.

# The base image by digest: a tag moves, a digest does not. This is the multi-platform index of
# python:3.11-slim-bookworm (Python 3.11.16 on Debian bookworm, built 2026-08-25) as the Docker Official Images'
# docker-library/repo-info records it (repos/python/remote/3.11-slim-bookworm.md); no registry is reachable from
# where this was written, so it was not pulled here. To refresh it (a new Python patch or Debian security fixes):
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'
# (or `crane digest python:3.11-slim-bookworm`), put the digest below, build, and run the tests in the image.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b

# ---------------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /app

# Every dependency (and the setuptools the project is built with) exactly as requirements.lock pins it, each file
# checked against its hash, in its own layer: a code-only change installs nothing again.
COPY requirements.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-deps --require-hashes -r requirements.lock

COPY bot/ bot/

# --no-deps --no-build-isolation: nothing beyond the lock is fetched, not even a build backend.
# The last line fails the build if the package lost its shipped checklist or its migrations.
COPY pyproject.toml ./
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation -e /app \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/python -m compileall -q /app/bot \
 && /opt/venv/bin/python -c "from bot.db.migrate import head_revision; from bot.checklist.loading import default_checklist_path, load_checklist; head_revision(); load_checklist(default_checklist_path())"

# ---------------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="release-bot" \
      org.opencontainers.image.description="Slack bot that runs a deployment checklist as an audited release workflow"

# DATABASE_URL defaults to a file on the /data volume: the only place the non-root user may write besides /tmp.
# HOME: slack_sdk calls Path.home() at import, which fails for a UID without a passwd entry (OpenShift, or a
# runAsUser other than 10001); /tmp is writable (an emptyDir in Kubernetes).
# MPLCONFIGDIR: matplotlib (report charts) caches fonts there, since the root FS may be read-only.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:${PATH}" \
    HOME=/tmp \
    DATABASE_URL="sqlite:////data/release-bot.db" \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOST=0.0.0.0 \
    PORT=3000

# A font that draws Hangul: report charts title a Korean checklist's stages in Korean (bot/slack/charts.py falls back
# to a Latin title without one). Nanum is Debian's own Korean font package, ~10 MB.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-nanum \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 release-bot \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin release-bot \
 && install -d -o 10001 -g 10001 -m 0750 /data

# Owned by root and not writable by the bot: code and migrations cannot be changed from inside the container.
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

WORKDIR /app
VOLUME ["/data"]
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 3000

# Liveness only: /healthz also needs the database, and a database outage should not get the container restarted.
# The HTTP server runs in Socket Mode too, where /livez also fails while the socket to Slack is down.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('PORT', '3000'), timeout=4)"]

ENTRYPOINT ["release-bot"]
CMD ["serve"]
