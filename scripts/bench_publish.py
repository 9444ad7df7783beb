#!/usr/bin/env python
"""Time from a publish request to the new text being found by search in another server process.

    .venv/bin/python scripts/bench_publish.py [--runs 10]

Copies the shipped library into a scratch git repository and instance folder (the
embedding cache and ONNX export come from instance/), adds an author and an approver
with API keys, and starts two real `kb serve` processes on free loopback ports over
the same content and instance folders: A takes the publishes, B answers searches.
Each run creates a draft with a new word, submits it, then times from the approve
request sent to A until B's search finds the word (polling every 10 ms). Prints the
median, p95 and max, and the approve call's own duration; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import string
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KB = ROOT / ".venv" / "bin" / "kb"
SOP = "pay-duplicate-charge"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(url: str, key: str | None = None, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def wait_up(url: str, process: subprocess.Popen) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"server exited: {process.returncode}")
        try:
            call(url + "/healthz")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise SystemExit("server did not start")


def setup(scratch: Path, env: dict) -> tuple[dict, dict]:
    content, data = scratch / "content", scratch / "instance"
    shutil.copytree(ROOT / "sops", content / "sops")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"]):
        subprocess.run(["git", "-C", str(content), *args], check=True)
    subprocess.run(
        ["git", "-C", str(content), "-c", "user.name=seed", "-c", "user.email=seed@example.com"]
        + ["commit", "-q", "-m", "library"],
        check=True,
    )
    data.mkdir()
    shutil.copytree(ROOT / "instance" / "models", data / "models")
    shutil.copy(ROOT / "instance" / "embeddings.sqlite", data / "embeddings.sqlite")
    subprocess.run([KB, "index"], env=env, check=True, capture_output=True)
    keys = {}
    for name, role in (("ann", "author"), ("bob", "approver")):
        subprocess.run(
            [KB, "users", "add", name, "--role", role, "--password-stdin"],
            input=f"{name}-password-123\n",
            text=True,
            env=env,
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            [KB, "keys", "create", "--user", name, "--name", "bench"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        keys[name] = out.stdout.strip().splitlines()[-1]
    return keys, {"content": content, "data": data}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kb-publish-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(KB_CONTENT_DIR=str(scratch / "content" / "sops"), KB_DATA_DIR=str(scratch / "instance"))
    servers = []
    try:
        keys, _ = setup(scratch, env)
        urls = []
        for _ in range(2):
            port = free_port()
            process = subprocess.Popen(
                [KB, "serve", "--port", str(port), "--workers", "1"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(scratch / f"server-{len(servers)}.log", "w"),  # noqa: SIM115 - closed with the process
            )
            servers.append(process)
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, servers, strict=True):
            wait_up(url, process)
        publisher, reader = urls
        found_after, approve_took = [], []
        for run in range(args.runs):
            word = "benchword" + "".join(
                random.choice(string.ascii_lowercase) for _ in range(8)
            )  # no digits: ids are cleaned
            doc = call(f"{publisher}/api/v1/sops/{SOP}")
            text = doc["markdown"].replace("## Purpose\n", f"## Purpose\n\nRun {run}: {word} marks this revision.\n", 1)
            body = {"sop_id": SOP, "markdown": text, "base_revision": doc["revision"], "summary": f"Bench run {run}"}
            draft = call(f"{publisher}/api/v1/drafts", keys["ann"], body)
            call(f"{publisher}/api/v1/drafts/{draft['id']}/submit", keys["ann"], {})
            started = time.perf_counter()
            call(f"{publisher}/api/v1/drafts/{draft['id']}/approve", keys["bob"], {})
            approve_took.append(time.perf_counter() - started)
            while True:
                hits = call(f"{reader}/api/v1/search?q={word}&mode=keyword&k=1")["results"]
                if hits and hits[0]["sop_id"] == SOP:
                    found_after.append(time.perf_counter() - started)
                    break
                if time.perf_counter() - started > 60:
                    raise SystemExit(f"run {run}: not found after 60 s")
                time.sleep(0.01)
    finally:
        for process in servers:
            process.terminate()
        for process in servers:
            process.wait(timeout=30)
        if os.environ.get("KEEP"):
            print(scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    def row(label: str, values: list[float]) -> str:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return f"  {label:<42}{statistics.median(values):>8.2f}{p95:>8.2f}{max(values):>8.2f}"

    print(f"publish -> found by search in another server process, {args.runs} runs, seconds:")
    print(f"  {'':<42}{'median':>8}{'p95':>8}{'max':>8}")
    print(row("approve request returned", approve_took))
    print(row("new text found by search in process B", found_after))


if __name__ == "__main__":
    main()
