"""Helpers shared by the model families."""

from pathlib import Path

import pytest

from nodeforge.engine.errors import NodeError
from nodeforge.nodes.family_helpers import reading_model
from nodeforge.nodes.recognition import load_transformers_whisper


def test_reading_model_turns_a_library_failure_into_an_error_on_the_model_input(tmp_path: Path) -> None:
    with pytest.raises(NodeError) as caught, reading_model("mine", tmp_path, "is not a test model"):
        raise OSError("no config.json here\nlong library explanation")
    assert str(caught.value) == f"model 'mine' at {tmp_path} is not a test model: no config.json here"
    assert caught.value.input == "model"


def test_an_empty_folder_is_not_a_whisper_model(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match=rf"model 'empty' at {tmp_path} is not a transformers Whisper model: "):
        load_transformers_whisper("empty", tmp_path, "cpu")
