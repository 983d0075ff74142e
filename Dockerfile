# Flowsite: gunicorn serving the app; the same image runs the worker (`python manage.py qcluster`).
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FLOWSITE_VAR_DIR=/data \
    STATIC_ROOT=/app/staticfiles

RUN useradd --create-home --uid 10001 flowsite && mkdir -p /data && chown flowsite /data
WORKDIR /app

COPY pyproject.toml README.md ./
RUN pip install --upgrade pip && pip install .
COPY manage.py ./
COPY flowsite ./flowsite
COPY generations ./generations
COPY templates ./templates
COPY static ./static
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput

USER flowsite
VOLUME ["/data"]
EXPOSE 8000
CMD ["gunicorn", "flowsite.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--access-logfile", "-"]
