"""``convscale serve`` under load: p50/p99 latency and images/s at 1, 4 and 16 concurrent clients, with dynamic
batching on and off, beside the batch-16 figure ``deploy`` measured for the same folder, on this machine.

    python benchmarks/serve_load.py --source mobilenetv3_large_100 --out results/deploy/serve_load.csv

The model is deployed first (``--runtimes``, at batch 16, 224 px, random weights: a speed figure) unless ``--folder``
names a deployed one. Each setting starts a fresh server (a subprocess on 127.0.0.1), warms it up, then its clients
(threads of this process, each sending its next image when the last answer came) send ``--requests`` JPEGs of 256 px;
then, where ``wrk`` is installed (Debian's package), the same concurrency from ``wrk`` for ``--wrk-seconds``: a
client in C that takes far less of the cores the server shares with it (both rows are kept, ``client`` says which).
Rows already in ``--out`` from other machines are kept.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from convscale.utils.machine import machine


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _images(n: int = 32) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _post(url: str, body: bytes) -> float:
    start = time.perf_counter()
    request = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "image/jpeg"})
    with urllib.request.urlopen(request, timeout=120) as r:
        r.read()
    return time.perf_counter() - start


def _load(url: str, images: list[bytes], clients: int, requests: int) -> dict:
    def client(k: int) -> list[float]:
        return [_post(f"{url}/predict", images[(k + i) % len(images)]) for i in range(k, requests, clients)]

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        latencies = [t for part in pool.map(client, range(clients)) for t in part]
    wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50_ms": round(q[49] * 1e3, 2), "p99_ms": round(q[98] * 1e3, 2), "img_s": round(len(latencies) / wall, 1)}


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
local f = io.open("{image}", "rb")
wrk.body = f:read("*all")
f:close()
"""


def _wrk(url: str, image: bytes, clients: int, seconds: int) -> dict | None:
    """``wrk`` posting one JPEG from ``clients`` connections: p50, p99 and requests/s (None without wrk)."""
    import re
    import shutil
    import tempfile

    if shutil.which("wrk") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "x.jpg").write_bytes(image)
        Path(tmp, "post.lua").write_text(_WRK_SCRIPT.format(image=Path(tmp, "x.jpg")))
        command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(Path(tmp, "post.lua"))]
        out = subprocess.run([*command, f"{url}/predict"], capture_output=True, text=True).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return round(float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit], 2)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} failed requests")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"p50_ms": ms("50%"), "p99_ms": ms("99%"), "img_s": rate}


def _serve(folder: Path, batching: bool):
    port = _port()
    args = [sys.executable, "-m", "convscale.cli", "serve", str(folder), "--port", str(port)]
    proc = subprocess.Popen(args + ([] if batching else ["--no-batching"]), stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default="mobilenetv3_large_100")
    p.add_argument("--folder", help="a deployed folder to serve (default: deploy --source into a temporary one)")
    p.add_argument("--runtimes", default="eager,compile,onnxruntime,openvino")
    p.add_argument("--requests", type=int, default=192, help="per setting, from the Python clients")
    p.add_argument("--wrk-seconds", type=int, default=10, help="per setting, from wrk")
    p.add_argument("--out", default="results/deploy/serve_load.csv")
    args = p.parse_args()
    folder = Path(args.folder or "/tmp/convscale-serve-load")
    if not args.folder and not (folder / "deploy.json").is_file():
        subprocess.run([sys.executable, "-m", "convscale.cli", "deploy", args.source, "--out", str(folder),
                        "--runtimes", args.runtimes, "--batch", "16", "--min-time", "1"], check=True)  # fmt: skip
    report = json.loads((folder / "deploy.json").read_text())
    chosen = next(c for c in report["candidates"] if c["runtime"] == report["choice"])
    m = machine()
    images = _images()
    rows = []
    for batching in (True, False):
        proc, url = _serve(folder, batching)
        try:
            _load(url, images, 4, 32)  # warm-up: the first batches compile or allocate
            for client, clients in [(c, n) for c in ("python-threads", "wrk") for n in (1, 4, 16)]:
                if client == "wrk":
                    r = _wrk(url, images[0], clients, args.wrk_seconds)
                    if r is None:
                        continue
                else:
                    r = _load(url, images, clients, args.requests)
                rows.append({
                    "cpu": m.cpu, "isa": " ".join(m.isa), "threads": m.threads, "model": report["spec"]["model"],
                    "runtime": report["choice"], "precision": report["precision"], "batching": batching,
                    "client": client, "clients": clients, **r,
                    "deploy_batch16_img_s": round(16 / (chosen["median_ms"] / 1e3), 1),
                    "date": time.strftime("%Y-%m-%d"),
                })  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    out = Path(args.out)
    kept = []
    if out.is_file():
        with open(out) as f:
            kept = [r for r in csv.DictReader(f) if r["cpu"] != m.cpu or r["isa"] != " ".join(m.isa)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept + rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    main()
