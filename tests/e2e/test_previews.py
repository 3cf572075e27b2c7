"""Step previews in the editor: a diffusion node's latest ``node.preview`` picture is drawn on the node."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Shots
from tests.e2e.test_editor import import_json, run_and_wait


def test_a_video_nodes_step_preview_is_drawn_on_it(editor: Any, shot: Shots) -> None:
    page = editor
    import_json(page, {"nodes": {"clip": {"type": "video.generate", "inputs": {
        "prompt": "a red fox running in the snow", "model": "tiny/wan", "frames": 9, "width": 64, "height": 64,
        "steps": 3}}}, "outputs": {"video": {"from": "clip.video"}}}, "clip.json")
    assert run_and_wait(page) == "succeeded"
    page.wait_for_function("() => editor.canvas.findNode('clip').nf.preview?.naturalWidth > 0")
    drawn = page.evaluate("(() => { const n = editor.canvas.findNode('clip'), p = n.nf.preview; "
                          "return [p.naturalWidth, p.naturalHeight, n.nf.previewBase < n.size[1]]; })()")
    assert drawn == [8, 8, True]  # one pixel per latent cell, in room added at the bottom of the node
    shot(page, "the step preview on the video node")
