"""Slow (``make test-slow``): ComfyUI's own pictures, kept in tests/data/comfy_parity (made by bench/comfy_parity.py
with ComfyUI 0.3.64 on the full-size SD 1.5 random-weight checkpoint the bench builds), drawn again by nodeforge
from the same workflow imported with the real importer: each must come out at 40 dB PSNR or better."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.parity_inputs import build_embedding, case_workflow
from nodeforge.engine.document import parse_document
from nodeforge.engine.session import Session
from nodeforge.nodes.importers import import_comfy
from tests.nodes.image_support import image_executor, psnr, succeeded

__all__ = ["image_executor"]

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "comfy_parity"
CASES = json.loads((DATA / "cases.json").read_text())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bench's checkpoint, built in a child process as the bench builds it (the same seeded weights)."""
    folder = tmp_path_factory.mktemp("parity")
    path = folder / "sd15-random.safetensors"
    code = ("import sys; from pathlib import Path; from bench.parity_inputs import build_checkpoint; "
            "build_checkpoint('sd15', Path(sys.argv[1]), Path(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", code, str(path), str(folder / "models")], cwd=ROOT, check=True)
    return path


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda case: f"{case['sampler']}-{case['scheduler']}-{case['n']}")
def test_nodeforge_draws_comfyuis_picture(image_executor: Session, checkpoint: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, case: dict[str, Any]) -> None:
    from PIL import Image as PILImage

    from nodeforge.engine.values import Image

    embedding = build_embedding("sd15", tmp_path / "embeddings")
    (tmp_path / "embeddings" / "nf-parity.safetensors").symlink_to(embedding)
    monkeypatch.chdir(tmp_path / "embeddings")  # the prompt's embedding:nf-parity is found as a relative file
    settings = argparse.Namespace(steps=CASES["steps"], cfg=None, size=CASES["size"])
    workflow = case_workflow(json.loads((ROOT / "tests" / "data" / "comfy" / "default_api.json").read_text()),
                             str(checkpoint), case, settings, "parity")
    document = import_comfy(json.dumps(workflow).encode()).document
    result = image_executor.run(parse_document(document))
    drawn = next(value for key, value in succeeded(result).items() if isinstance(value, Image))
    expected = Image.from_pil([PILImage.open(DATA / case["picture"]).convert("RGB")])
    assert psnr(drawn.tensor.float().cpu(), expected.tensor.float()) >= 40.0
