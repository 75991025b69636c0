"""The real download, extraction and conversion code of the VOC 2012 + SBD and Cityscapes datasets,
against archives built in the test and served from 127.0.0.1."""
from __future__ import annotations

import hashlib
import io
import re
import stat
import tarfile
import threading
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from segsort import download as dl
from segsort.data import cityscapes, class_names, pascal
from segsort.data.voc import VOCLayout
from segsort.io import DataError, read_id_list, read_label_map, write_label_png

USERNAME, PASSWORD = "alice-cs-user", "s3cr3t-Pa55-xyz"


class Server:
    """A small HTTP server: files by path (query included), Range support, a connection dropped after
    `drop_after` bytes (once), and a Cityscapes-like login that guards /md5-sum/ and /file-handling/."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.drop_after: int | None = None
        self.ignore_range = False
        self.posted: list[str] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                form = self.rfile.read(int(self.headers["Content-Length"])).decode()
                state.posted.append(form)
                fields = urllib.parse.parse_qs(form)
                self.send_response(302 if fields.get("username") == [USERNAME]
                                   and fields.get("password") == [PASSWORD] else 200)
                if fields.get("password") == [PASSWORD]:
                    self.send_header("Set-Cookie", "session=token42; Path=/")
                    self.send_header("Location", "/")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                state.requests.append(("GET", self.path, dict(self.headers)))
                guarded = self.path.startswith(("/md5-sum/", "/file-handling/"))
                if guarded and "session=token42" not in self.headers.get("Cookie", ""):
                    self.send_response(302)
                    self.send_header("Location", "/login/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = state.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if match and not state.ignore_range:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if state.drop_after is not None:
                    self.wfile.write(body[start:start + state.drop_after])
                    state.drop_after = None
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def serve(self, path: str, body: bytes) -> str:
        self.files[path] = body
        return self.url + path


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


PAYLOAD = bytes(range(256)) * 40  # 10 KiB


def test_download_verifies_and_skips_a_present_file(server, tmp_path):
    url = server.serve("/data.bin", PAYLOAD)
    dest = dl.download(url, tmp_path / "data.bin", md5(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD and len(server.requests) == 1
    sha = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    dl.download(url, dest, sha)
    assert len(server.requests) == 1, "a present file with the right checksum must not be fetched again"
    with pytest.raises(dl.DownloadError, match="delete it"):
        dl.download(url, dest, md5(b"other"))


def test_checksum_mismatch_removes_the_file(server, tmp_path, capsys):
    url = server.serve("/bad.bin", PAYLOAD)
    expected = hashlib.md5(b"something else").hexdigest()
    with pytest.raises(dl.DownloadError) as err:
        dl.download(url, tmp_path / "bad.bin", "md5:" + expected)
    message = str(err.value)
    assert str(tmp_path / "bad.bin") in message and expected in message
    assert hashlib.md5(PAYLOAD).hexdigest() in message
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_resumes_with_range(server, tmp_path):
    url = server.serve("/big.bin", PAYLOAD)
    server.drop_after = 3000
    with pytest.raises(dl.DownloadError, match="3000 bytes are kept"):
        dl.download(url, tmp_path / "big.bin", md5(PAYLOAD), attempts=1)
    assert (tmp_path / "big.bin.part").stat().st_size == 3000 and not (tmp_path / "big.bin").exists()
    dl.download(url, tmp_path / "big.bin", md5(PAYLOAD))
    assert server.requests[-1][2].get("Range") == "bytes=3000-"
    assert (tmp_path / "big.bin").read_bytes() == PAYLOAD and not (tmp_path / "big.bin.part").exists()


def test_dropped_connection_is_retried_within_one_call(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "RETRY_PAUSE_S", 0.0)
    url = server.serve("/big.bin", PAYLOAD)
    server.drop_after = 100
    dl.download(["http://127.0.0.1:9/unreachable", url], tmp_path / "big.bin", md5(PAYLOAD), attempts=2)
    assert [r[2].get("Range") for r in server.requests] == [None, "bytes=100-"]
    assert (tmp_path / "big.bin").read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    url = server.serve("/big.bin", PAYLOAD)
    server.ignore_range = True
    (tmp_path / "big.bin.part").write_bytes(b"x" * 500)
    dl.download(url, tmp_path / "big.bin", md5(PAYLOAD))
    assert server.requests[0][2].get("Range") == "bytes=500-"
    assert (tmp_path / "big.bin").read_bytes() == PAYLOAD


def make_tar(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz" if path.suffix == ".tgz" else "w") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return path


def tar_link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def make_zip(path: Path, entries: list[tuple[str, bytes] | tuple[str, bytes, bool]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, *link in entries:
            info = zipfile.ZipInfo(name)
            if link:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return path


UNSAFE = {
    "dotdot": ([("ok.txt", b"ok"), ("sub/../../evil", b"evil")], "outside the extraction folder"),
    "absolute": ([("/tmp/evil-abs", b"evil")], "absolute path"),
    "symlink": ([("ok.txt", b"ok"), ("link", b"../outside", True), ("link/evil", b"evil")],
                "'link' is a symbolic link \\(?(to )?'../outside'"),
}


@pytest.mark.parametrize("kind", ["tar", "zip"])
@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archive_is_refused(tmp_path, kind, case):
    entries, message = UNSAFE[case]
    if case == "absolute":
        entries = [(str(tmp_path / "evil-abs"), b"evil")]
    if kind == "tar":
        members = [tar_link(e[0], e[1].decode()) if len(e) == 3 else e for e in entries]
        archive = make_tar(tmp_path / "bad.tar", members)
    else:
        archive = make_zip(tmp_path / "bad.zip", entries)
    with pytest.raises(dl.UnsafeArchiveError, match=message) as err:
        dl.extract(archive, tmp_path / "out" / "target")
    assert str(archive) in str(err.value)
    leftovers = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert leftovers == [archive.name, "out"], "nothing may be extracted, inside or outside the target"


def test_hardlink_and_chained_symlink_escapes_are_refused(tmp_path):
    hard = make_tar(tmp_path / "hard.tar", [tar_link("h", "../../etc/passwd", tarfile.LNKTYPE)])
    with pytest.raises(dl.UnsafeArchiveError, match="'h' is a hard link to '../../etc/passwd', outside"):
        dl.extract(hard, tmp_path / "t1")
    chained = make_tar(tmp_path / "chain.tar", [tar_link("a", "."), tar_link("c", "a/..")])
    with pytest.raises(dl.UnsafeArchiveError, match="goes through the symbolic link 'a'"):
        dl.extract(chained, tmp_path / "t2")
    assert not (tmp_path / "t1").exists() and not (tmp_path / "t2").exists()


def test_safe_archives_extract(tmp_path):
    tgz = make_tar(tmp_path / "good.tgz", [("./top/a.txt", b"a"), tar_link("top/b.txt", "a.txt")])
    dl.extract(tgz, tmp_path / "good")
    assert (tmp_path / "good" / "top" / "b.txt").read_bytes() == b"a"
    archive = make_zip(tmp_path / "good.zip", [("top/a.txt", b"a"), ("top/sub/c.txt", b"c")])
    dl.extract(archive, tmp_path / "goodzip")
    assert (tmp_path / "goodzip" / "top" / "sub" / "c.txt").read_bytes() == b"c"
    assert dl.archive_stem("VOCtrainval_11-May-2012.tar") == "VOCtrainval_11-May-2012"


def save_sbd_mat(path: Path, labels: np.ndarray) -> None:
    scipy.io.savemat(path, {"GTcls": {"Segmentation": labels, "Boundaries": np.zeros((1, 20), object),
                                      "CategoriesPresent": np.unique(labels[labels > 0])}})


def test_sbd_mat_conversion(tmp_path):
    labels = np.arange(6 * 7, dtype=np.uint8).reshape(6, 7) % 21
    save_sbd_mat(tmp_path / "2008_000001.mat", labels)
    converted = pascal.sbd_mask(tmp_path / "2008_000001.mat")
    assert converted.dtype == np.uint8 and np.array_equal(converted, labels)
    write_label_png(tmp_path / "m.png", converted)
    assert np.array_equal(read_label_map(tmp_path / "m.png", num_classes=21), labels)
    scipy.io.savemat(tmp_path / "bad.mat", {"other": np.zeros((2, 2))})
    with pytest.raises(DataError, match="bad.mat.*GTcls"):
        pascal.sbd_mask(tmp_path / "bad.mat")


def test_train_aug_list_logic():
    ids = pascal.train_aug_ids(voc_train=["b", "a"], voc_val=["v", "w"], sbd_train=["a", "s", "v"], sbd_val=["t", "w"])
    assert ids == ["a", "b", "s", "t"]
    with pytest.raises(DataError, match="train_aug list has 4 images, the official one 10582"):
        pascal.check_count("train_aug", ids, "lists")
    assert len(class_names("voc2012")) == 21 and class_names("voc2012")[-1] == "tv"


def jpeg(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buf, format="JPEG")
    return buf.getvalue()


def png_labels(tmp_path: Path, labels: np.ndarray) -> bytes:
    write_label_png(tmp_path / "tmp.png", labels)
    return (tmp_path / "tmp.png").read_bytes()


VOC, SBD = "VOCdevkit/VOC2012", "benchmark_RELEASE/dataset"
VOC_MASK = np.where(np.arange(6)[:, None] == 0, 255, np.full((6, 8), 5)).astype(np.uint8)  # a void top row


def voc_archives(tmp_path: Path) -> dict[str, list[tuple[str, bytes]]]:
    """The members of a small VOCtrainval tar (train a1 a2, val v1 v2) and SBD tgz (cls of a1 s1 s2 v1)."""
    voc_entries = [(f"{VOC}/JPEGImages/{i}.jpg", jpeg((10, 20, 30))) for i in ("a1", "a2", "v1", "v2", "s1")]
    voc_entries += [(f"{VOC}/SegmentationClass/{i}.png", png_labels(tmp_path, VOC_MASK))
                    for i in ("a1", "a2", "v1", "v2")]
    voc_entries += [(f"{VOC}/ImageSets/Segmentation/train.txt", b"a1\na2\n"),
                    (f"{VOC}/ImageSets/Segmentation/val.txt", b"v1\nv2\n")]
    for image_id in ("a1", "s1", "s2", "v1"):
        save_sbd_mat(tmp_path / f"{image_id}.mat", np.full((6, 8), 7, np.uint8))
    sbd_entries = [(f"{SBD}/cls/{i}.mat", (tmp_path / f"{i}.mat").read_bytes()) for i in ("a1", "s1", "s2", "v1")]
    sbd_entries += [(f"{SBD}/img/s2.jpg", jpeg((200, 0, 0))), (f"{SBD}/train.txt", b"a1\ns1\nv1\n"),
                    (f"{SBD}/val.txt", b"s2\n")]
    return {"VOCtrainval_11-May-2012.tar": voc_entries, "benchmark.tgz": sbd_entries}


def voc_sources(archive_bytes: dict[str, bytes], urls: dict[str, list[str]]) -> dict:
    """params.yaml `downloads` for the two archives, with the given URLs."""
    keys = {"VOCtrainval_11-May-2012.tar": "voc2012_trainval", "benchmark.tgz": "sbd"}
    return {keys[name]: {"filename": name, "md5": hashlib.md5(data).hexdigest(), "urls": urls[name]}
            for name, data in archive_bytes.items()}


@pytest.fixture
def small_voc(tmp_path, monkeypatch):
    """The members and bytes of both archives, with the official list sizes of this small release."""
    monkeypatch.setattr(pascal, "OFFICIAL_COUNTS", {"train": 2, "val": 2, "train_aug": 4, "test": 1})
    members = voc_archives(tmp_path)
    data = {name: make_tar(tmp_path / name, entries).read_bytes() for name, entries in members.items()}
    return members, data


def check_small_voc(root: Path) -> None:
    lists = root / "ImageSets" / "Segmentation"
    assert read_id_list(lists / "train_aug.txt") == ["a1", "a2", "s1", "s2"]
    assert read_id_list(lists / "val.txt") == ["v1", "v2"]
    assert np.array_equal(read_label_map(root / "SegmentationClass" / "a1.png"), VOC_MASK), "VOC's mask wins"
    assert np.array_equal(read_label_map(root / "SegmentationClass" / "s2.png"), np.full((6, 8), 7))
    assert VOCLayout(root, "train_aug", 21)[3].image[0, 0, 0] > 150  # s2's image came from SBD


def test_voc2012_built_from_served_archives(server, tmp_path, small_voc):
    _, data = small_voc
    sources = voc_sources(data, {name: [server.serve(f"/{name}", body)] for name, body in data.items()})
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    make_tar(downloads / "VOC2012test.tar", [(f"{VOC}/JPEGImages/t1.jpg", jpeg((0, 0, 0))),
                                             (f"{VOC}/ImageSets/Segmentation/test.txt", b"t1\n")])

    pascal.build_voc2012(tmp_path / "dataset", downloads, sources)
    root = tmp_path / "dataset"
    check_small_voc(root)
    assert read_id_list(root / "ImageSets" / "Segmentation" / "test.txt") == ["t1"]
    assert (root / "JPEGImages" / "t1.jpg").is_file()
    requests = len(server.requests)
    pascal.build_voc2012(tmp_path / "dataset", downloads, sources)  # a rerun reuses the downloads and extractions
    assert len(server.requests) == requests


def test_a_dead_first_url_falls_back_to_the_mirror(server, tmp_path, small_voc):
    _, data = small_voc
    urls = {name: [f"{server.url}/gone/{name}", server.serve(f"/mirror/{name}", body)] for name, body in data.items()}
    pascal.build_voc2012(tmp_path / "dataset", tmp_path / "downloads", voc_sources(data, urls))
    check_small_voc(tmp_path / "dataset")
    assert [path for _, path, _ in server.requests] == [path for name in data
                                                        for path in (f"/gone/{name}", f"/mirror/{name}")]


def test_every_url_dead_names_them_and_where_to_place_the_archive(server, tmp_path, small_voc):
    _, data = small_voc
    urls = {name: [f"{server.url}/a/{name}", f"{server.url}/b/{name}"] for name in data}
    downloads = tmp_path / "downloads"
    with pytest.raises(dl.DownloadError) as caught:
        pascal.build_voc2012(tmp_path / "dataset", downloads, voc_sources(data, urls))
    message = str(caught.value)
    name = "VOCtrainval_11-May-2012.tar"
    assert f"/a/{name}: HTTP Error 404" in message and f"/b/{name}: HTTP Error 404" in message
    assert f"place the file by hand at {downloads / name} (md5 {hashlib.md5(data[name]).hexdigest()})" in message
    assert f"so that {downloads / VOC} exists" in message and "downloads.voc2012_trainval" in message
    assert not (tmp_path / "dataset").exists()


def test_archives_placed_by_hand_are_used_after_their_md5(server, tmp_path, small_voc):
    _, data = small_voc
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for name, body in data.items():
        (downloads / name).write_bytes(body)
    pascal.build_voc2012(tmp_path / "dataset", downloads,
                         voc_sources(data, {name: [f"{server.url}/dead/{name}"] for name in data}))
    check_small_voc(tmp_path / "dataset")
    assert server.requests == []


def extract_by_hand(members: dict, downloads: Path) -> None:
    for entries in members.values():
        for name, body in entries:
            (downloads / name).parent.mkdir(parents=True, exist_ok=True)
            (downloads / name).write_bytes(body)


def test_folders_extracted_by_hand_are_used_after_their_structure(server, tmp_path, small_voc, capsys):
    members, data = small_voc
    downloads = tmp_path / "downloads"
    extract_by_hand(members, downloads)
    pascal.build_voc2012(tmp_path / "dataset", downloads,
                         voc_sources(data, {name: [f"{server.url}/dead/{name}"] for name in data}))
    check_small_voc(tmp_path / "dataset")
    assert server.requests == [] and f"using the folder extracted by hand at {downloads / VOC}" in capsys.readouterr().err


def test_a_folder_extracted_by_hand_with_the_wrong_count_is_refused(server, tmp_path, small_voc):
    members, data = small_voc
    downloads = tmp_path / "downloads"
    extract_by_hand(members, downloads)
    (downloads / VOC / "ImageSets/Segmentation/train.txt").write_text("a1\n")  # an image short of the release
    with pytest.raises(DataError, match=r"train.txt: the train list has 1 images, the official one 2"):
        pascal.build_voc2012(tmp_path / "dataset", downloads,
                             voc_sources(data, {name: [f"{server.url}/dead/{name}"] for name in data}))
    assert not (tmp_path / "dataset").exists() and server.requests == []


def test_cityscapes_label_ids_to_train_ids():
    label_ids = np.arange(256, dtype=np.uint8).reshape(16, 16)
    train = cityscapes.label_to_train_ids(label_ids)
    expected = np.full(256, 255)
    for train_id, label_id in enumerate((7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)):
        expected[label_id] = train_id
    assert train.dtype == np.uint8 and np.array_equal(train.ravel(), expected)
    back = cityscapes.train_to_label_ids(train)
    kept = expected != 255
    assert np.array_equal(back.ravel()[kept], np.arange(256)[kept]) and not back.ravel()[~kept].any()
    assert len(class_names("cityscapes")) == 19


def cityscapes_archives(tmp_path: Path) -> dict[str, bytes]:
    gt, img = [("README", b"readme"), ("license.txt", b"license")], [("README", b"readme")]
    labels = np.array([[7, 8, 0], [26, 33, 4]], np.uint8)
    for split, city, ids in (("train", "aachen", ("000000_000019", "000001_000019")),
                             ("val", "lindau", ("000000_000019",)), ("test", "bonn", ("000000_000019",))):
        for frame in ids:
            stem = f"{split}/{city}/{city}_{frame}"
            buf = io.BytesIO()
            Image.fromarray(labels, mode="L").save(buf, format="PNG")
            gt.append((f"gtFine/{stem}_gtFine_labelIds.png", buf.getvalue()))
            buf = io.BytesIO()
            Image.new("RGB", (3, 2), (1, 2, 3)).save(buf, format="PNG")
            img.append((f"leftImg8bit/{stem}_leftImg8bit.png", buf.getvalue()))
    return {name: make_zip(tmp_path / name, entries).read_bytes()
            for name, entries in (("gtFine_trainvaltest.zip", gt), ("leftImg8bit_trainvaltest.zip", img))}


@pytest.fixture
def tiny_cityscapes_splits(monkeypatch):
    monkeypatch.setattr(cityscapes, "SPLITS", {"train": (("aachen",), 2), "val": (("lindau",), 1),
                                               "test": (("bonn",), 1)})


def test_cityscapes_download_never_reveals_credentials(server, tmp_path, monkeypatch, capfd,
                                                       tiny_cityscapes_splits):
    (tmp_path / "src").mkdir()
    for name, data in cityscapes_archives(tmp_path / "src").items():
        package = cityscapes.PACKAGES[name]
        server.serve(f"/file-handling/?packageID={package}", data)
        server.serve(f"/md5-sum/?packageID={package}", f"{hashlib.md5(data).hexdigest()}  {name}\n".encode())
    monkeypatch.setenv("CITYSCAPES_USERNAME", USERNAME)
    monkeypatch.setenv("CITYSCAPES_PASSWORD", PASSWORD)
    cityscapes.build_cityscapes(tmp_path / "dataset", tmp_path / "downloads", base_url=server.url)

    assert server.posted and PASSWORD in server.posted[0], "the credentials were used to log in"
    assert all("session=token42" in r[2].get("Cookie", "") for r in server.requests)
    out, err = capfd.readouterr()
    for secret in (USERNAME, PASSWORD):
        assert secret not in out + err
        for path in tmp_path.rglob("*"):
            assert not path.is_file() or secret.encode() not in path.read_bytes(), f"{secret} written to {path}"
    root = tmp_path / "dataset"
    assert read_id_list(root / "ImageSets/Segmentation/train.txt") == ["aachen_000000_000019", "aachen_000001_000019"]
    assert np.array_equal(read_label_map(root / "SegmentationClass/lindau_000000_000019.png"),
                          [[0, 1, 255], [13, 18, 255]])
    assert not (root / "SegmentationClass/bonn_000000_000019.png").exists()
    sample = VOCLayout(root, "val", 19)[0]
    assert sample.image.shape == (2, 3, 3)


def test_cityscapes_bad_password_and_missing_archives(server, tmp_path, monkeypatch, capfd, tiny_cityscapes_splits):
    monkeypatch.delenv("CITYSCAPES_USERNAME", raising=False)
    monkeypatch.delenv("CITYSCAPES_PASSWORD", raising=False)
    with pytest.raises(DataError, match="CITYSCAPES_USERNAME.*gtFine_trainvaltest.zip"):
        cityscapes.build_cityscapes(tmp_path / "dataset", tmp_path / "downloads", base_url=server.url)
    monkeypatch.setenv("CITYSCAPES_USERNAME", USERNAME)
    monkeypatch.setenv("CITYSCAPES_PASSWORD", "wrong-" + PASSWORD)
    with pytest.raises(dl.DownloadError, match="login refused") as err:
        cityscapes.build_cityscapes(tmp_path / "dataset", tmp_path / "downloads", base_url=server.url)
    assert PASSWORD not in str(err.value) and PASSWORD not in "".join(capfd.readouterr())


def test_cityscapes_placed_archives_are_checked_by_structure(tmp_path, monkeypatch, tiny_cityscapes_splits):
    monkeypatch.delenv("CITYSCAPES_USERNAME", raising=False)
    monkeypatch.delenv("CITYSCAPES_PASSWORD", raising=False)
    (tmp_path / "downloads").mkdir()
    for name, data in cityscapes_archives(tmp_path).items():
        (tmp_path / "downloads" / name).write_bytes(data)
    cityscapes.build_cityscapes(tmp_path / "dataset", tmp_path / "downloads")
    lists = tmp_path / "dataset/ImageSets/Segmentation"
    assert read_id_list(lists / "test.txt") == ["bonn_000000_000019"]
    # no augmented set: the runs' train_aug is the fine train split
    assert read_id_list(lists / "train_aug.txt") == read_id_list(lists / "train.txt") != []
    monkeypatch.setattr(cityscapes, "SPLITS", {**cityscapes.SPLITS, "val": (("lindau",), 500)})
    with pytest.raises(DataError, match="1 \\*_gtFine_labelIds.png files, the official val set has 500"):
        cityscapes.build_cityscapes(tmp_path / "dataset2", tmp_path / "downloads")
