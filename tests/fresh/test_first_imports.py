"""The engine's guard on first imports (``engine/first_imports.py``), in fresh interpreters: threads released together
by a barrier each import another class from diffusers' and transformers' lazy modules for the first time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RACE = textwrap.dedent("""
    import sys, threading
    if sys.argv[1] == "guarded":
        from nodeforge.engine.first_imports import serialize_first_imports
        serialize_first_imports()
    NAMES = [("diffusers", "StableDiffusionXLPipeline"), ("diffusers", "StableDiffusionPipeline"),
             ("diffusers", "ControlNetModel"), ("diffusers", "FluxPipeline"),
             ("transformers", "CLIPTextModelWithProjection"), ("transformers", "T5EncoderModel")]
    barrier = threading.Barrier(len(NAMES))
    failures = []

    def take(module, name):
        barrier.wait()
        try:
            exec(f"from {module} import {name}")
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=take, args=pair) for pair in NAMES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("\\n".join(failures) or "ok")
""")


def race(mode: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, "-c", RACE, mode], capture_output=True, text=True, env=env,
                          timeout=300, check=True)
    return done.stdout.strip()


def test_lazy_library_classes_import_from_six_threads_at_once() -> None:
    for _ in range(3):
        assert race("guarded") == "ok"


@pytest.mark.slow
def test_without_the_guard_the_same_imports_fail() -> None:
    """What the guard is for: the same race in an interpreter without it fails (most of the time; a run of
    several tries shows it)."""
    assert any(race("bare") != "ok" for _ in range(5))


def test_an_import_of_a_loaded_module_takes_no_lock() -> None:
    """Imports of modules already loaded (most imports inside a node's ``run``) take the unlocked path: a thread
    holding the lock (stalled inside a finder until the main thread has imported) does not stop another thread's
    ``import json``: with a lock on that path the interpreter would hang until the time-out."""
    script = textwrap.dedent("""
        import sys, threading
        from nodeforge.engine.first_imports import serialize_first_imports
        serialize_first_imports()
        import json
        inside = threading.Event()
        done = threading.Event()

        class Stall:
            def find_spec(self, name, path=None, target=None):
                if name == "stalled_module":
                    inside.set()
                    done.wait()
                return None

        sys.meta_path.insert(0, Stall())

        def stall():
            try:
                import stalled_module  # noqa
            except ImportError:
                pass

        holder = threading.Thread(target=stall)
        holder.start()
        inside.wait(30)
        import json as again
        print(again is json)
        done.set()
        holder.join()
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60,
                          check=True)
    assert done.stdout.strip() == "True"
