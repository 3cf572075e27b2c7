"""Event bytes per generated token: ``llm.generate`` answers of 64 and 512 tokens, read back as a run's server-sent
events from ``nodeforge serve``. Each ``node.progress`` event carries the token's text as a ``delta``, so the bytes
per token stay flat as answers grow (events that carried the text so far grew with the answer, quadratic in all).

The benchmark copies tiny/llm (1024 tokens of context) into the data dir's models folder without an end-of-turn
token, so every answer is exactly as long as asked. Its weights are random: the tokens it picks are short
pieces of words, so a real model's longer tokens add a few bytes to each event, no more.

Run: ``.venv/bin/python bench/streams.py`` (offline; about half a minute on two CPU cores).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if not __package__:  # run as a file, this folder would shadow the engine package: use the project root instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import json
import shutil
import tempfile
from typing import Any

import httpx2

from bench.server import start_server

LENGTHS = (64, 512)
CONTEXT = 1024


def long_context_copy(data_dir: Path) -> Path:
    """tiny/llm copied under ``<data dir>/models`` with a longer context and no end-of-turn token."""
    from nodeforge.nodes.models import build_resolver

    source = build_resolver().resolve("tiny/llm", data_dir).path
    target = data_dir / "models" / "tiny-llm-long"
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config["max_position_embeddings"] = CONTEXT
    (target / "config.json").write_text(json.dumps(config))
    generation = json.loads((target / "generation_config.json").read_text())
    generation.pop("eos_token_id", None)
    (target / "generation_config.json").write_text(json.dumps(generation))
    return target


def measure(http: httpx2.Client, model: Path, tokens: int) -> dict[str, Any]:
    graph = {"name": f"stream-{tokens}", "outputs": {"text": {"from": "llm.text"}},
             "nodes": {"llm": {"type": "llm.generate", "inputs": {
                 "prompt": "Tell me about foxes", "model": str(model), "max_new_tokens": tokens,
                 "temperature": 0.8, "seed": 1}}}}
    run_id = http.post("/api/runs", json={"graph": graph}).raise_for_status().json()["id"]
    body = http.get(f"/api/runs/{run_id}/events").content
    record = http.get(f"/api/runs/{run_id}").json()
    if record["status"] != "succeeded":
        raise SystemExit(f"the {tokens}-token run {record['status']}: {record['error']}")
    frames = [frame for frame in body.split(b"\n\n") if b'"kind":"node.progress"' in frame]
    events = [json.loads(frame.split(b"data: ", 1)[1]) for frame in frames]
    generated = events[-1]["step"]
    if "".join(event.get("delta", "") for event in events) != record["outputs"]["text"]:
        raise SystemExit("the deltas do not add up to the run's text")
    size = sum(len(frame) + 2 for frame in frames)
    return {"tokens": generated, "events": len(frames), "bytes": size, "per_token": size / generated,
            "largest": max(len(frame) for frame in frames), "chars": len(record["outputs"]["text"])}


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "data"
        model = long_context_copy(data_dir)
        process, url, _ = start_server(data_dir)
        try:
            with httpx2.Client(base_url=url, timeout=600) as http:
                rows = [measure(http, model, tokens) for tokens in LENGTHS]
        finally:
            process.terminate()
            process.wait(timeout=30)
    for row in rows:
        print(f"llm.generate, {row['tokens']} tokens ({row['chars']} characters): {row['events']} progress events, "
              f"{row['bytes'] / 1024:.1f} KiB of SSE, {row['per_token']:.1f} bytes per token, largest event "
              f"{row['largest']} bytes")
    print(f"bytes per token, {LENGTHS[1]} vs {LENGTHS[0]} tokens: x{rows[1]['per_token'] / rows[0]['per_token']:.2f} "
          f"(flat = 1.00; events carrying the text so far grow with the answer)")


if __name__ == "__main__":
    main()
