"""`segsort explore` in a real browser: the page opens from file:// in headless Chromium (Debian's chromium and
chromium-driver, driven by selenium; scripts/test.sh installs them), a click on a photo selects the pixel's
segment, and the panel shows the segment's nearest bank segments and votes exactly as segsort.Segmenter gives
them. The page needs nothing outside itself."""
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from segsort import Segmenter
from segsort.cli import main as segsort_cli
from segsort.data.voc import VOCLayout

pytestmark = pytest.mark.slow  # a small model and its bank, the CLI, a browser


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through chromedriver. Missing, the test fails: scripts/test.sh installs both."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("Chromium and chromedriver are needed: apt-get install chromium chromium-driver "
                    "(scripts/test.sh installs them when missing)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,900", "--allow-file-access-from-files"):
        options.add_argument(argument)
    session = webdriver.Chrome(options=options, service=Service(driver))
    yield session
    session.quit()


def explore(photos, out, model_and_bank, params_path, *extra) -> int:
    model_path, bank_path, _ = model_and_bank
    return segsort_cli(["explore", str(photos), "--model", str(model_path), "--bank", str(bank_path), "--out", str(out),
                        "--params", str(params_path), "--device", "cpu", *extra])


def click_pixel(browser, canvas, y: int, x: int, width: int, height: int) -> None:
    """A real click (mouse moved onto the canvas) on the photo's pixel (y, x), however the page scales it."""
    from selenium.webdriver.common.action_chains import ActionChains

    box = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", canvas)
    # selenium 4 offsets are from the element's centre
    dx, dy = (x + 0.5) * box[0] / width - box[0] / 2, (y + 0.5) * box[1] / height - box[1] / 2
    ActionChains(browser).move_to_element_with_offset(canvas, round(dx), round(dy)).click().perform()


def interior_pixel(mask: np.ndarray) -> tuple[int, int]:
    """The pixel of the mask farthest from its edge: a click there cannot land on another segment."""
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(distance), mask.shape)
    return int(y), int(x)


def shown_segment(browser, wait_for: int) -> dict:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    panel = browser.find_element(By.ID, "panel")
    WebDriverWait(browser, 10).until(lambda _: panel.get_attribute("data-segment") == str(wait_for))
    cards = panel.find_elements(By.CSS_SELECTOR, "figure.neighbour")
    return {"segment": int(panel.get_attribute("data-segment")), "text": panel.text,
            "neighbours": [(int(c.get_attribute("data-row")), int(c.get_attribute("data-label")),
                            float(c.get_attribute("data-similarity")), c.get_attribute("data-image-id"))
                           for c in cards],
            "thumbnails": [c.find_element(By.TAG_NAME, "img").get_attribute("src")[:23] for c in cards],
            "votes": {int(v.get_attribute("data-class")): int(v.get_attribute("data-count"))
                      for v in panel.find_elements(By.CSS_SELECTOR, ".vote")}}


def test_a_click_shows_the_segments_nearest_bank_segments(tmp_path, small_dataset, model_and_bank, params_path,
                                                          browser):
    from selenium.webdriver.common.by import By

    photos = tmp_path / "photos"
    photos.mkdir()
    for image_id in VOCLayout(small_dataset, "val", 1, with_labels=False).ids[:2]:
        (photos / f"{image_id}.jpg").write_bytes((small_dataset / "JPEGImages" / f"{image_id}.jpg").read_bytes())
    page = tmp_path / "page.html"
    assert explore(photos, page, model_and_bank, params_path) == 0
    text = page.read_text()
    assert "://" not in text  # no CDN, no web font, no link: every image is a data: URI
    assert all(src.startswith("data:") for src in re.findall(r"""(?:src|href)=["']([^"']*)""", text))
    assert explore(photos, page, model_and_bank, params_path) == 1  # an existing page is kept without --overwrite

    model_path, bank_path, _ = model_and_bank
    segmenter = Segmenter.load(model_path, bank_path, device="cpu", params=params_path)
    browser.get(page.as_uri())
    canvases = browser.find_elements(By.CSS_SELECTOR, "canvas.scene")
    assert len(canvases) == 2
    for index, path in enumerate(sorted(photos.iterdir())):
        result = segmenter(path)
        height, width = result.labels.shape
        # the largest segment not labelled background (the largest of all if every one is)
        segment = max(result.segments, key=lambda s: (s.label != 0, s.pixels))
        y, x = interior_pixel(segment.mask)
        click_pixel(browser, canvases[index], y, x, width, height)
        shown = shown_segment(browser, segment.id)
        assert shown["neighbours"] == [(n.index, n.label, n.similarity, n.image_id) for n in segment.neighbours]
        assert shown["votes"] == {c: int(v) for c, v in enumerate(segment.votes) if v > 0}
        assert shown["thumbnails"] == ["data:image/jpeg;base64,"] * len(segment.neighbours)
        assert f"{result.class_names[segment.label]} — segment {segment.id} of {path.name}" in shown["text"]
        assert f"{segment.votes[segment.label]} of {len(segment.neighbours)} votes" in shown["text"]
        assert "image not found" not in shown["text"]
    browser.save_screenshot(str(tmp_path / "explore.png"))
    screenshot = np.asarray(Image.open(tmp_path / "explore.png").convert("RGB"))
    assert screenshot.shape[0] > 500 and screenshot.std() > 20  # a page drawn, not a blank one


def test_a_bank_whose_training_images_are_gone_shows_the_masks_and_says_so(tmp_path, small_dataset, model_and_bank,
                                                                           params_path, browser):
    from selenium.webdriver.common.by import By

    image_id = VOCLayout(small_dataset, "val", 1, with_labels=False).ids[0]
    photo = tmp_path / f"{image_id}.jpg"
    photo.write_bytes((small_dataset / "JPEGImages" / f"{image_id}.jpg").read_bytes())
    (tmp_path / "elsewhere").mkdir()
    page = tmp_path / "page.html"
    assert explore(photo, page, model_and_bank, params_path, "--dataset-root", str(tmp_path / "elsewhere")) == 0
    browser.get(page.as_uri())
    model_path, bank_path, _ = model_and_bank
    result = Segmenter.load(model_path, bank_path, device="cpu", params=params_path)(photo)
    segment = max(result.segments, key=lambda s: s.pixels)
    y, x = interior_pixel(segment.mask)
    click_pixel(browser, browser.find_element(By.CSS_SELECTOR, "canvas.scene"), y, x, *result.labels.shape[::-1])
    shown = shown_segment(browser, segment.id)
    assert shown["neighbours"] == [(n.index, n.label, n.similarity, n.image_id) for n in segment.neighbours]
    assert shown["text"].count("image not found: mask only") == len(segment.neighbours)
