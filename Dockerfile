# kb in two stages (docs/deploy.md):
#   build    installs kb with torch, exports the embedding model to ONNX and builds the index;
#   runtime  installs kb without torch, copies the export, the index and the content repository from build,
#            and serves them as a non-root user: ONNX Runtime embeds queries and published sections, and
#            `kb index` in this image embeds through the same export.
# docker build -t kb . && docker run -p 8000:8000 -e KB_COOKIE_SECURE=off kb

FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# torch first and pinned. The default index's Linux wheel pulls the CUDA packages (several GB) into this
# stage only; --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu fetches the CPU-only wheel.
ARG TORCH_INDEX_URL=https://pypi.org/simple
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" torch==2.13.0
COPY setup.cfg pyproject.toml constraints.txt README.md ./
COPY kb ./kb
RUN pip install --no-cache-dir -c constraints.txt ".[torch]"
COPY sops ./sops
# Published history is git history: the library becomes a repository of its own in the image (or set
# KB_CONTENT_REMOTE, or mount a checkout of your content repository at /app/sops).
RUN git -C /app/sops init -q -b main \
 && git -C /app/sops add -A \
 && git -C /app/sops -c user.name=kb -c user.email=kb@kb.invalid commit -q -m "Library as shipped in the image"
ENV KB_CONTENT_DIR=/app/sops KB_DATA_DIR=/app/instance HF_HUB_OFFLINE=1 HOME=/app/instance
# Embeds every section with torch, exports the model to instance/models/ (checked against torch to cosine
# >= 0.9999) with its int8 copy, and writes the first index generation.
RUN kb index


FROM python:3.11-slim-bookworm AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /app/instance --shell /usr/sbin/nologin kb \
 && install -d -o kb -g kb /app/content
WORKDIR /app
COPY setup.cfg pyproject.toml constraints.txt README.md ./
COPY kb ./kb
# No torch here: the base install embeds with ONNX Runtime and tokenizers.
RUN pip install --no-cache-dir -c constraints.txt . && rm -rf /app/build
COPY --from=build --chown=kb:kb /app/sops /app/sops
COPY --from=build --chown=kb:kb /app/instance /app/instance
# /app/content (empty, the kb user's): where a replica clones KB_CONTENT_REMOTE with KB_CONTENT_DIR=/app/content.
# Behind plain HTTP (no TLS) set KB_COOKIE_SECURE=off, or browsers will not send the session cookie.
ENV KB_CONTENT_DIR=/app/sops KB_DATA_DIR=/app/instance KB_HOST=0.0.0.0 KB_PORT=8000 HF_HUB_OFFLINE=1 \
    HOME=/app/instance PYTHONDONTWRITEBYTECODE=1
USER kb
EXPOSE 8000
# /healthz: 200 when serving (ok, or degraded on an older good index generation or keyword-only), 503 when
# nothing can serve.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# Add users with: docker exec -it <container> kb users add NAME --role ROLE
CMD ["kb", "serve"]
