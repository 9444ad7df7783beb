# kb: build the index at image build time, serve with gunicorn on port 8000.
FROM python:3.11-slim-bookworm

RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY setup.cfg pyproject.toml constraints.txt README.md ./
COPY kb ./kb
# torch first and pinned: use a CPU-only wheel source where the builder has one (the CUDA build is several GB).
RUN pip install --no-cache-dir torch==2.13.0 \
 && pip install --no-cache-dir -c constraints.txt .
COPY sops ./sops
ENV KB_CONTENT_DIR=/app/sops KB_DATA_DIR=/app/instance KB_HOST=0.0.0.0 KB_PORT=8000 HF_HUB_OFFLINE=1
# The image holds no .git, so documents report no revision; mount a git checkout at /app/sops for revisions.
RUN kb index
EXPOSE 8000
USER nobody
CMD ["kb", "serve"]
