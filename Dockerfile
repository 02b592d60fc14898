# The cellregistry admin for a shared deployment (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CELLREGISTRY_HOME=/var/lib/cellregistry

WORKDIR /app
COPY pyproject.toml README.md manage.py ./
COPY registry ./registry
COPY ontologies ./ontologies
COPY curation ./curation
COPY demo ./demo
RUN pip install .

EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --no-input && exec cellregistry serve --host 0.0.0.0 --port 8000"]
