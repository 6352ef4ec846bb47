# syntax=docker/dockerfile:1
# One image for every role: `web` (gunicorn), `worker` (the job worker) and `migrate` (schema upgrade).
#   docker build -t digitlify-marketplace .
#   docker run --env-file .env digitlify-marketplace web|worker|migrate

# 1. Front-end assets from their npm packages (the same files `make assets` installs)
FROM node:20-bookworm-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY scripts/vendor-assets.sh scripts/
RUN mkdir -p app/static && bash scripts/vendor-assets.sh

# 2. Python dependencies built into a virtual environment (compilers stay in this stage)
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY app app
# install the project to pull its dependencies, then drop the project itself: the code runs from /srv/app
RUN /opt/venv/bin/pip install . && /opt/venv/bin/pip uninstall -y digitlify-marketplace

# 3. The runtime: no compilers, a non-root user, the source and the assets
FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production \
    GUNICORN_BIND=0.0.0.0:8000
RUN groupadd --system --gid 10001 app && useradd --system --uid 10001 --gid app --home-dir /srv/app app
WORKDIR /srv/app
COPY --from=build /opt/venv /opt/venv
COPY --chown=app:app app app
COPY --chown=app:app migrations migrations
COPY --chown=app:app gunicorn.conf.py deploy/entrypoint.sh ./
COPY --from=assets --chown=app:app /src/app/static/vendor app/static/vendor
RUN mkdir -p instance && chown app:app instance
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/health/live', timeout=4).status != 200)"]
ENTRYPOINT ["sh", "/srv/app/entrypoint.sh"]
CMD ["web"]
