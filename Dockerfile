# The platform image used by docker-compose.yml (PostGIS runs in its own container).
FROM python:3.12-slim-bookworm
WORKDIR /app
# the supervision report (通报): pango for WeasyPrint, CJK fonts for the text and charts
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md alembic.ini ./
COPY jmgeo jmgeo
COPY spatial spatial
COPY layers layers
COPY loaders loaders
COPY catalog catalog
COPY exchange exchange
COPY supervision supervision
# package data (jmgeo/migrations, jmgeo/ogc/pygeoapi-config.yml, spatial/data) comes
# with the packages; alembic.ini is for running `alembic` by hand from /app
RUN pip install --no-cache-dir -e .
ENV JMGEO_HOST=0.0.0.0 JMGEO_PORT=5000
EXPOSE 5000
CMD ["jmgeo", "serve", "--host", "0.0.0.0", "--port", "5000"]
