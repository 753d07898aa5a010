"""Download stage against a local HTTP server (127.0.0.1), and the catalog it reads."""

import hashlib
import io
import logging
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from pose_study.data import catalog as cat
from pose_study.data.catalog import Artefact, DatasetEntry, load_catalog, missing_layout
from pose_study.stages.download import DownloadSpec, run
from tests.fixtures.official import write_all, write_h36m, write_lspet
from tests.fixtures.official_mocap import torchvision_resnet_tiny_state, write_weights


class _Server:
    """Serves ``files`` (path -> bytes) with Range support; ``truncate`` paths are cut short once."""

    def __init__(self):
        self.files, self.truncate, self.requests = {}, set(), []
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10

            def do_GET(self):  # noqa: N802 (http.server API)
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(self.headers["Range"][6:-1]) if self.headers.get("Range") else 0
                body = data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.truncate:
                    server.truncate.discard(self.path)
                    body = body[: len(body) // 2]  # then the connection closes
                    self.close_connection = True
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    with _Server() as s:
        yield s


def lspet_archive(tmp_path: Path, kind: str = "zip") -> bytes:
    """The LSPET fixture packed like lspet_dataset.zip (no top folder) or as a .tar.gz."""
    src = write_lspet(tmp_path / "src", n=3)["root"]
    buf = io.BytesIO()
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if kind == "zip":
        with zipfile.ZipFile(buf, "w") as zf:
            for p in files:
                zf.write(p, p.relative_to(src).as_posix())
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for p in files:
                tf.add(p, p.relative_to(src).as_posix())
    return buf.getvalue()


def entry(url: str, file: str, sha256: str | None, size: int | None = None) -> dict[str, DatasetEntry]:
    real = load_catalog()["lspet"]
    artefact = Artefact(file=file, url=url, sha256=sha256, size=size)
    return {"lspet": DatasetEntry(**{**real.__dict__, "artefacts": (artefact,)})}


def spec(root: Path, **kw) -> DownloadSpec:
    return DownloadSpec(dataset="lspet", root=str(root), retry_wait_s=0.0, timeout_s=5.0, **kw)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_download_verify_extract(tmp_path, server, kind):
    data = lspet_archive(tmp_path, kind)
    server.files[f"/lspet_dataset.{kind}"] = data
    catalog = entry(f"{server.url}/lspet_dataset.{kind}", f"lspet_dataset.{kind}", hashlib.sha256(data).hexdigest())
    root = tmp_path / "raw" / "lspet"
    result = run(spec(root), tmp_path / "manifest.json", catalog=catalog)
    assert (root / "joints.mat").is_file() and (root / "images" / "im00003.jpg").is_file()
    assert result["artefacts"][0]["verified"] and (tmp_path / "manifest.json").is_file()
    assert not list(root.glob(".extract-*"))
    run(spec(root), tmp_path / "manifest.json", catalog=catalog)  # complete: no second request
    assert len(server.requests) == 1


def test_truncated_download_resumes_with_a_range_request(tmp_path, server):
    data = lspet_archive(tmp_path)
    server.files["/lspet_dataset.zip"] = data
    server.truncate.add("/lspet_dataset.zip")
    catalog = entry(f"{server.url}/lspet_dataset.zip", "lspet_dataset.zip", hashlib.sha256(data).hexdigest(), len(data))
    root = tmp_path / "lspet"
    run(spec(root), tmp_path / "m.json", catalog=catalog)
    assert [r[1] for r in server.requests] == [None, f"bytes={len(data) // 2}-"]
    assert (root / ".download" / "lspet_dataset.zip").read_bytes() == data
    assert (root / "joints.mat").is_file()


def test_checksum_mismatch_names_file_and_hashes_and_leaves_nothing(tmp_path, server):
    data = lspet_archive(tmp_path)
    server.files["/lspet_dataset.zip"] = data
    wrong = "0" * 64
    root = tmp_path / "lspet"
    with pytest.raises(ValueError) as err:
        run(spec(root), tmp_path / "m.json", catalog=entry(f"{server.url}/lspet_dataset.zip", "lspet_dataset.zip", wrong))
    message = str(err.value)
    assert "lspet_dataset.zip" in message and wrong in message and hashlib.sha256(data).hexdigest() in message
    assert not list((root / ".download").iterdir())  # neither the archive nor a .part nor a marker
    assert not (root / "joints.mat").exists() and not (tmp_path / "m.json").exists()


def test_unknown_checksum_warns_with_the_computed_hash(tmp_path, server, caplog):
    data = lspet_archive(tmp_path)
    server.files["/lspet_dataset.zip"] = data
    with caplog.at_level(logging.WARNING):
        result = run(spec(tmp_path / "lspet"), tmp_path / "m.json",
                     catalog=entry(f"{server.url}/lspet_dataset.zip", "lspet_dataset.zip", None))
    assert "NOT verified" in caplog.text and hashlib.sha256(data).hexdigest() in caplog.text
    assert result["artefacts"][0]["verified"] is False


def test_mirror_replaces_the_url(tmp_path, server):
    data = lspet_archive(tmp_path)
    server.files["/mirror/lspet_dataset.zip"] = data
    catalog = entry("http://192.0.2.1/unreachable/lspet_dataset.zip", "lspet_dataset.zip", hashlib.sha256(data).hexdigest())
    run(spec(tmp_path / "lspet", mirror=f"{server.url}/mirror/"), tmp_path / "m.json", catalog=catalog)
    assert server.requests[0][0] == "/mirror/lspet_dataset.zip"


def test_archive_member_escaping_the_root_is_refused(tmp_path, server):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.txt", "x")
    server.files["/lspet_dataset.zip"] = buf.getvalue()
    with pytest.raises(ValueError, match=r"refusing member '\.\./evil\.txt'"):
        run(spec(tmp_path / "lspet"), tmp_path / "m.json",
            catalog=entry(f"{server.url}/lspet_dataset.zip", "lspet_dataset.zip", None))
    assert not (tmp_path / "evil.txt").exists()


def test_licensed_dataset_missing_files_one_message(tmp_path):
    root = tmp_path / "h36m"
    root.mkdir()
    (root / "metadata.xml").write_text("<metadata/>")
    with pytest.raises(FileNotFoundError) as err:
        run(DownloadSpec(dataset="h36m", root=str(root)), tmp_path / "m.json")
    message = str(err.value)
    assert "  - S1/MyPoseFeatures/D3_Positions/*.cdf" in message
    assert "/Videos/*.mp4 | images/{S1,S5,S6,S7,S8,S9,S11}/*/*.jpg" in message  # videos or extracted frames
    assert "  - metadata.xml" not in message  # present
    assert "vision.imar.ro" in message and "Expected layout" in message and "licensed" in message
    assert message.count("missing under") == 1


def test_licensed_dataset_in_place_passes(tmp_path):
    fx = write_h36m(tmp_path / "h36m", frames=1)
    result = run(DownloadSpec(dataset="h36m", root=str(fx["root"])), tmp_path / "m.json")
    assert result["access"] == "licensed" and result["artefacts"] == []


def test_every_fixture_satisfies_the_packaged_catalog_layout(tmp_path):
    roots = write_all(tmp_path)
    catalog = load_catalog()
    assert sorted(roots) == sorted(catalog)
    for name, root in roots.items():
        assert missing_layout(root, catalog[name].layout) == [], name


def test_layout_syntax(tmp_path):
    (tmp_path / "a" / "x").mkdir(parents=True)
    (tmp_path / "a" / "x" / "f.txt").write_text("")
    assert missing_layout(tmp_path, ("a/{x,y}/*.txt",)) == ["a/y/*.txt"]  # braces: all required
    assert missing_layout(tmp_path, ("b/f.txt | a/x/f.txt",)) == []  # '|': one suffices
    assert missing_layout(tmp_path, ("b | c",)) == ["b | c"]


@pytest.mark.parametrize("edit,match", [
    (("access: public", "access: open"), r"datasets\.mpii\.access: must be one of"),
    (("title: MPII", "titel: MPII"), r"datasets\.mpii: unknown key\(s\) \['titel'\]"),
    (("sha256: null                             # not published by the authors", "sha256: abc"), r"sha256: expected 64"),
])
def test_catalog_validation_names_the_key(tmp_path, edit, match):
    text = cat.default_path().read_text().replace(*edit, 1)
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_catalog(path)


def test_packaged_catalog():
    catalog = load_catalog()
    weights = {f"imagenet_resnet{d}" for d in (18, 34, 50, 101, 152)}
    assert {n for n, e in catalog.items() if e.public} == {"mpii", "lsp", "lspet", "flic_full", *weights}
    assert all(a.url for e in catalog.values() if e.public for a in e.artefacts)
    assert all(e.registration for e in catalog.values() if not e.public)
    assert [c["id"] for c in catalog["h36m"].tables["cameras"]] == ["54138969", "55011271", "58860488", "60457274"]


def test_cli_main(tmp_path):
    import argparse
    import json

    from pose_study.stages import download

    fx = write_h36m(tmp_path / "h36m", frames=1)
    parser = argparse.ArgumentParser()
    download.configure(parser)
    manifest = tmp_path / "m.json"
    download.main(parser.parse_args(["--spec", json.dumps({"dataset": "h36m", "root": str(fx["root"])}),
                                     "--manifest", str(manifest)]))
    assert json.loads(manifest.read_text())["dataset"] == "h36m"


def test_html_page_instead_of_an_archive_is_reported(tmp_path, server):
    server.files["/lspet_dataset.zip"] = b"<!DOCTYPE html><html>quota exceeded</html>"
    with pytest.raises(ValueError, match=r"lspet_dataset\.zip: not a valid archive .*DOCTYPE"):
        run(spec(tmp_path / "lspet"), tmp_path / "m.json",
            catalog=entry(f"{server.url}/lspet_dataset.zip", "lspet_dataset.zip", None))
    assert not (tmp_path / "lspet" / ".download" / "lspet_dataset.zip").exists()


def test_weight_entries_name_torchvision_files_with_their_hash_prefix():
    for depth in (18, 34, 50, 101, 152):
        entry = load_catalog()[f"imagenet_resnet{depth}"]
        (artefact,) = entry.artefacts
        stem, prefix = artefact.file.removesuffix(".pth").split("-")
        assert stem == f"resnet{depth}" and artefact.sha256_prefix == prefix and len(prefix) == 8
        assert artefact.url == f"https://download.pytorch.org/models/{artefact.file}"
        assert entry.layout == (artefact.file,)
        assert artefact.sha256 is None or artefact.sha256.startswith(prefix)


def _weights_entry(url: str, file: str, prefix: str) -> dict[str, DatasetEntry]:
    real = load_catalog()["imagenet_resnet18"]
    artefact = Artefact(file=file, url=url, sha256=None, size=None, sha256_prefix=prefix)
    fields = {**real.__dict__, "artefacts": (artefact,), "layout": (file,)}
    return {"imagenet_resnet18": DatasetEntry(**fields)}


def test_weights_download_checks_the_prefix_and_load_strictly(tmp_path, server, caplog):
    """A .pth (itself a zip) is placed as is, checked against its name's sha256 prefix, and loads."""
    from pose_study.models import build_model

    digest = write_weights(tmp_path / "src.pth")
    file = f"resnet_tiny-{digest[:8]}.pth"
    server.files[f"/{file}"] = (tmp_path / "src.pth").read_bytes()
    root = tmp_path / "imagenet_resnet18"
    result = run(DownloadSpec(dataset="imagenet_resnet18", root=str(root), retry_wait_s=0.0, timeout_s=5.0),
                 tmp_path / "m.json", catalog=_weights_entry(f"{server.url}/{file}", file, digest[:8]))
    record = result["artefacts"][0]
    assert record["verified"] == "sha256 prefix" and record["sha256"] == digest
    assert "only the published sha256 prefix" in caplog.text
    model = build_model("resnet_tiny", pretrained=root / file)
    state = torchvision_resnet_tiny_state()
    assert torch.equal(model.backbone.layer4[0].downsample[0].weight, state["layer4.0.downsample.0.weight"])
    assert torch.equal(model.backbone.bn1.running_var, state["bn1.running_var"])


def test_weights_with_a_wrong_prefix_are_removed(tmp_path, server):
    write_weights(tmp_path / "src.pth")
    file = "resnet_tiny-00000000.pth"
    server.files[f"/{file}"] = (tmp_path / "src.pth").read_bytes()
    root = tmp_path / "w"
    with pytest.raises(ValueError, match=r"resnet_tiny-00000000\.pth does not start with the published "
                                         r"prefix 00000000"):
        run(DownloadSpec(dataset="imagenet_resnet18", root=str(root), retry_wait_s=0.0, timeout_s=5.0),
            tmp_path / "m.json", catalog=_weights_entry(f"{server.url}/{file}", file, "00000000"))
    assert not (root / ".download" / file).exists() and not (root / file).exists()


def test_weight_file_of_the_wrong_architecture_is_refused(tmp_path):
    from pose_study.models import build_model

    write_weights(tmp_path / "tiny.pth")
    with pytest.raises(ValueError, match=r"does not fit the backbone: missing keys \['layer1.1.bn1.bias'"):
        build_model("resnet18", pretrained=tmp_path / "tiny.pth")
