"""The OpenAI media endpoints both ways at once: one real uvicorn nodeforge serves tiny/sd, piper-joe and
whisper-tiny.en; the official ``openai`` client asks it for images, speech and transcripts, and a graph whose
``image.generate`` / ``audio.speech`` / ``audio.transcribe`` name ``openai:<model>`` runs against it as a client."""

from __future__ import annotations

import base64
import dataclasses
import io
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from PIL import Image

from nodeforge.engine.document import parse_document
from nodeforge.engine.session import Session
from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer

openai = pytest.importorskip("openai")
pytest.importorskip("diffusers")
pytest.importorskip("piper")
pytest.importorskip("faster_whisper")
TOKEN = "media-token"
SENTENCE = "Hello world, this is a test."
TINY_IMAGE = {"steps": 2, "seed": 3}


@dataclasses.dataclass
class Served:
    url: str
    client: openai.OpenAI


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Iterator[Served]:
    patch = pytest.MonkeyPatch()
    patch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    settings = Settings(data_dir=tmp_path_factory.mktemp("media"), devices="cpu", watch=False, token=TOKEN,
                        max_upload_bytes=400_000)
    try:
        with LiveServer(create_app(settings)) as live:
            yield Served(live.url, openai.OpenAI(base_url=f"{live.url}/v1", api_key=TOKEN, max_retries=0,
                                                 timeout=120))
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def spoken(served: Served) -> bytes:
    """Piper's WAV of SENTENCE, through the speech endpoint."""
    return served.client.audio.speech.create(model="piper-joe", voice="alloy", input=SENTENCE,
                                             response_format="wav").content


def wav_facts(data: bytes) -> tuple[int, int, float]:
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.getframerate(), wav.getnchannels(), wav.getnframes() / wav.getframerate()


def pixels(b64: str | None, size: tuple[int, int] = (64, 64)) -> bytes:
    """The RGB pixels of a base64 PNG of ``size`` (its metadata, which names the run, left out)."""
    data = base64.b64decode(b64 or "")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as picture:
        assert picture.size == size and picture.mode == "RGB"
        return picture.tobytes()


def test_models_lists_images_voices_and_recognizers(served: Served) -> None:
    listed = [model.id for model in served.client.models.list()]
    assert listed.index("tiny/llm") < listed.index("tiny/sd") < listed.index("piper-joe") \
        < listed.index("whisper-tiny.en")
    assert {"tiny/sdxl", "tiny/vits", "tiny/whisper"} <= set(listed)
    assert ("espeak" in listed) == (shutil.which("espeak-ng") is not None)
    assert served.client.models.retrieve("tiny/sd").id == "tiny/sd"
    assert served.client.models.retrieve("piper-joe").owned_by == "nodeforge"


def test_models_lists_only_what_a_route_answers_with(served: Served) -> None:
    """An inpainting checkpoint repaints through image.inpaint, which no /v1 route runs: it is neither listed nor
    found, though the images route knows the name."""
    listed = [model.id for model in served.client.models.list()]
    assert "tiny/sd" in listed and "tiny/sd-inpainting" not in listed
    with pytest.raises(openai.NotFoundError):
        served.client.models.retrieve("tiny/sd-inpainting")


def test_names_the_file_system_cannot_look_up_are_not_found(served: Served) -> None:
    """A 300-character model name is longer than a file name may be; every route answers 404, not a 500."""
    name = "m" * 300
    with pytest.raises(openai.NotFoundError) as chat:
        served.client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
    assert "is not a usable name: File name too long" in str(chat.value)
    with pytest.raises(openai.NotFoundError):
        served.client.models.retrieve(name)
    with pytest.raises(openai.NotFoundError):
        served.client.models.retrieve(f"tiny/{name}")
    with pytest.raises(openai.NotFoundError):
        served.client.images.generate(model=f"/{name}", prompt="x", size="64x64")
    with pytest.raises(openai.NotFoundError):
        served.client.audio.speech.create(model=name, voice="alloy", input="hello")


def test_images_come_back_as_pngs_of_the_size_asked(served: Served) -> None:
    answer = served.client.images.generate(model="tiny/sd", prompt="a red fox", size="64x64", n=2,
                                           response_format="b64_json", extra_body=TINY_IMAGE)
    assert len(answer.data) == 2
    pictures = [pixels(item.b64_json) for item in answer.data]
    assert pictures[0] != pictures[1], "two images of one batch"
    again = served.client.images.generate(model="tiny/sd", prompt="a red fox", size="64x64", n=2,
                                          response_format="b64_json", extra_body=TINY_IMAGE)
    assert [pixels(item.b64_json) for item in again.data] == pictures, "seeded: the same pictures"
    linked = served.client.images.generate(model="tiny/sd", prompt="a red fox", size="64x48",
                                           response_format="url", extra_body=TINY_IMAGE)
    url = linked.data[0].url
    assert url.startswith(f"{served.url}/api/artifacts/")
    assert httpx2.get(url).status_code == 401, "artifact URLs need the token like every route"
    fetched = httpx2.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert fetched.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(fetched.content)) as picture:
        assert picture.size == (64, 48)
    jpeg = served.client.images.generate(model="tiny/sd", prompt="a red fox", size="64x64", output_format="jpeg",
                                         extra_body=TINY_IMAGE)
    assert base64.b64decode(jpeg.data[0].b64_json).startswith(b"\xff\xd8\xff")


def test_speech_in_each_format(served: Served, spoken: bytes) -> None:
    rate, channels, seconds = wav_facts(spoken)
    assert (rate, channels) == (22050, 1) and 1.0 < seconds < 4.0
    for response_format, magic in (("mp3", (b"ID3", b"\xff\xfb", b"\xff\xf3")), ("flac", (b"fLaC",)),
                                   ("opus", (b"OggS",))):
        sound = served.client.audio.speech.create(model="piper-joe", voice="alloy", input=SENTENCE,
                                                  response_format=response_format).content
        assert sound.startswith(magic), response_format
    pcm = served.client.audio.speech.create(model="piper-joe", voice="alloy", input=SENTENCE,
                                            response_format="pcm").content
    assert abs(len(pcm) / 2 / 24_000 - seconds) < 0.3, "16-bit mono at 24 kHz, about as long as the WAV"
    robot = served.client.audio.speech.create(model="espeak", voice="en-us", input="Hello.",  # .ci/run installs it
                                              response_format="wav", speed=2.0)
    assert wav_facts(robot.content)[0] == 22050


def test_speech_takes_the_models_own_voice_and_openais(served: Served) -> None:
    """OpenAI clients always send a voice: piper-joe's own (joe) and OpenAI's stock names mean its voice; another
    name is a 400 on voice that says which voice there is."""
    own = served.client.audio.speech.create(model="piper-joe", voice="joe", input=SENTENCE, response_format="wav")
    stock = served.client.audio.speech.create(model="piper-joe", voice="nova", input=SENTENCE,
                                              response_format="wav")
    assert wav_facts(own.content)[:2] == wav_facts(stock.content)[:2] == (22050, 1)
    with pytest.raises(openai.BadRequestError) as unknown:
        served.client.audio.speech.create(model="piper-joe", voice="bob", input=SENTENCE)
    assert unknown.value.param == "voice"
    assert "unknown voice 'bob': piper-joe has a single voice, 'joe'" in str(unknown.value)


def test_transcription_of_pipers_speech(served: Served, spoken: bytes) -> None:
    answer = served.client.audio.transcriptions.create(model="whisper-tiny.en", file=("speech.wav", spoken))
    words = answer.text.lower()
    assert "hello world" in words and "test" in words
    plain = served.client.audio.transcriptions.create(model="whisper-tiny.en", file=("speech.wav", spoken),
                                                      response_format="text")
    assert plain.strip() == answer.text
    verbose = served.client.audio.transcriptions.create(model="whisper-tiny.en", file=("speech.wav", spoken),
                                                        response_format="verbose_json", language="en")
    assert verbose.text == answer.text and abs(verbose.duration - wav_facts(spoken)[2]) < 0.01
    flac = served.client.audio.speech.create(model="piper-joe", voice="alloy", input=SENTENCE,
                                             response_format="flac").content
    from_flac = served.client.audio.transcriptions.create(model="whisper-tiny.en", file=("speech.flac", flac))
    assert "hello world" in from_flac.text.lower(), "a FLAC upload is decoded to WAV first"


def test_a_graph_of_openai_nodes_against_the_server(served: Served, session: Session,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODEFORGE_OPENAI_BASE_URL", f"{served.url}/v1")
    monkeypatch.setenv("NODEFORGE_OPENAI_API_KEY", TOKEN)
    graph = {"nodes": {
        "picture": {"type": "image.generate", "inputs": {"prompt": "a red fox", "model": "openai:tiny/sd",
                                                          "width": 64, "height": 64, "steps": 2, "seed": 5}},
        "voice": {"type": "audio.speech", "inputs": {"text": SENTENCE, "model": "openai:piper-joe"}},
        "heard": {"type": "audio.transcribe", "inputs": {"audio": {"from": "voice.audio"},
                                                         "model": "openai:whisper-tiny.en"}}},
        "outputs": {"picture": {"from": "picture.image"}, "voice": {"from": "voice.audio"},
                    "heard": {"from": "heard.text"}}}
    result = session.run(parse_document(graph))
    assert result.record.status == "succeeded", result.record.error
    picture, audio = result.values["picture"], result.values["voice"]
    assert tuple(picture.tensor.shape) == (1, 3, 64, 64) and float(picture.tensor.std()) > 0
    assert audio.sample_rate == 22050 and audio.tensor.shape[0] == 1 and 1.0 < audio.seconds < 4.0
    assert "hello world" in result.values["heard"].lower()
    local = session.run(parse_document({"nodes": {"picture": {**graph["nodes"]["picture"], "inputs": {
        **graph["nodes"]["picture"]["inputs"], "model": "tiny/sd"}}}}))
    assert local.values["picture.image"].tensor.sub(picture.tensor).abs().max() < 2 / 255, \
        "the server drew what the local node draws (seed and steps sent), give or take PNG rounding"


def test_errors_on_both_sides(served: Served, spoken: bytes, session: Session,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    client = served.client
    with pytest.raises(openai.NotFoundError) as unknown:
        client.images.generate(model="tiny/nothing", prompt="x", size="64x64")
    assert unknown.value.code == "model_not_found" and "unknown tiny model 'tiny/nothing'" in str(unknown.value)
    with pytest.raises(openai.NotFoundError) as wrong_kind:
        client.audio.speech.create(model="tiny/sd", voice="alloy", input="hello")
    assert wrong_kind.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.audio.transcriptions.create(model="piper-joe", file=("speech.wav", spoken))
    with pytest.raises(openai.NotFoundError) as unloadable:  # passes validation, fails when the run resolves it
        client.audio.speech.create(model="nope", voice="alloy", input="hello")
    assert unloadable.value.param == "model" and "404 - unknown model 'nope': it is not" in str(unloadable.value)
    with pytest.raises(openai.BadRequestError) as voice:
        client.audio.speech.create(model="espeak", voice="xx-nope", input="hello")
    assert voice.value.param == "voice" and "unknown espeak-ng voice 'xx-nope'" in str(voice.value)
    with pytest.raises(openai.NotFoundError) as remote:
        client.images.generate(model="openai:tiny/sd", prompt="x")
    assert "serves local models" in str(remote.value)
    with pytest.raises(openai.BadRequestError) as size:
        client.images.generate(model="tiny/sd", prompt="x", size="60x64", extra_body=TINY_IMAGE)
    assert size.value.param == "size" and "size: width 60 is not a positive multiple of 8" in str(size.value)
    with pytest.raises(openai.BadRequestError) as text_file:
        client.audio.transcriptions.create(model="whisper-tiny.en", file=("notes.wav", b"just some text\n" * 20))
    assert "not a sound this server can read" in str(text_file.value)
    with pytest.raises(openai.APIStatusError) as oversized:
        client.audio.transcriptions.create(model="whisper-tiny.en", file=("big.wav", spoken * 8))
    assert oversized.value.status_code == 413 and "larger than the limit of 400000 bytes" in str(oversized.value)

    monkeypatch.setenv("NODEFORGE_OPENAI_BASE_URL", f"{served.url}/v1")
    monkeypatch.setenv("NODEFORGE_OPENAI_API_KEY", TOKEN)
    graph = {"nodes": {"picture": {"type": "image.generate", "inputs": {
        "prompt": "x", "model": "openai:tiny/nothing", "width": 64, "height": 64}}}}
    failed = session.run(parse_document(graph))
    assert failed.record.status == "failed"
    error = failed.record.nodes["picture"].error
    assert error.startswith("node 'picture' (image.generate), input 'model': ")
    assert "answered 404 for model 'tiny/nothing'" in error and "unknown tiny model 'tiny/nothing'" in error
    monkeypatch.setenv("NODEFORGE_OPENAI_API_KEY", "wrong")
    speech = {"nodes": {"voice": {"type": "audio.speech", "inputs": {"text": "Hi.", "model": "openai:piper-joe"}}}}
    refused = session.run(parse_document(speech))
    assert "input 'model'" in refused.record.error and "answered 401" in refused.record.error


def test_speech_formats_decode_back_and_uploads_become_16_khz_mono_wavs(tmp_path: Path) -> None:
    """Each speech format decodes to the same length (pcm: 24 kHz); an upload for transcription, in any format,
    becomes a 16 kHz mono WAV as it decodes, and one longer than --max-audio-seconds is refused however small the
    file, leaving no WAV behind."""
    import torch

    from nodeforge.engine.limits import MediaLimits
    from nodeforge.engine.values import Audio
    from nodeforge.nodes.openai_media_backend import decode_audio, wav_bytes
    from nodeforge.server.media_audio import AudioFormatError, SoundTooLarge, encode_speech, upload_to_wav

    tone = Audio(0.3 * torch.sin(torch.arange(22050) / 22050 * 2 * torch.pi * 330).unsqueeze(0), 22050)
    wav = wav_bytes(tone)
    assert encode_speech(wav, "wav") == wav
    for response_format in ("mp3", "flac", "opus", "aac"):
        back = decode_audio(encode_speech(wav, response_format))
        assert abs(back.seconds - 1.0) < 0.08, (response_format, back.seconds)
    assert len(encode_speech(wav, "pcm")) == 2 * 24_000
    target = tmp_path / "upload.wav"
    for sound in (wav, encode_speech(wav, "flac")):
        assert upload_to_wav(io.BytesIO(sound), target, MediaLimits(max_audio_seconds=2)) == pytest.approx(1.0)
        assert wav_facts(target.read_bytes()) == (16_000, 1, pytest.approx(1.0))
    with pytest.raises(SoundTooLarge, match=r"the sound is 1\.0 s long, over the limit of 0\.5 s"):
        upload_to_wav(io.BytesIO(encode_speech(wav, "flac")), target, MediaLimits(max_audio_seconds=0.5))
    assert not target.exists()
    with pytest.raises(AudioFormatError, match="it cannot be decoded"):
        upload_to_wav(io.BytesIO(b"just some text\n" * 20), target, MediaLimits())
    assert not target.exists()
