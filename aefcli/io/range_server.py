"""A Range-capable static file server in its own process (GDAL /vsicurl/ needs Range).

It runs as a separate process because rasterio holds the GIL while GDAL reads:
a server thread in the reading process can stall behind it.

    python -m aefcli.io.range_server ROOT [--port 0]   # prints the port, then serves
"""

from __future__ import annotations

import argparse
import functools
import sys
from http.server import ThreadingHTTPServer


def main(argv: list[str] | None = None) -> None:
    from RangeHTTPServer import RangeRequestHandler

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    class QuietHandler(RangeRequestHandler):
        def log_message(self, *args) -> None:  # requests are not talk for stderr
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), functools.partial(QuietHandler, directory=args.root))
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
