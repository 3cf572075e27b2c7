"""The result cache: memory LRU budget, disk tier across processes, safetensors for tensors, corruption."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import torch

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import parse_document
from nodeforge.engine.session import Session
from nodeforge.engine.values import Audio, Image, Video

ROOT = Path(__file__).resolve().parents[2]


def test_memory_tier_evicts_least_recently_used_beyond_budget() -> None:
    cache = ResultCache(None, memory_budget=3 * 4096 + 2000)
    for name in ("a", "b", "c"):
        cache.put(name, {"image": Image(torch.zeros(1, 1, 32, 32))})
    assert cache.get("a") is not None
    cache.put("d", {"image": Image(torch.zeros(1, 1, 32, 32))})
    assert cache.get("b") is None
    assert all(cache.get(name) is not None for name in ("a", "c", "d"))
    assert cache.memory.used <= cache.memory.budget


def test_disk_tier_round_trips_media_without_pickle(tmp_path: Path) -> None:
    outputs = {"image": Image(torch.rand(2, 3, 4, 4)), "audio": Audio(torch.rand(1, 100), 16000),
               "video": Video(torch.rand(3, 3, 4, 4), 8.0, Audio(torch.rand(2, 50), 22050)),
               "text": "hi", "n": 3, "nested": {"$media": "not really", "list": [1.5, None]}}
    writer = ResultCache(tmp_path)
    writer.put("k" * 64, outputs)
    writer.close()
    reader = ResultCache(tmp_path)
    got = reader.get("k" * 64)
    assert reader.stats.disk_hits == 1
    assert torch.equal(got["image"].tensor, outputs["image"].tensor)
    assert got["audio"].sample_rate == 16000 and torch.equal(got["audio"].tensor, outputs["audio"].tensor)
    assert got["video"].fps == 8.0 and got["video"].audio.sample_rate == 22050
    assert got["text"] == "hi" and got["n"] == 3
    assert got["nested"] == {"$media": "not really", "list": [1.5, None]}
    blobs = list((tmp_path / "blobs").rglob("*"))
    files = [b for b in blobs if b.is_file()]
    assert len(files) == 1 and files[0].suffix == ".safetensors"
    assert not any(b.suffix in (".pkl", ".pt", ".pickle") for b in blobs)


def test_corrupt_tensor_file_is_detected_and_recomputed(env: GraphEnv, data_dir: Path) -> None:
    document = parse_document({"nodes": {
        "n": {"type": "test.noise", "inputs": {"seed": 3, "size": 16}},
        "m": {"type": "test.brightness", "inputs": {"image": {"from": "n.image"}}}},
        "outputs": {"image": {"from": "n.image"}}})
    first_cache = ResultCache(data_dir / "cache")
    first = Session(env, first_cache).run(document)
    first_cache.close()
    blob = next((data_dir / "cache" / "blobs").rglob("*.safetensors"))
    data = bytearray(blob.read_bytes())
    data[-5] ^= 0xFF
    blob.write_bytes(bytes(data))
    cache = ResultCache(data_dir / "cache")
    second = Session(env, cache).run(document)
    assert cache.stats.corrupt == 1
    assert second.record.nodes["n"].status == "succeeded"
    assert torch.equal(second.values["image"].tensor, first.values["image"].tensor)
    cache.close()
    third_cache = ResultCache(data_dir / "cache")
    third = Session(env, third_cache).run(document)
    assert third.record.nodes["n"].status == "cached" and third_cache.stats.corrupt == 0
    third_cache.close()


def test_corrupt_index_row_is_detected(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    cache.put("a" * 64, {"text": "hello"})
    cache.close()
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.execute("UPDATE entries SET payload = ?", (b'{"text":"hellp"}',))
    reopened = ResultCache(tmp_path)
    assert reopened.get("a" * 64) is None
    assert reopened.stats.corrupt == 1
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM entries").fetchone() == (0,)


def _cli(*args: str, data_dir: Path) -> dict:
    env = {**os.environ, "NODEFORGE_DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, "-m", "nodeforge.engine.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_second_process_sharing_the_data_dir_executes_nothing(data_dir: Path, tmp_path: Path) -> None:
    graph = ROOT / "graphs" / "hello.json"
    first = _cli("run", str(graph), "--set", "name=Grace", "--json", "--out", str(tmp_path / "o1"), data_dir=data_dir)
    assert first["outputs"] == {"message": "Hello, Grace! See you soon."}
    assert {n["status"] for n in first["nodes"].values()} == {"succeeded"}
    second = _cli("run", str(graph), "--set", "name=Grace", "--json", "--out", str(tmp_path / "o2"), data_dir=data_dir)
    assert second["outputs"] == first["outputs"]
    assert {n["status"] for n in second["nodes"].values()} == {"cached"}
    third = _cli("run", str(graph), "--set", "name=Linus", "--json", "--out", str(tmp_path / "o3"), data_dir=data_dir)
    assert third["outputs"] == {"message": "Hello, Linus! See you soon."}
    assert {k: n["status"] for k, n in third["nodes"].items()} == {
        "greeting": "succeeded", "signoff": "cached", "message": "succeeded"}


def test_no_cache_flag_runs_everything(data_dir: Path, tmp_path: Path) -> None:
    graph = str(ROOT / "graphs" / "hello.json")
    _cli("run", graph, "--json", "--out", str(tmp_path / "o1"), data_dir=data_dir)
    again = _cli("run", graph, "--json", "--no-cache", "--out", str(tmp_path / "o2"), data_dir=data_dir)
    assert {n["status"] for n in again["nodes"].values()} == {"succeeded"}


def test_cache_info_and_clear(data_dir: Path, tmp_path: Path) -> None:
    _cli("run", str(ROOT / "graphs" / "hello.json"), "--json", "--out", str(tmp_path / "o"), data_dir=data_dir)
    info = _cli("cache", "info", data_dir=data_dir)
    assert info["entries"] == 3 and info["bytes"] > 0
    env = {**os.environ, "NODEFORGE_DATA_DIR": str(data_dir)}
    cleared = subprocess.run([sys.executable, "-m", "nodeforge.engine.cli", "cache", "clear"], capture_output=True,
                             text=True, env=env, cwd=ROOT, timeout=60)
    assert cleared.stdout.strip() == "cache cleared"
    assert _cli("cache", "info", data_dir=data_dir)["entries"] == 0
