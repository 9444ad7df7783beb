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
# Published history is git history: the library becomes a repository of its own in the image
# (mount a checkout of your content repository at /app/sops to serve and publish to that instead).
RUN git -C /app/sops init -q -b main \
 && git -C /app/sops add -A \
 && git -C /app/sops -c user.name=kb -c user.email=kb@kb.invalid commit -q -m "Library as shipped in the image"
# Behind plain HTTP (no TLS) set KB_COOKIE_SECURE=off, or browsers will not send the session cookie.
ENV KB_CONTENT_DIR=/app/sops KB_DATA_DIR=/app/instance KB_HOST=0.0.0.0 KB_PORT=8000 HF_HUB_OFFLINE=1 HOME=/app/instance
RUN kb index && chown -R nobody /app/instance /app/sops
EXPOSE 8000
# /healthz: 200 when serving (ok, or degraded on an older good index generation), 503 when nothing can serve.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
USER nobody
# Add users with: docker exec -it <container> kb users add NAME --role ROLE
CMD ["kb", "serve"]
