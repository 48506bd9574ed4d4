"""``convscale serve DIR``: a deployed folder behind HTTP (:mod:`convscale.deployed.serve`)."""

from __future__ import annotations

import argparse

from .args import bounded

__all__ = ["add"]


def _cmd_serve(args: argparse.Namespace) -> None:
    from ..deployed import is_deployed
    from ..deployed.serve import ServeSettings, serve

    if not is_deployed(args.folder):
        raise ValueError(f"{args.folder} is not a deployed folder (convscale deploy --out DIR writes one)")
    settings = ServeSettings(args.folder, max_wait_ms=args.max_wait_ms, batching=not args.no_batching)
    print(f"serving {args.folder} on http://{args.host}:{args.port} ({args.workers} process(es)); Ctrl-C stops")
    serve(settings, host=args.host, port=args.port, workers=args.workers)


def add(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve a deployed folder over HTTP: POST /predict, GET /health, /metadata, a page at /",
        description="An HTTP server for what convscale deploy wrote (the serve extra: Starlette on uvicorn), with "
        "dynamic batching: concurrent requests run together, up to the deployed batch.",
    )  # fmt: skip
    p.add_argument("folder", metavar="DIR", help="a folder convscale deploy wrote")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1; 0.0.0.0 for all]")
    p.add_argument("--port", type=bounded(int, 1, 65535), default=8000, help="port [8000]")
    p.add_argument("--workers", type=bounded(int, 1, 256), default=1, help="server processes, each with the model [1]")
    p.add_argument("--max-wait-ms", type=bounded(float, 0, 1000), default=5.0,
                   help="how long the first request of a batch waits for others [5]")  # fmt: skip
    p.add_argument("--no-batching", action="store_true", help="run each request alone (for comparison)")
    p.add_argument("--verbose", action="store_true", help="show other libraries' warnings and logs too")
    p.set_defaults(func=_cmd_serve)
