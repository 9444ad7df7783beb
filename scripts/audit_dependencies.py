"""Check the pinned dependencies (constraints.txt) for known vulnerabilities with pip-audit.

Exits 1 when pip-audit reports a vulnerability in a pin. When the advisory
service cannot be reached (this machine has no internet beyond the package
registries, and a mirror may not serve PyPI's JSON API), it says so, names how
many pins went unchecked, and exits 0: an audit that could not run must not
fail the suite, and must not pass for a clean bill of health either.

    .venv/bin/python scripts/audit_dependencies.py [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIP_AUDIT = Path(sys.executable).parent / "pip-audit"


def main() -> int:
    """Run pip-audit over constraints.txt and report what it could and could not check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=120, help="seconds before giving up on the service")
    args = parser.parse_args()
    command = [str(PIP_AUDIT), "-r", str(ROOT / "constraints.txt"), "--no-deps", "--disable-pip"]
    command += ["--progress-spinner", "off", "--format", "json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"audit: could not check the dependencies ({error})")
        return 0
    try:
        report = json.loads(done.stdout)
    except ValueError:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        print(f"audit: could not check the dependencies: the advisory service cannot be reached ({reason})")
        return 0
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if d.get("skip_reason")]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
            print(f"audit: {dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixes})")
    checked = len(dependencies) - len(skipped)
    if checked == 0:
        print(f"audit: could not check the dependencies: the advisory service answered for none of {len(skipped)} pins")
        return 0
    note = f"; {len(skipped)} could not be checked" if skipped else ""
    print(f"audit: {checked} pinned dependencies checked, {len(vulnerable)} with known vulnerabilities{note}")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
