"""Getting the driver onto a Ray cluster: importing Ray, joining a cluster or starting a local one, and keeping
the thread that started a local cluster alive for as long as the backend uses it."""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from typing import Any

from nodeforge.engine.errors import EngineError

RAY_MISSING = "the Ray backend needs Ray: pip install 'nodeforge[ray]' (ray==2.60.0)"
FORWARDED_ENV = ("NODEFORGE_MODELS_DIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_WAIT_POLICY")


def import_ray() -> Any:
    """The ray module, or a clear EngineError when the optional extra is not installed."""
    try:
        import ray
    except ImportError:
        raise EngineError(RAY_MISSING) from None
    return ray


def start_ray(ray: Any, address: str | None, namespace: str, options: dict[str, Any],
              release: threading.Event) -> None:
    """Connect (or start a local cluster) from the main thread, else from a thread that lives until ``release``:
    the processes of a local cluster get a kill signal when the thread that started them ends (Ray sets
    PR_SET_PDEATHSIG), so a server that starts the backend from a short-lived thread would lose its cluster."""
    if threading.current_thread() is threading.main_thread():
        _connect(ray, address, namespace, options)
        return
    started = threading.Event()
    failed: list[BaseException] = []

    def own() -> None:
        try:
            _connect(ray, address, namespace, options)
        except BaseException as exc:
            failed.append(exc)
            return
        finally:
            started.set()
        release.wait()

    threading.Thread(target=own, name="nodeforge-ray-owner", daemon=True).start()
    started.wait()
    if failed:
        raise failed[0]


def _connect(ray: Any, address: str | None, namespace: str, options: dict[str, Any]) -> None:
    """``ray.init`` with the settings every driver needs (workers inherit the model and threading environment)."""
    if address and address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise EngineError("a ray:// address needs Ray Client: pip install 'ray[client]==2.60.0'")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env_vars = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    settings: dict[str, Any] = {"namespace": namespace, "log_to_driver": False, "logging_level": logging.WARNING}
    if env_vars:
        settings["runtime_env"] = {"env_vars": env_vars}
    if address is None:
        settings["include_dashboard"] = False
    try:
        ray.init(address=address, **{**settings, **options})
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise EngineError(f"cannot connect to the Ray cluster at {address or 'a new local cluster'}: {exc}") from None
