# Flowsite. One image for every role: gunicorn serving the app (the default command), the
# worker (`python manage.py flowsite_worker`: qcluster, restarted if it stops working) and the
# one-off `python manage.py migrate`.
# compose.yaml wires them together; the README's Deployment section explains the variables.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLOWSITE_VAR_DIR=/data \
    STATIC_ROOT=/app/staticfiles \
    WEB_CONCURRENCY=4

RUN useradd --create-home --uid 10001 flowsite && mkdir -p /data && chown flowsite /data
WORKDIR /app

# Dependencies first, so code changes rebuild only the layers below.
COPY pyproject.toml README.md ./
RUN pip install .
COPY manage.py ./
COPY flowsite ./flowsite
COPY generations ./generations
COPY templates ./templates
COPY static ./static
# Hashed, compressed static files are part of the image: every web container serves the same.
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput

USER flowsite
VOLUME ["/data"]
EXPOSE 8000
# gunicorn takes its number of worker processes from WEB_CONCURRENCY.
CMD ["gunicorn", "flowsite.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-", "--graceful-timeout", "30"]
