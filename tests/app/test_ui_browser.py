"""The web page (`foryou ui`) on a running stack: a tiny world on the real broker and Redis, the real
ingesters, Thunder, a registered tiny ranker and home_mixer (foryou.app.stack, in-process, over
gRPC), and the page's server on a free port.

- with JavaScript off (plain HTTP, no browser): the feed page has the served posts with their
  probabilities, weights, scores, source and model version, the removed candidates by filter and
  the query's features; the model page has its curve and its evaluation table;
- in headless Chromium (Debian's `chromium` + `chromium-driver`, driven by Selenium through
  /usr/bin/chromedriver; `make setup` installs them): the same feed page, a removed candidate with
  its filter, then the model page through the feed's model link; a screenshot in tmp_path."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from candidate_pipeline import PipelineConfig
from foryou.app.feed_client import get_debug_feed
from foryou.app.stack import Stack, StackConfig
from foryou.app.ui import UiConfig, UiServer
from foryou.core.kafka import ensure_topics
from foryou.core.settings import Settings
from phoenix.registry import Registry
from world.config import WorldConfig
from world.generator import generate_world
from world.publish import publish_world

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian's chromium-driver; Selenium never downloads one
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class RunningUi:
    url: str  # the page's root, ending in /
    viewer: int  # a viewer whose feed has served posts and removed candidates
    version: str  # the registered ranker version the stack serves
    model_version: str


def _tiny_ranker(tmp: Path, models: Path) -> tuple[str, str]:
    """A tiny untrained ranker registered as ranker-0001, with what training leaves in its folder: a
    metrics.json with an evaluation table and a training-curve PNG. (version, model_version)"""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from phoenix.ranker.checkpoint import save_model
    from phoenix.ranker.config import RankerConfig
    from phoenix.ranker.model import RankerModel

    torch.manual_seed(0)
    ckpt = tmp / "ckpt"
    model_version = save_model(ckpt, RankerModel(RankerConfig.tiny()), step=1)
    per_action = {
        "SERVER_TWEET_FAV": {"roc_auc": 0.61, "pr_auc": 0.2},
        "SERVER_TWEET_REPLY": {"roc_auc": 0.57},
    }
    metrics = {"model_version": model_version, "steps": 3, "eval": {"metrics": {"ranker": per_action}}}
    (ckpt / "metrics.json").write_text(json.dumps(metrics))
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0.7, 0.5, 0.4])
    fig.savefig(ckpt / "training_curves.png", dpi=50)
    plt.close(fig)
    version = Registry(models).register(
        "ranker", ckpt, metrics={"weighted_ndcg": 0.42, "auc": {"SERVER_TWEET_FAV": 0.61}}
    )
    return version, model_version


def _pick_viewer(address: str, world: Any) -> int:
    """A viewer whose debug feed has both served posts and filtered candidates, and was scored by the
    ranker (the first requests warm the ranker up: its first torch call is slow)."""
    import polars as pl

    follows = world.follows.filter(pl.col("kind") == "follow").group_by("user_id").len()
    viewers = follows.filter(pl.col("len") >= 3).sort(["len", "user_id"], descending=[True, False])
    candidates = viewers["user_id"].head(12).to_list()
    end = time.monotonic() + 120
    while time.monotonic() < end:
        for viewer in candidates:
            resp = get_debug_feed(address, None, viewer, timeout_s=30)
            outcomes = {c.outcome for c in resp.candidates}
            if resp.model_version and "ranker" not in resp.degraded and {"selected", "filtered"} <= outcomes:
                return int(viewer)
        time.sleep(0.5)
    raise AssertionError("no viewer with a ranked feed and removed candidates")


@pytest.fixture(scope="module")
def running_ui(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningUi]:
    tmp = tmp_path_factory.mktemp("ui")
    uid = f"t{uuid.uuid4().hex[:10]}"
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        data_dir=str(tmp / "data"),
        topic_prefix=f"{uid}.",
        redis_prefix=f"{uid}:",
        partitions=2,
        kafka_session_timeout_ms=2000,
        log_json=False,
    )
    ensure_topics(settings, settings.topics())
    world = generate_world(WorldConfig.tiny(seed=0, now_ms=int(time.time() * 1000)))
    publish_world(world, settings, progress=False)
    models = tmp / "models"
    version, model_version = _tiny_ranker(tmp, models)

    from home_mixer.service import HomeMixerConfig

    # patient deadlines: every service shares this process (and the machine) with the test
    patient = HomeMixerConfig(pipeline=PipelineConfig(request_deadline_s=10.0, component_timeout_s=5.0))
    stack = Stack(settings, StackConfig(ranker_dir=str(Registry(models).path(version)), home_mixer=patient))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="stack", daemon=True)
    thread.start()

    def run(coro: Any, timeout_s: float = 180) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout_s)

    ui: UiServer | None = None
    try:
        run(stack.start_ingestion())
        run(stack.wait_caught_up(120))
        run(stack.start_serving())
        address = stack.addresses["home_mixer"]
        viewer = _pick_viewer(address, world)
        ui = UiServer(UiConfig(home_mixer_address=address, models_root=models, settings=settings)).start()
        yield RunningUi(ui.url, viewer, version, model_version)
    finally:
        if ui is not None:
            ui.stop()
        run(stack.stop(), 60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _get(url: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET; errors too (no exception for 4xx / 5xx)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers.get_content_type(), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get_content_type(), e.read()


def test_pages_without_javascript(running_ui: RunningUi) -> None:
    """The core view is plain server-rendered HTML: no script at all, everything in the markup."""
    ui = running_ui
    status, ctype, body = _get(f"{ui.url}feed?viewer={ui.viewer}")  # the index page's form
    html = body.decode()
    assert status == 200 and ctype == "text/html", html[:500]
    assert "<script" not in html.lower()
    assert f"Feed of viewer {ui.viewer}" in html
    served = re.findall(r'<tr class="post" id="post-(\d+)"', html.split('id="removed"')[0])
    assert served, "no served posts on the page"
    # each post: its probabilities times weights, its source, the model version (a link to its page)
    assert re.search(r"\b(favorite|reply|dwell|click|share)\b [0-9.e-]+×[0-9.e-]+", html)
    assert "ThunderSource" in html and "in-network" in html
    assert f'<a id="model-link" href="/models/{ui.version}">{ui.model_version}</a>' in html
    # removed candidates, grouped by the filter that removed them; each row names that filter
    groups = re.findall(r'<section class="removed-group" data-filter="(\w+)">(.*?)</section>', html, re.S)
    assert groups, "no removed candidates on the page"
    for name, section in groups:
        assert re.search(r'<tr class="post" id="post-\d+"', section), name
        assert f'<td class="filter">{name}' in section
    # the query's hydrated features
    features = html.split('id="features"')[1].split("</table>")[0]
    assert f"<th>viewer_id</th><td>{ui.viewer}</td>" in features
    assert re.search(r"<th>following</th><td>\d+: ", features)

    status, _, body = _get(f"{ui.url}models/{ui.version}")
    page = body.decode()
    assert status == 200 and "<script" not in page.lower()
    assert f'src="/models/{ui.version}/training_curves.png"' in page
    assert "<h4>eval.metrics.ranker</h4>" in page and "roc_auc" in page and "0.61" in page
    assert "weighted_ndcg" in page and "0.42" in page
    status, ctype, png = _get(f"{ui.url}models/{ui.version}/training_curves.png")
    assert status == 200 and ctype == "image/png" and png.startswith(PNG_MAGIC)

    status, _, body = _get(f"{ui.url}models")
    assert status == 200 and f'href="/models/{ui.version}"' in body.decode()
    # errors are pages too: an unknown model, a file outside the model, a bad viewer id
    assert _get(f"{ui.url}models/ranker-9999")[0] == 404
    assert _get(f"{ui.url}models/{ui.version}/..%2Fversion.json")[0] == 404
    status, _, body = _get(f"{ui.url}feed?viewer=abc")
    assert status == 400 and "positive user id" in body.decode()


def test_feed_page_in_headless_chromium(running_ui: RunningUi, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    ui = running_ui
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1200"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        # the index page's form, as a user would
        driver.get(ui.url)
        driver.find_element(By.ID, "viewer").send_keys(str(ui.viewer))
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        # a click returns before the next page loads: wait for the navigation, not a fixed time
        WebDriverWait(driver, 60).until(ec.url_contains(f"/feed/{ui.viewer}"))
        WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.features")))
        assert driver.current_url.rstrip("/").endswith(f"/feed/{ui.viewer}")
        assert driver.find_element(By.TAG_NAME, "h1").text == f"Feed of viewer {ui.viewer}"
        served = driver.find_elements(By.CSS_SELECTOR, "table.posts")[0].find_elements(
            By.CSS_SELECTOR, "tr.post"
        )
        assert served and all(r.get_attribute("data-post-id").isdigit() for r in served)
        first = served[0].find_elements(By.TAG_NAME, "td")
        assert first[0].text == "1" and first[1].text == served[0].get_attribute("data-post-id")
        # a removed candidate, shown under the filter that removed it
        group = driver.find_element(By.CSS_SELECTOR, "section.removed-group")
        name = group.get_attribute("data-filter")
        assert name and name in group.find_element(By.TAG_NAME, "h3").text
        row = group.find_element(By.CSS_SELECTOR, "tr.post")
        assert row.get_attribute("data-post-id").isdigit()
        assert row.find_element(By.CSS_SELECTOR, "td.filter").text.startswith(name)
        assert f"viewer_id {ui.viewer}" in driver.find_element(By.CSS_SELECTOR, "table.features").text
        shot = tmp_path / "feed.png"
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes().startswith(PNG_MAGIC)

        # the model page, through the feed's link to the model version that scored it
        driver.find_element(By.ID, "model-link").click()
        WebDriverWait(driver, 60).until(ec.url_contains(f"/models/{ui.version}"))
        WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.matrix")))
        assert driver.find_element(By.TAG_NAME, "h1").text == ui.version
        img = driver.find_element(By.CSS_SELECTOR, "img.curve")
        assert img.get_attribute("alt") == "training_curves.png"
        loaded = "return arguments[0].complete && arguments[0].naturalWidth"
        assert WebDriverWait(driver, 60).until(lambda d: d.execute_script(loaded, img) > 0)
        headers = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "table.matrix th")]
        # stored with enum-style keys (an older registry): shown by the one short name per action
        assert "roc_auc" in headers and "favorite" in headers and "SERVER_TWEET_FAV" not in headers
        assert driver.save_screenshot(str(tmp_path / "model.png"))
        assert (tmp_path / "model.png").read_bytes().startswith(PNG_MAGIC)
    finally:
        driver.quit()
