"""Runs schemathesis against a local stack of its own: starts `rollcall dev` on free ports,
reads its API address and dev admin token from the banner, runs the checks with a fixed seed
and a bounded number of examples, stops the stack, and exits with schemathesis' status.

Usage: run.py ROLLCALL_BINARY MOTO_PYTHON
"""

import os
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    rollcall, moto_python = sys.argv[1], sys.argv[2]
    stack = subprocess.Popen(
        [rollcall, "dev", "--port", "0", "--moto-port", "0", "--stop-after", "900",
         "--python", moto_python],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    api = token = None
    for line in stack.stdout:
        line = line.strip()
        if line.startswith("API "):
            api = line.split()[1]
        if line.startswith("export TOKEN="):
            token = line[len("export TOKEN="):]
        if "Ctrl-C stops" in line:
            break
    if not api or not token:
        stack.kill()
        sys.exit("rollcall dev did not print its API address and token")
    try:
        env = dict(os.environ, SCHEMATHESIS_HOOKS="hooks", PYTHONPATH=HERE)
        # Its caches (.hypothesis, .schemathesis) go to a folder of their own, not the tree.
        with tempfile.TemporaryDirectory(prefix="rollcall-schemathesis-") as work:
            result = subprocess.run(
                [os.path.join(os.path.dirname(sys.executable), "st"),
                 "--config-file", os.path.join(HERE, "schemathesis.toml"),
                 "run", f"{api}/openapi.json",
                 "--header", f"Authorization: Bearer {token}",
                 "--checks", "not_a_server_error,positive_data_acceptance,negative_data_rejection",
                 "--phases", "examples,coverage,fuzzing",
                 "--seed", "20261201", "--max-examples", "40", "--workers", "1",
                 "--generation-database", "none",
                 "--no-color", "--output-truncate", "false", "--output-sanitize", "true"],
                env=env, cwd=work,
            )
    finally:
        stack.send_signal(signal.SIGINT)
        try:
            stack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stack.kill()
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
