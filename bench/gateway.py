"""The gateway's GET /v1/workflows/{id} against a bare Starlette app, same server, same load.

The baseline is served the way the gateway serves itself (main.py): ``uvicorn.Server``
with ``log_config=None, access_log=False, lifespan="off"`` and default loop and HTTP
settings, awaited under ``asyncio.run``; it returns a JSON body as long as the gateway's
answer. The gateway's /healthz (same app and middleware, no work) is measured too, to
split framework cost from the route's. All are loaded by ``bench.loadgen`` in its own
process, in mirrored phases (S G H H G S) so load from anything else on the machine falls
on each alike. Each phase also records the CPU used by the processes serving it.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from aiop.devstack import free_port
from aiop.devstack.ports import wait_for_port
from bench import loadgen
from bench.platform import SERVICES, Platform

CONNECTIONS = 16
ROOT = Path(__file__).resolve().parents[1]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its direct children (postgres backends)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:  # exited meanwhile
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_s(int(child)) for child in children if int(child) != pid)


def stack_pids(platform: Platform) -> dict[str, int]:
    """The six services (gateway first), and nats-server and PostgreSQL found by their
    data directories."""
    pids = {"gateway": platform.pid_of("gateway")}
    pids.update({name: platform.pid_of(name) for name in SERVICES if name != "gateway"})
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(platform.root) in cmdline:
            if "nats-server" in cmdline:
                pids["nats-server"] = int(entry.name)
            elif "postgres" in cmdline and " -D " in cmdline:
                pids["postgres"] = int(entry.name)
    return pids


def load(url: str, headers: dict[str, str], seconds: float, pids: dict[str, int]) -> dict[str, Any]:
    """One load phase, plus the CPU ``pids`` used (fraction of a core each), and per
    successful request for the first (the HTTP server)."""
    before = {name: cpu_s(pid) for name, pid in pids.items()}
    result = loadgen.measure(url, headers, seconds, CONNECTIONS)
    # CPU is read around the whole phase, so spread it over the warm-up second too.
    wall = float(result["seconds"]) + 1.0
    used = {name: cpu_s(pid) - before[name] for name, pid in pids.items()}
    result["server_cpu_fraction"] = {name: round(s / wall, 3) for name, s in used.items()}
    server_cpu_per_s = used[next(iter(pids))] / wall
    result["server_cpu_us_per_req"] = round(server_cpu_per_s / max(result["req_per_s"], 1) * 1e6)
    return result


def merge(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Two phases of the same target: rates and CPU averaged, the rest from each."""
    rates = [p["req_per_s"] for p in phases]
    return {
        "req_per_s": round(sum(rates) / len(rates), 1),
        "req_per_s_phases": rates,
        "errors": sum(p["errors"] for p in phases),
        "statuses": [p["statuses"] for p in phases],
        "latency_ms_p50": [p["latency_ms"]["p50"] for p in phases],
        "latency_ms_p99": [p["latency_ms"]["p99"] for p in phases],
        "server_cpu_us_per_req": [p["server_cpu_us_per_req"] for p in phases],
        "server_cpu_fraction": [p["server_cpu_fraction"] for p in phases],
        "loadgen_cpu_fraction": [p["loadgen_cpu_fraction"] for p in phases],
    }


def measure(platform: Platform, workflow_id: str, seconds: float = 10.0) -> dict[str, object]:
    path = f"/v1/workflows/{workflow_id}"
    headers = platform.headers()
    sample = httpx.get(platform.gateway_url + path, headers=headers, timeout=10)
    sample.raise_for_status()  # a failing route would measure error handling, not the route

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "bench.gateway", "starlette", str(port), str(len(sample.content))]
    baseline = subprocess.Popen(argv, env=env)
    try:
        wait_for_port("127.0.0.1", port, 30, lambda: baseline.poll() is None)
        starlette_url = f"http://127.0.0.1:{port}{path}"
        pids = stack_pids(platform)
        urls = {
            "starlette": (starlette_url, {"starlette": baseline.pid}),
            "gateway": (platform.gateway_url + path, pids),
            # The same FastAPI app and middleware with no work: splits framework from route.
            "gateway_healthz": (platform.gateway_url + "/healthz", pids),
        }
        phases: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
        for target in [*urls, *reversed(urls)]:
            url, serving = urls[target]
            phases[target].append(load(url, headers, seconds / 3, serving))
    finally:
        baseline.terminate()
        baseline.wait(10)
    figures = {name: merge(results) for name, results in phases.items()}
    starlette = figures["starlette"]["req_per_s"]
    return {
        "body_bytes": len(sample.content),
        "connections": CONNECTIONS,
        **figures,
        "ratio": round(figures["gateway"]["req_per_s"] / starlette, 3),
        "healthz_ratio": round(figures["gateway_healthz"]["req_per_s"] / starlette, 3),
        "target_ratio": 0.75,
    }


def serve_starlette(port: int, size: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = b'{"x":"' + b"a" * max(0, size - 8) + b'"}'

    async def status(request: Request) -> Response:
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/v1/workflows/{workflow_id}", status)])
    config = uvicorn.Config(
        app, "127.0.0.1", port, log_config=None, access_log=False, lifespan="off"
    )
    asyncio.run(uvicorn.Server(config).serve())


def main() -> None:
    from bench.platform import start

    platform = start()
    try:
        reply = httpx.post(
            f"{platform.gateway_url}/v1/workflows",
            json={"name": "noop", "steps": [{"name": "noop", "run": ["true"], "cache": False}]},
            headers=platform.headers(),
            timeout=30,
        )
        reply.raise_for_status()
        workflow_id = reply.json()["workflow_id"]
        # Finished first, so every GET answers the same body.
        for _ in range(300):
            view = httpx.get(
                f"{platform.gateway_url}/v1/workflows/{workflow_id}",
                headers=platform.headers(),
                timeout=10,
            ).json()
            if view.get("state") in ("succeeded", "failed", "cancelled", "timed_out", "rejected"):
                break
            time.sleep(0.1)
        print(json.dumps(measure(platform, workflow_id), indent=2))
    finally:
        platform.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["starlette"]:
        serve_starlette(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
