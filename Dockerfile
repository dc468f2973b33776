# One image for both components: `runtime-insights extractor serve …` and
# `runtime-insights exporter` (see manifests/). Build: make image
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY extractor ./extractor
COPY fingerprints ./fingerprints
COPY exporter ./exporter
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
# The root filesystem is mounted read-only: never try to write bytecode caches.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# Non-root by default; the extractor's pod spec asks for root explicitly.
USER 65532:65532
ENTRYPOINT ["runtime-insights"]
