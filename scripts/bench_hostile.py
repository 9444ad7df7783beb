"""What hostile requests cost a real `kb serve`: wall time, worker CPU and worker memory above rest.

Starts `kb serve` (two gunicorn workers) over a temporary copy of the shipped
library, makes an author and an API key, sends each hostile request in turn and
prints, per request, the status, the wall time and the CPU seconds the workers
spent; then each worker's peak memory above its resting memory (the peak is
reset after warm-up through /proc/<pid>/clear_refs, so it measures the hostile
requests alone). The issue's bound: no input makes a worker use more than 100 MB
above rest or more than 1 s of CPU.

    .venv/bin/python scripts/bench_hostile.py [--work /tmp/kb-bench-hostile] [--port 8765]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KB = Path(sys.executable).parent / "kb"
sys.path.insert(0, str(ROOT / "scripts"))
from bench_markdown import inputs as markdown_attacks  # noqa: E402 - the Markdown attacks of that benchmark

FRONT = "id: pay-duplicate-charge\ntitle: Duplicate charges\ntype: sop\nbusiness_line: all\n"
FRONT += "categories: [payments/duplicate-charge]\nowner: payments-policy\nstatus: published\neffective: 2026-09-01\n"
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


def hostile_requests() -> list[tuple[str, str, str, bytes | None, dict]]:
    """(name, method, path, body, headers) for each attack; "KEY" in a header is replaced by the author's key."""
    body = (ROOT / "sops" / "all" / "pay-duplicate-charge.md").read_text().split("---\n", 2)[2]
    auth = {"Authorization": "Bearer KEY", "Content-Type": "application/json"}

    def draft(markdown: str) -> bytes:
        return json.dumps(
            {"sop_id": "pay-duplicate-charge", "markdown": markdown, "base_revision": "0" * 40, "summary": "x"}
        ).encode()

    cases = [
        ("front matter alias bomb", "POST", "/api/v1/drafts", draft(f"---\n{FRONT}{ALIAS_BOMB}---\n{body}"), auth),
        (
            "front matter month 13",
            "POST",
            "/api/v1/drafts",
            draft(f"---\n{FRONT}review_by: 2026-13-45\n---\n{body}"),
            auth,
        ),
        (
            "front matter 17 KB",
            "POST",
            "/api/v1/drafts",
            draft(f"---\n{FRONT}tags: [{'a, ' * 6000}a]\n---\n{body}"),
            auth,
        ),
    ]
    for name, markdown in markdown_attacks().items():
        cases.append((f"markdown: {name}", "POST", "/api/v1/drafts", draft(f"---\n{FRONT}---\n{markdown}"), auth))
    # kb lint's written-figure rule on one 190,000-character sentence holding 9,000 figures and their key words
    figures = "## Purpose\n" + "refund window 30 days " * 8600 + "\n"
    cases.append(
        ("lint: 8,600 figures in one sentence", "POST", "/api/v1/drafts", draft(f"---\n{FRONT}---\n{figures}"), auth)
    )
    json_headers = {"Content-Type": "application/json"}
    cases += [
        ("json nested 900,000 deep", "POST", "/api/v1/search", b"[" * 900_000 + b"]" * 900_000, json_headers),
        ("json lone surrogate", "POST", "/api/v1/search", b'{"query": "\\ud800 refund"}', json_headers),
        ("query of 2,000 digits and separators", "GET", "/api/v1/search?q=" + "4-1+" * 500, None, {}),
        (
            "search page, card number in every argument",
            "GET",
            "/?q=4111+1111+1111+1111&category=4111111111111111",
            None,
            {},
        ),
        (
            "log-in name of 1 MB",
            "POST",
            "/login",
            b"name=" + b"a" * 1_000_000 + b"&password=x",
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
    ]
    return cases


def _stat(pid: int) -> tuple[float, int, int]:
    """(CPU seconds, resident KB, peak resident KB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return cpu, int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0])


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def _send(port: int, method: str, path: str, body: bytes | None, headers: dict, declared: int | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.putrequest(method, path)
        for key, value in headers.items():
            connection.putheader(key, value)
        length = declared if declared is not None else len(body or b"")
        if body is not None or declared is not None:
            connection.putheader("Content-Length", str(length))
        connection.endheaders()
        if body:
            try:
                connection.send(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _prepare(work: Path) -> dict:
    content, data = work / "content", work / "instance"
    if not (content / ".git").exists():
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(ROOT / "sops", content)
        for args in (
            ["init", "-q", "-b", "main"],
            ["add", "-A"],
            ["-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-q", "-m", "library"],
        ):
            subprocess.run(["git", "-C", str(content), *args], check=True)
    env = {**os.environ, "KB_CONTENT_DIR": str(content), "KB_DATA_DIR": str(data), "KB_WATCH_INTERVAL": "0"}
    for name in ("SEARCH", "LOGIN", "WRITE"):
        env[f"KB_RATE_LIMIT_{name}"] = "100000/minute"  # measure the work, not the limiter
    subprocess.run([str(KB), "index"], env=env, check=False, capture_output=True)
    subprocess.run(
        [str(KB), "users", "add", "bench", "--role", "author", "--password-stdin"],
        env=env,
        input="bench-password-1\n",
        text=True,
        capture_output=True,
        check=False,
    )
    created = subprocess.run(
        [str(KB), "keys", "create", "--user", "bench", "--name", "bench", "--scope", "search", "--scope", "read"]
        + ["--scope", "write"],
        env=env,
        text=True,
        capture_output=True,
        check=True,
    )
    env["BENCH_KEY"] = created.stdout.strip().splitlines()[-1]
    return env


def main() -> int:
    """Serve, attack, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/kb-bench-hostile"))
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    env = _prepare(args.work)
    server = subprocess.Popen(
        [str(KB), "serve", "--port", str(args.port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(300):
            try:
                if _send(args.port, "GET", "/healthz", None, {}) == 200:
                    break
            except OSError:
                time.sleep(0.2)
        workers = _workers(server.pid)
        for query in ("charged twice", "refund not received", "chargeback evidence") * 4:  # warm both workers
            _send(args.port, "GET", f"/api/v1/search?q={query.replace(' ', '+')}", None, {})
        rest = {pid: _stat(pid)[1] for pid in workers}
        for pid in workers:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
        print(f"{'request':50} {'status':>6} {'wall s':>7} {'cpu s':>6}")
        worst_cpu = worst_wall = 0.0
        cases = hostile_requests()
        cases.append(("body of 100 MB declared", "POST", "/api/v1/search", None, {"Content-Type": "application/json"}))
        for name, method, path, body, headers in cases:
            headers = {k: v.replace("KEY", env["BENCH_KEY"]) for k, v in headers.items()}
            declared = 100 * 1024 * 1024 if name.startswith("body of 100 MB") else None
            cpu_before = sum(_stat(pid)[0] for pid in workers)
            started = time.perf_counter()
            status = _send(args.port, method, path, body, headers, declared)
            wall = time.perf_counter() - started
            cpu = sum(_stat(pid)[0] for pid in workers) - cpu_before
            worst_cpu, worst_wall = max(worst_cpu, cpu), max(worst_wall, wall)
            print(f"{name[:50]:50} {status:>6} {wall:>7.3f} {cpu:>6.2f}")
        print(f"\nslowest request: {worst_wall:.3f} s wall, most worker CPU for one request: {worst_cpu:.2f} s")
        for pid in workers:
            _, now, peak = _stat(pid)
            print(
                f"worker {pid}: rest {rest[pid] / 1024:.0f} MB, peak {peak / 1024:.0f} MB, "
                f"above rest {(peak - rest[pid]) / 1024:.1f} MB"
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
