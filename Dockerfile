# syntax=docker/dockerfile:1
# Kickoff's image: `kickoff serve` by default; the same image runs `kickoff worker` and `kickoff db upgrade`.
# See docs/deploy.md. The install steps are README's "Deploy" install command, word for word (a test checks).

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN python3 -m venv /opt/kickoff
RUN /opt/kickoff/bin/pip wheel --no-deps --wheel-dir dist . && /opt/kickoff/bin/pip install dist/kickoff_bot-*.whl

FROM python:3.11-slim
# git: the local runner clones and pushes with it; bubblewrap: the agent sandbox (docs/security.md).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates bubblewrap \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 kickoff \
    && useradd --system --uid 10001 --gid kickoff --home-dir /home/kickoff --create-home --shell /usr/sbin/nologin kickoff
COPY --from=builder /opt/kickoff /opt/kickoff
ENV PATH=/opt/kickoff/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=3000
# The embedded SQLite database (the default DATABASE_URL) lives here; mount a volume to keep it.
WORKDIR /data
RUN chown kickoff:kickoff /data
USER kickoff
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]
CMD ["kickoff", "serve", "--host", "0.0.0.0"]
