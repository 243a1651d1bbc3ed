"""The web page (``scl-slt app``) and the Space folder, offline, up to a real browser.

A tiny model whose translations depend on the video, with the model card a recipe run writes.
The page's facts and answers are checked against the card and the pipeline in the same process;
the browser test drives Debian's chromium through playwright against ``scl-slt app`` on a free
localhost port, and the Space test serves the prepared Space folder where the project cannot be
imported and calls its page's API.
"""

from __future__ import annotations

import ast
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from importlib.metadata import packages_distributions, version
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from huggingface_hub import SpaceCard
from transformers import pipeline

import modeling_scl_slt
from tests._isolation import BLOCK_PROJECT
from tests._tiny_models import save_video_dependent_model
from trainers.application.cli import main
from trainers.application.demo import demo_config
from trainers.application.web_page import (
    ModelFacts,
    TranslationPage,
    format_seconds,
    format_translation,
    markdown_section,
)
from trainers.publishing import hub
from trainers.publishing.hub import prepare_model_upload
from trainers.publishing.model_card import write_model_card
from trainers.publishing.space import (
    APP_FILE,
    PAGE_FILE,
    PAGE_SOURCE,
    REQUIREMENTS,
    REQUIREMENTS_FILE,
    SPACE_FILES,
    prepare_space_upload,
)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    # A webcam without a camera: chromium's fake device, permission granted without asking.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
# Screenshots are kept here (CI may collect the folder); SCL_SLT_TEST_ARTIFACTS names another one.
ARTIFACTS = Path(os.environ.get("SCL_SLT_TEST_ARTIFACTS", ROOT / "test-artifacts"))
VIDEO_PREPROCESSING = {"size": 16, "resize": 20, "max_frames": 16}
SCORES = {"bleu1": 30.0, "bleu2": 20.0, "bleu3": 12.5, "bleu4": 8.25, "rouge_l": 31.5}
# Gradio's recorder hands over only the chunks finished before "stop", and chromium encodes its fake
# 1080p camera slowly on a busy CPU: a 2.5 s recording could come out empty.
WEBCAM_RECORDING_MS = 6000
SERVER_START_S = 180  # bounded wait for a page to answer (2 busy cores, Gradio's imports)
QUIET_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recipe run's model/ folder with its card; the translations depend on the video."""
    run = tmp_path_factory.mktemp("web") / "run"
    save_video_dependent_model(run / "model", VIDEO_PREPROCESSING)
    (run / "recipe.yaml").write_text(yaml.safe_dump(demo_config(quick=True).to_dict()), encoding="utf-8")
    (run / "metrics.json").write_text(json.dumps({"validation": SCORES, "test": SCORES}), encoding="utf-8")
    write_model_card(run)
    return run / "model"


@pytest.fixture(scope="module")
def translator(model_dir: Path):
    return pipeline(modeling_scl_slt.PIPELINE_TASK, model=str(model_dir))


def page_text(translator, video: Path) -> str:
    """What the page must show for ``video``: the pipeline's windows of the longest length, with
    their timestamps, as the page formats them (computed here, in the test's own process)."""
    seconds = translator.max_frames / translator.frame_rate
    return format_translation(translator(str(video), chunk_length_s=seconds, return_timestamps=True))


def signer_frames(num_frames: int, size: int = 160) -> np.ndarray:
    """(T, size, size, 3) uint8: a figure whose two hands circle in front of it (a stand-in signer)."""
    y, x = np.mgrid[0:size, 0:size] / size
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        frame = np.full((size, size, 3), 136, dtype=np.uint8)
        frame[(y > 0.35) & (np.abs(x - 0.5) < 0.18 + 0.25 * (y - 0.35))] = (30, 58, 52)  # body
        frame[(x - 0.5) ** 2 + (y - 0.22) ** 2 < 0.01] = (94, 128, 126)  # head
        angle = 2 * np.pi * t / num_frames
        for side in (-1, 1):
            hand_x, hand_y = 0.5 + side * (0.2 + 0.1 * np.cos(angle)), 0.6 - 0.15 * np.sin(side * angle)
            frame[(x - hand_x) ** 2 + (y - hand_y) ** 2 < 0.004] = (240, 190, 40)
        frames[t] = frame
    return frames


def write_browser_video(path: Path, frames: np.ndarray) -> Path:
    """H.264 yuv420p at 25 frames/s: a file browsers play (the preview) and the pipeline reads."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A short clip, a clip too short for the model, and a file that is no video."""
    folder = tmp_path_factory.mktemp("videos")
    write_browser_video(folder / "signing.mp4", signer_frames(40))
    write_browser_video(folder / "too_short.mp4", signer_frames(2))
    (folder / "broken.mp4").write_bytes(b"this is not a video" * 50)
    return {path.stem: path for path in folder.iterdir()}


# --- the page's parts, in process -------------------------------------------------------------
def test_facts_come_from_the_card_and_the_pipeline(model_dir: Path, translator) -> None:
    facts = ModelFacts.from_model_folder(model_dir, translator)
    assert facts.has_card and facts.name == "scl-slt-synthetic"
    assert facts.languages == ["en"]
    assert sorted(facts.scores) == sorted(
        (split, metric, SCORES[key])
        for split in ("validation", "test")
        for metric, key in (("BLEU-4", "bleu4"), ("ROUGE-L", "rouge_l"))
    )
    assert "Not a replacement for human interpreters" in facts.limits
    assert (facts.min_frames, facts.max_frames) == (translator.min_frames, VIDEO_PREPROCESSING["max_frames"])
    assert facts.frame_rate == translator.frame_rate == 25 and facts.window_seconds == 16 / 25
    summary, limits = facts.summary_markdown(), facts.limits_markdown()
    for shown in ("scl-slt-synthetic", "`en`", "| BLEU-4 | ROUGE-L |", "| test | 8.25 | 31.50 |"):
        assert shown in summary, summary
    for shown in ("at least 4 frames", "16 frames (0.64 s)", "25 frames per second", "interpreters"):
        assert shown in limits, limits


def test_a_folder_without_a_card_still_names_the_model_and_says_why_no_scores(
    model_dir: Path, translator, tmp_path: Path
) -> None:
    folder = tmp_path / "bare-model"
    folder.mkdir()
    for path in model_dir.iterdir():
        if path.name != "README.md":
            (folder / path.name).write_bytes(path.read_bytes())
    facts = ModelFacts.from_model_folder(folder, translator)
    assert (facts.name, facts.has_card, facts.scores, facts.limits) == ("bare-model", False, [], "")
    assert "the folder has no model card" in facts.summary_markdown()
    assert facts.limits_markdown().count("\n- ") == 1  # the pipeline's input rule only


def test_a_card_that_is_not_yaml_is_one_error_line_naming_it(
    model_dir: Path, translator, tmp_path: Path
) -> None:
    (tmp_path / "README.md").write_text("---\nlanguage: [en\n---\n# A model\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"^model card .*README.md cannot be read: ") as error:
        ModelFacts.from_model_folder(tmp_path, translator)
    assert "\n" not in str(error.value)


def test_markdown_section_stops_at_the_next_heading() -> None:
    text = "# T\n\n## Intended use and limitations\n\n- one\n- two\n\n## How to use\n\ncode\n"
    assert markdown_section(text, "Intended use and limitations") == "- one\n- two"
    assert markdown_section(text, "Citation") == ""


def test_windows_are_one_line_each_with_their_time_span() -> None:
    assert format_seconds(75.25) == "01:15.2" and format_seconds(0) == "00:00.0"
    one_window = [{"translation_text": "the rain comes", "timestamp": (0.0, 1.2)}]
    assert format_translation(one_window) == "the rain comes"
    windows = [
        {"translation_text": "the rain comes", "timestamp": (0.0, 4.0)},
        {"translation_text": "sun in the north", "timestamp": (4.0, 8.48)},
    ]
    assert format_translation(windows) == "00:00.0–00:04.0  the rain comes\n00:04.0–00:08.5  sun in the north"


def test_the_page_answers_with_the_pipeline_translation_or_its_one_line_error(
    model_dir: Path, translator, videos: dict[str, Path]
) -> None:
    page = TranslationPage(translator, ModelFacts.from_model_folder(model_dir, translator))
    text, error = page.translate(str(videos["signing"]))
    assert text == page_text(translator, videos["signing"]) and not error.visible
    assert len(text.splitlines()) > 1 and text.startswith("00:00.0–")  # 1.6 s in windows of 0.64 s
    for name, expected in (("broken", "cannot be decoded"), ("too_short", "has 2 frames")):
        text, error = page.translate(str(videos[name]))
        assert text == "" and error.visible and expected in error.value, error.value
        assert "\n" not in error.value and "Traceback" not in error.value
        assert f"'{name}.mp4'" in error.value and str(videos[name].parent) not in error.value
    text, error = page.translate(None)
    assert text == "" and "Upload a video" in error.value


def test_app_of_a_folder_that_is_no_model_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["app", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("scl-slt app: error: ") and "config.json is missing" in err and "\n" not in err


# --- the Space folder -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_space_upload("me/scl-slt-demo", tmp_path_factory.mktemp("space") / "space", title="Try it")


def test_space_folder_holds_the_app_the_page_pins_and_card(space: Path) -> None:
    assert sorted(path.name for path in space.iterdir()) == sorted(SPACE_FILES)
    assert (space / PAGE_FILE).read_bytes() == PAGE_SOURCE.read_bytes()
    assert '"me/scl-slt-demo"' in (space / APP_FILE).read_text(encoding="utf-8")
    pins = dict(line.split("==") for line in (space / REQUIREMENTS_FILE).read_text().splitlines())
    assert pins == {name: version(name).split("+")[0] for name in REQUIREMENTS}
    card = SpaceCard.load(space / "README.md")
    assert (card.data.sdk, card.data.sdk_version, card.data.app_file) == (
        "gradio",
        version("gradio"),
        APP_FILE,
    )
    assert card.data.models == ["me/scl-slt-demo"] and card.data.title == "Try it"
    assert card.data.python_version == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert "https://huggingface.co/me/scl-slt-demo" in card.text


def imported_distributions(paths: list[Path]) -> set[str]:
    """The installed distributions that the top-level modules imported by ``paths`` come from."""
    provided = packages_distributions()
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {normalized(dist) for name in names for dist in provided.get(name, [])}


def normalized(distribution: str) -> str:
    """A distribution name as pip compares them: ``huggingface_hub`` → ``huggingface-hub``."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_space_requirements_cover_every_import_of_the_space_and_the_model_code(
    space: Path, model_dir: Path
) -> None:
    code = [
        path for path in Path(modeling_scl_slt.__file__).parent.glob("*.py") if path.name != "__init__.py"
    ]
    needed = imported_distributions([space / APP_FILE, space / PAGE_FILE, *code])
    assert needed, "no imports found: the check would prove nothing"
    pinned = {
        normalized(line.split("==")[0]) for line in (space / REQUIREMENTS_FILE).read_text().splitlines()
    }
    assert needed <= pinned, needed - pinned


def test_push_prepares_the_space_beside_the_model_and_uploads_both(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``scl-slt push --space-repo-id``: the network calls are replaced, the staged folders checked."""
    uploads = []

    def upload(folder: Path, repo_id: str, repo_type: str = "model", **kwargs: object) -> str:
        uploads.append(
            (Path(folder).name, repo_id, repo_type, sorted(p.name for p in Path(folder).iterdir()))
        )
        return f"https://huggingface.co/{repo_id}"

    monkeypatch.setattr(hub, "check_online", lambda action: None)
    monkeypatch.setattr(hub, "upload_folder", upload)
    staging = tmp_path / "staging"
    argv = ["push", str(model_dir), "--repo-id", "me/m", "--space-repo-id", "me/try-m", "--staging-dir"]
    assert main([*argv, str(staging)]) == 0
    assert [upload[:3] for upload in uploads] == [("model", "me/m", "model"), ("space", "me/try-m", "space")]
    assert uploads[1][3] == sorted(SPACE_FILES)
    assert '"me/m"' in (staging / "space" / APP_FILE).read_text(encoding="utf-8")
    assert SpaceCard.load(staging / "space" / "README.md").data.title == "try-m"


def test_a_space_needs_a_model_repository_id(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be USER/NAME"):
        prepare_space_upload("just-a-name", tmp_path / "space")


# --- served pages -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_page(url: str, server: subprocess.Popen, log: Path) -> None:
    """Return once ``url`` answers 200; fail with the server's log if it exits or never answers."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"{url} did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on TCP ``port`` (read from /proc/net/tcp*)."""
    found = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        rows = table.read_text().splitlines()[1:] if table.exists() else []
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                packed = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                words = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def serve(command: list[str], port: int, log: Path, env: dict[str, str], cwd: Path) -> Iterator[str]:
    """Run ``command`` (a server on ``port``) until the caller is done; yields its URL."""
    with log.open("w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_page(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def app(model_dir: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``scl-slt app MODEL_DIR --port N``, as a user starts it, on a free localhost port.

    Yields the page's URL and the folder where Gradio keeps the uploads (and webcam recordings).
    """
    port = free_port()
    command = [sys.executable, "-m", "trainers.application.cli", "app", str(model_dir), "--port", str(port)]
    uploads = tmp_path / "gradio"
    env = {**os.environ, **QUIET_ENV, "GRADIO_TEMP_DIR": str(uploads)}
    for url in serve(command, port, tmp_path / "app.log", env, ROOT):
        yield url, uploads


@pytest.mark.slow
def test_a_port_in_use_is_one_error_line(model_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            "trainers.application.cli",
            "app",
            str(model_dir),
            "--port",
            str(port),
        ]
        env = {**os.environ, **QUIET_ENV}
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"scl-slt app: error: cannot serve on 127.0.0.1:{port}: ") and "--port" in last
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_page_in_a_real_browser(
    app: tuple[str, Path], model_dir: Path, translator, videos: dict[str, Path]
) -> None:
    """Facts and limits on the page; upload → translation; bad and too-short files → one error
    line; the webcam source records (chromium's fake camera) and the recording is translated."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run installs it)")
    from playwright.sync_api import expect, sync_playwright

    url, uploads = app
    assert listening_addresses(int(url.rsplit(":", 1)[1].strip("/"))) == {"127.0.0.1"}
    expected = page_text(translator, videos["signing"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            facts, limits = page.locator("#model-facts"), page.locator("#model-limits")
            expect(facts).to_contain_text("scl-slt-synthetic", timeout=60_000)
            expect(facts).to_contain_text("8.25")
            expect(limits).to_contain_text("at least 4 frames")
            expect(limits).to_contain_text("Not a replacement for human interpreters")

            video, translate = page.locator("#video"), page.locator("#translate")
            translation, error = page.locator("#translation textarea"), page.locator("#error textarea")
            video.locator("input[type=file]").set_input_files(str(videos["signing"]))
            translate.click()
            expect(translation).to_have_value(expected, timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "web_page.png"), full_page=True)

            for name, message in (("broken", "cannot be decoded"), ("too_short", "has 2 frames")):
                video.get_by_role("button", name="Clear").first.click()
                video.locator("input[type=file]").set_input_files(str(videos[name]))
                translate.click()
                expect(error).to_have_value(re.compile(message), timeout=60_000)
                assert f"'{name}.mp4'" in error.input_value() and "\n" not in error.input_value()
                assert translation.input_value() == "" and "Traceback" not in page.content()
            page.screenshot(path=str(ARTIFACTS / "web_page_error.png"), full_page=True)

            video.get_by_role("button", name="Clear").first.click()
            video.get_by_role("button", name="Capture from camera").click()
            video.get_by_text("Click to Access Webcam").click()
            record = video.locator("button[aria-label='start recording']")
            record.click()  # starts; the same button stops
            page.wait_for_timeout(WEBCAM_RECORDING_MS)
            record.click()
            expect(video.get_by_role("button", name="Clear").first).to_be_visible(timeout=60_000)
            translate.click()
            expect(translation).not_to_have_value("", timeout=60_000)
            (recording,) = uploads.rglob("sample.*")
            assert translation.input_value() == page_text(translator, recording)
            expect(page.locator("#error")).to_be_hidden()
        finally:
            browser.close()


@pytest.mark.slow
def test_the_space_serves_the_model_where_the_project_cannot_be_imported(
    space: Path, model_dir: Path, translator, videos: dict[str, Path], tmp_path: Path
) -> None:
    """The Space folder's app.py, run as on a Space (no scl-slt installed), answers through its API
    as the pipeline does; ``SCL_SLT_MODEL`` points it at the prepared model upload folder."""
    from gradio_client import Client, handle_file

    uploaded = prepare_model_upload(model_dir, tmp_path / "model", repo_id="me/scl-slt-demo")
    port = free_port()
    script = BLOCK_PROJECT + f"import runpy\nrunpy.run_path({APP_FILE!r}, run_name='__main__')\n"
    env = {
        **os.environ,
        **QUIET_ENV,
        "SCL_SLT_MODEL": str(uploaded),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
    }
    env.pop("PYTHONPATH", None)  # web_page.py is found beside app.py, as on a Space
    for url in serve([sys.executable, "-c", script], port, tmp_path / "space.log", env, space):
        result = Client(url, verbose=False).predict(
            handle_file(str(videos["signing"])), api_name="/translate"
        )
        assert result[0] == page_text(translator, videos["signing"])
