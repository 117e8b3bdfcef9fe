"""TensorZero's HTTP gateway, started from its PyPI wheel (the Rust gateway is inside it):

    bench/.tensorzero-venv/bin/python bench/tensorzero_gateway.py CONFIG BASE_URL_FILE

It listens on a loopback port of its own choosing; its OpenAI-compatible base URL is written
to BASE_URL_FILE. Serves until SIGTERM.
"""

import signal
import sys
import threading
from pathlib import Path

import tensorzero

config, base_file = sys.argv[1], Path(sys.argv[2])
gateway = tensorzero._start_http_gateway(
    config_file=config, clickhouse_url=None, postgres_url=None, valkey_url=None, async_setup=False
)
base_file.write_text(str(gateway.base_url).removesuffix("/openai/v1"))
stopped = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopped.set())
stopped.wait()
