# grok-video-bot: the bot in a slim image, as an unprivileged user, with all its state in the /data volume.
#   docker compose up -d --build        (see compose.yaml and the README's "Docker and Compose")
# Python 3.11: what pyproject.toml's requires-python asks for. PyAV's wheels bring their own FFmpeg.
# MPLCONFIGDIR: matplotlib (the /usage chart) wants a writable cache, and the user's home /app is not.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ENV_FILE=none \
    DATABASE_PATH=/data/grok-video-bot.sqlite3 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app
RUN useradd --uid 1000 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin bot \
 && mkdir -p /data \
 && chown bot:bot /data

COPY pyproject.toml README.md LICENSE bot.py ./
COPY cogs ./cogs
COPY services ./services
# Fail the build if the wheel lacks the encoders the bot re-encodes with (H.264 and AAC, to fit Discord's limit).
RUN pip install . \
 && python -c "import av; av.codec.Codec('libx264', 'w'); av.codec.Codec('aac', 'w')"

USER bot
VOLUME ["/data"]
EXPOSE 8080
# Slim images have no curl: urlopen raises on a 503 (or no answer), so the check fails unless /healthz says ok.
# It asks the port the bot serves (HTTP_PORT, 8080 unless the container is given another); none set: unhealthy.
# Three failures in a row (about 90 s) mark the container unhealthy: a gateway reconnect of seconds never does.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ['HTTP_PORT'], timeout=4)"]
# SIGTERM (docker stop) stops the bot in order: it stops admitting jobs and exits 0; everything resumes on start.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "bot.py"]
CMD ["run"]
