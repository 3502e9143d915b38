"""The HTTP service: every endpoint and error path through FastAPI's TestClient, persistence across restarts.

The predictor is real (a seeded random-init Meso-4 checkpoint, BlazeFace from ../shared when present, else
OpenCV's Haar detector), so the answers are the library's answers; one test swaps in a stand-in predictor that
crashes, to check the failure path of the worker.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fakescope.serve import Settings, create_app
from fakescope.serve.sniff import sniff
from fakescope.serve.store import Job, SqliteJobStore, new_job_id

REPO = Path(__file__).resolve().parents[1]
MEDIAPIPE = REPO.parent / "shared" / "data" / "weights" / "mediapipe"


# ------------------------------------------------------------------------------------------------------ fixtures
def face_settings() -> dict[str, Any]:
    """BlazeFace from the shared weights when available (offline), else Haar (needs no model file)."""
    if (MEDIAPIPE / "face_detection_short_range.tflite").is_file():
        return {"face_detector": "blazeface", "face_weights_dir": MEDIAPIPE}
    return {"face_detector": "haar"}


def make_video(path: Path, image: np.ndarray, seconds: float = 2.0, fps: int = 8, size: int = 256) -> Path:
    """A small H.264 MP4 of ``image`` drifting slowly (so frames differ)."""
    import av

    base = np.asarray(Image.fromarray(image).resize((size + 16, size + 16)))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = np.ascontiguousarray(base[i % 16 : i % 16 + size, i % 16 : i % 16 + size])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> dict[str, Path]:
    """Test files: the astronaut as JPEG, a 2 s video of it, and bad files."""
    d = tmp_path_factory.mktemp("media")
    Image.fromarray(astronaut).save(d / "astronaut.jpg", quality=90)
    files = {
        "image": d / "astronaut.jpg",
        "video": make_video(d / "astronaut.mp4", astronaut),
        "text": d / "notes.jpg",
        "bad_jpeg": d / "broken.jpg",
        "bad_video": d / "broken.mp4",
        "empty": d / "empty.png",
    }
    files["text"].write_text("this is not an image, whatever its name says\n")
    files["bad_jpeg"].write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 200)
    files["bad_video"].write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00" + b"\x13" * 4000)
    files["empty"].write_bytes(b"")
    return files


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random-init Meso-4 checkpoint (fast; its scores mean nothing, the plumbing is what is tested)."""
    import torch

    from fakescope.models import create_detector, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(create_detector("meso4"), tmp_path_factory.mktemp("ckpt") / "meso4.safetensors")


def settings_for(data_dir: Path, checkpoint: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "model": str(checkpoint),
        "data_dir": data_dir,
        "num_frames": 4,
        "explain": False,
        "poll_interval_s": 0.1,
        **face_settings(),
    }
    return Settings(**{**base, **kw})


@pytest.fixture
def client_factory(tmp_path: Path, checkpoint: Path):
    """Start an app (lifespan included) on a fresh data dir; yields ``make(**settings) -> TestClient``."""
    clients: list[TestClient] = []

    def make(data_dir: Path | None = None, **kw: Any) -> TestClient:
        settings = settings_for(data_dir or tmp_path / "data", checkpoint, **kw)
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(client_factory) -> TestClient:
    return client_factory()


def upload(client: TestClient, path: Path, name: str | None = None):
    return client.post(
        "/v1/analyze", files={"file": (name or path.name, path.read_bytes(), "application/octet-stream")}
    )


def wait_job(client: TestClient, url: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(url).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {url} did not finish within {timeout} s: {job}")


def leftovers(client: TestClient) -> dict[str, list[str]]:
    """Files left in the upload temp dir and the queued-uploads dir."""
    service = client.app.state.service
    return {
        "tmp": sorted(p.name for p in service.tmp_dir.iterdir()),
        "uploads": sorted(p.name for p in service.uploads_dir.iterdir()),
    }


CLEAN = {"tmp": [], "uploads": []}


# ------------------------------------------------------------------------------------------------------ sniffing
def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 30, 200)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("head", "kind", "suffix"),
    [
        (_encoded("JPEG"), "image", ".jpg"),
        (_encoded("PNG"), "image", ".png"),
        (_encoded("WEBP"), "image", ".webp"),
        (_encoded("BMP"), "image", ".bmp"),
        (_encoded("GIF"), "image", ".gif"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video", ".mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "video", ".mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video", ".webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "video", ".mkv"),
        (b"RIFF\x00\x10\x00\x00AVI LIST", "video", ".avi"),
    ],
)
def test_sniff_recognises_formats(head: bytes, kind: str, suffix: str) -> None:
    got = sniff(head[:64])
    assert got is not None
    assert (got.kind, got.suffix) == (kind, suffix)


@pytest.mark.parametrize(
    "head",
    [b"", b"hello world", b"BMW is not a bitmap", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", b"%PDF-1.7\n"],
)
def test_sniff_rejects_unknown(head: bytes) -> None:
    assert sniff(head) is None


def test_sniff_real_video(media: dict[str, Path]) -> None:
    assert sniff(media["video"].read_bytes()[:64]).kind == "video"


# ------------------------------------------------------------------------------------------------------ analyze
def test_image_is_answered_inline(client: TestClient, media: dict[str, Path], checkpoint: Path) -> None:
    r = upload(client, media["image"], name="photo.png")  # the name lies; the content decides
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "done"
    assert job["kind"] == "image"
    assert job["filename"] == "photo.png"
    res = job["result"]
    assert res["verdict"] in ("fake", "real")
    assert 0.0 <= res["fake_prob"] <= 1.0
    assert res["n_faces"] == 1
    assert len(res["frames"]) == 1
    assert res["path"] == "photo.png"  # no server path leaks out
    # the service answers exactly what the library answers for the same file and settings
    from fakescope.predict import Predictor

    s = client.app.state.settings
    direct = Predictor(str(checkpoint), detector=s.face_detector, detector_weights_dir=s.face_weights_dir)
    assert res["fake_prob"] == pytest.approx(direct.analyze(media["image"]).fake_prob, abs=1e-6)
    # the job is stored and can be fetched again
    again = client.get(job["url"])
    assert again.status_code == 200
    assert again.json()["result"] == res
    assert leftovers(client) == CLEAN


def test_video_job_lifecycle(client: TestClient, media: dict[str, Path]) -> None:
    r = upload(client, media["video"], name="clip.mov")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running", "done")
    assert r.headers["location"] == f"/v1/jobs/{job['id']}" == job["url"]
    done = wait_job(client, r.headers["location"])
    assert done["status"] == "done", done
    assert done["progress"] == 1.0
    res = done["result"]
    assert res["kind"] == "video"
    assert res["n_frames"] == 4
    assert res["verdict"] in ("fake", "real")
    stamps = [f["timestamp"] for f in res["frames"]]
    assert len(stamps) >= 3
    assert stamps == sorted(stamps)
    assert 0 <= stamps[0] < stamps[-1] <= 2.0
    assert leftovers(client) == CLEAN  # the job's upload is deleted once it finishes


def test_heatmaps_are_served(client_factory, media: dict[str, Path]) -> None:
    client = client_factory(explain=True)
    job = upload(client, media["image"]).json()
    assert job["heatmap_urls"], job
    png = client.get(job["heatmap_urls"][0])
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    assert job["result"]["evidence"]["heatmaps"] == [u.rsplit("/", 1)[1] for u in job["heatmap_urls"]]
    video = wait_job(client, upload(client, media["video"]).headers["location"])
    assert video["status"] == "done"
    assert len(video["heatmap_urls"]) == video["result"]["n_faces"]
    assert video["timeline_url"] is not None
    assert client.get(video["timeline_url"]).content.startswith(b"\x89PNG")
    assert client.get(f"{job['url']}/evidence/nope.png").status_code == 404
    assert client.get(f"{job['url']}/evidence/..%2F..%2Fjobs.sqlite3").status_code == 404
    assert leftovers(client) == CLEAN


# ------------------------------------------------------------------------------------------------------ errors
def test_unknown_job_is_404(client: TestClient) -> None:
    r = client.get("/v1/jobs/doesnotexist")
    assert r.status_code == 404
    assert "doesnotexist" in r.json()["detail"]
    assert client.get("/v1/jobs/doesnotexist/evidence/a.png").status_code == 404


def test_too_large_upload_is_413(client_factory, media: dict[str, Path]) -> None:
    client = client_factory(max_upload_mb=0.01)  # 10 KiB; the astronaut JPEG is larger
    assert media["image"].stat().st_size > 0.01 * 1024 * 1024
    r = upload(client, media["image"])
    assert r.status_code == 413
    assert "0.01 MB" in r.json()["detail"]
    assert leftovers(client) == CLEAN
    assert client.get("/healthz").json()["jobs"] == {"queued": 0, "running": 0, "done": 0, "failed": 0}


def test_too_large_upload_without_content_length_is_413(client_factory, media: dict[str, Path]) -> None:
    client = client_factory(max_upload_mb=0.01)
    boundary = "fakescopeboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + media["image"].read_bytes() * 3
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def chunks():  # a streamed (chunked) body has no Content-Length to check up front
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    r = client.post(
        "/v1/analyze", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]
    assert leftovers(client) == CLEAN


def test_unknown_content_is_415(client: TestClient, media: dict[str, Path]) -> None:
    r = upload(client, media["text"])  # named .jpg, but text
    assert r.status_code == 415
    detail = r.json()["detail"]
    assert "notes.jpg" in detail
    assert "JPEG" in detail  # says what is accepted
    assert leftovers(client) == CLEAN


def test_too_long_video_is_422(client_factory, media: dict[str, Path]) -> None:
    client = client_factory(max_video_seconds=1.0)
    r = upload(client, media["video"])
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "2.0 s long" in detail
    assert "limit is 1 s" in detail
    assert leftovers(client) == CLEAN
    assert client.get("/healthz").json()["jobs"]["queued"] == 0


@pytest.mark.parametrize(
    ("key", "needle"), [("bad_video", "cannot read"), ("bad_jpeg", "cannot analyse"), ("empty", "empty")]
)
def test_unreadable_files_are_422(client: TestClient, media: dict[str, Path], key: str, needle: str) -> None:
    r = upload(client, media[key])
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]
    assert media[key].name in r.json()["detail"]
    assert leftovers(client) == CLEAN


def test_missing_file_field_is_422(client: TestClient) -> None:
    assert client.post("/v1/analyze", data={"other": "x"}).status_code == 422


def test_worker_failure_marks_job_failed(tmp_path: Path, media: dict[str, Path], checkpoint: Path) -> None:
    class Crashing:
        model_name = "crashing"

        def analyze(self, path: Path) -> Any:
            raise RuntimeError("the model crashed")

    settings = settings_for(tmp_path / "data", checkpoint)
    with TestClient(create_app(settings, predictor_factory=lambda s: Crashing())) as client:
        r = upload(client, media["video"])
        assert r.status_code == 202
        job = wait_job(client, r.headers["location"])
        assert job["status"] == "failed"
        assert "the model crashed" in job["error"]
        assert leftovers(client) == CLEAN


# ------------------------------------------------------------------------------------------------------ info endpoints
def test_healthz(client: TestClient, media: dict[str, Path]) -> None:
    upload(client, media["image"])
    h = client.get("/healthz").json()
    assert h["status"] == "ok"
    assert h["model"] == "meso4"
    assert h["worker"] == "running"
    assert h["jobs"]["done"] == 1
    assert h["limits"]["max_upload_mb"] == 100.0


def test_models(client: TestClient) -> None:
    m = client.get("/v1/models").json()
    assert m["loaded"]["model"] == "meso4"
    assert m["loaded"]["num_frames"] == 4
    assert "meso4" in m["architectures"]
    assert "mesoinception4.mesonet_df" in m["pretrained"]


def test_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in ("/v1/analyze", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/evidence/{name}", "/v1/models", "/healthz"):
        assert path in spec["paths"], path
    assert {"200", "202", "413", "415", "422"} <= set(spec["paths"]["/v1/analyze"]["post"]["responses"])


def test_web_page_is_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert 'id="file"' in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAKESCOPE_MAX_UPLOAD_MB", "5")
    monkeypatch.setenv("FAKESCOPE_DATA_DIR", str(tmp_path))
    s = Settings()
    assert s.max_upload_mb == 5
    assert s.data_dir == tmp_path
    assert Settings(max_upload_mb=7).max_upload_mb == 7  # explicit arguments win


def test_cli_rejects_bad_settings() -> None:
    from typer.testing import CliRunner

    from fakescope.cli.main import app

    r = CliRunner().invoke(app, ["serve", "--max-upload-mb", "-1"])
    assert r.exit_code == 2
    assert "max_upload_mb" in r.output


# ------------------------------------------------------------------------------------------------------ persistence
def test_restart_keeps_finished_and_queued_jobs(client_factory, tmp_path: Path, media: dict[str, Path]) -> None:
    data = tmp_path / "persist"
    first = client_factory(data_dir=data, worker_enabled=False)
    image_job = upload(first, media["image"]).json()
    assert image_job["status"] == "done"
    r = upload(first, media["video"])
    assert r.status_code == 202
    video_url = r.headers["location"]
    time.sleep(0.5)
    assert first.get(video_url).json()["status"] == "queued"  # the worker is disabled
    assert first.get("/healthz").json()["worker"] == "disabled"
    first.__exit__(None, None, None)  # shut down (lifespan exit)
    assert len(list((data / "uploads").iterdir())) == 1  # the queued job keeps its upload

    second = client_factory(data_dir=data)
    kept = second.get(image_job["url"]).json()
    assert kept["status"] == "done"
    assert kept["result"] == image_job["result"]
    video = wait_job(second, video_url)
    assert video["status"] == "done"
    assert video["result"]["kind"] == "video"
    assert leftovers(second) == CLEAN


def test_jobs_running_at_a_crash_are_requeued(client_factory, tmp_path: Path, media: dict[str, Path]) -> None:
    data = tmp_path / "crash"
    store = SqliteJobStore(data / "jobs.sqlite3")
    uploads = data / "uploads"
    uploads.mkdir(parents=True)
    ids = []
    for attempts in (0, 3):
        job = Job(id=new_job_id(), kind="video", filename="clip.mp4")
        job.upload_path = str(uploads / f"{job.id}.mp4")
        Path(job.upload_path).write_bytes(media["video"].read_bytes())
        job.attempts = attempts
        store.add(job)
        ids.append(job.id)
    assert store.claim_next().id == ids[0]  # "running" when the process died
    assert store.claim_next().id == ids[1]  # running, and already started 3 times before
    store.close()
    (data / "tmp").mkdir()
    (data / "tmp" / "half-received.part").write_bytes(b"x")  # an upload cut off by the crash

    client = client_factory(data_dir=data)
    resumed = wait_job(client, f"/v1/jobs/{ids[0]}")
    assert resumed["status"] == "done"
    gave_up = client.get(f"/v1/jobs/{ids[1]}").json()
    assert gave_up["status"] == "failed"
    assert "interrupted 3 times" in gave_up["error"]
    assert leftovers(client) == CLEAN


def test_default_pretrained_model(client_factory, media: dict[str, Path]) -> None:
    """The out-of-the-box detector is the bundled default panel: no download, no weights folder."""
    from fakescope import DEFAULT_DETECTOR

    client = client_factory(model="")
    loaded = client.get("/v1/models").json()["loaded"]
    assert loaded["model"] == DEFAULT_DETECTOR == "panel.dfdc_f2f"
    assert loaded["members"] == ["mobilenet_v2.dfdc", "mesoinception4.mesonet_f2f"]
    r = upload(client, media["image"])
    assert r.status_code == 200
    assert r.json()["result"]["model"] == DEFAULT_DETECTOR
    assert r.json()["result"]["verdict"] in ("fake", "real")


def test_named_mesonet_detector_still_served(client_factory, shared_data: Path, media: dict[str, Path]) -> None:
    client = client_factory(model="mesoinception4.mesonet_df", weights_dir=shared_data / "weights" / "mesonet")
    r = upload(client, media["image"])
    assert r.status_code == 200 and r.json()["result"]["model"] == "mesoinception4.mesonet_df"


def test_second_service_on_a_busy_data_folder_touches_nothing(tmp_path: Path, checkpoint: Path) -> None:
    from fakescope.serve.service import DataDirBusy, Service

    data = tmp_path / "data"
    first = Service(settings_for(data, checkpoint))
    first.start()
    try:
        job = Job(id=new_job_id(), kind="video", filename="clip.mp4", status="running", created_at=time.time())
        first.store.add(job)
        marker = first.tmp_dir / "upload-in-progress"
        marker.write_bytes(b"partial")
        second = Service(settings_for(data, checkpoint))
        with pytest.raises(DataDirBusy, match="another fakescope serve"):
            second.start()
        assert marker.is_file()  # the first server's temporary upload survives
        assert first.store.get(job.id).status == "running"  # and its running job is not re-queued
    finally:
        first.stop()
    third = Service(settings_for(data, checkpoint))  # once the first is gone the folder is free again
    third.start()
    third.stop()


def test_queue_cap_and_host_check(client_factory, media: dict[str, Path]) -> None:
    client = client_factory(worker_enabled=False, max_queued_jobs=1)
    first = upload(client, media["video"])
    assert first.status_code == 202, first.text
    second = upload(client, media["video"])
    assert second.status_code == 503 and second.headers["retry-after"] == "30"
    assert "already waiting" in second.json()["detail"]
    assert upload(client, media["image"]).status_code == 200  # images are analysed at once, never queued
    assert leftovers(client)["tmp"] == []
    guarded = client_factory(data_dir=client.app.state.service.data_dir.parent / "d2", allowed_hosts=["fakescope.test"])
    assert guarded.get("/healthz").status_code == 400  # TestClient sends Host: testserver
    assert guarded.get("/healthz", headers={"host": "fakescope.test"}).status_code == 200


def test_job_time_limit_retention_and_no_empty_evidence(tmp_path: Path, media: dict[str, Path]) -> None:
    """A job past its time limit fails with a message naming it; finished jobs expire with their evidence."""
    from fakescope.serve.worker import JobWorker, PredictorPool

    class Slow:
        def analyze(self, path, explain_dir=None, progress=None):
            for f in (0.2, 0.4, 0.6):
                time.sleep(0.05)
                progress(f)
            raise AssertionError("the time limit should have stopped the job")

    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    upload = tmp_path / "clip.mp4"
    upload.write_bytes(media["video"].read_bytes())
    job = Job(id=new_job_id(), kind="video", filename="clip.mp4", upload_path=str(upload), created_at=time.time())
    store.add(job)
    worker = JobWorker(store, PredictorPool([Slow()]), tmp_path / "evidence", job_timeout_s=0.08, retention_s=3600)
    worker.process(store.claim_next())
    failed = store.get(job.id)
    assert failed.status == "failed" and "longer than 0.08 s" in failed.error
    assert not (tmp_path / "evidence" / job.id).exists()
    (tmp_path / "evidence" / "old").mkdir(parents=True)
    assert worker.purge(now=time.time() + 1000) == []  # still within the retention period
    assert worker.purge(now=time.time() + 7200) == [job.id]
    assert store.get(job.id) is None
    store.close()


def test_no_face_job_leaves_no_empty_evidence_folder(client_factory, tmp_path: Path) -> None:
    client = client_factory()
    blank = tmp_path / "blank.mp4"
    make_video(blank, np.full((64, 64, 3), 90, np.uint8))
    job = wait_job(client, upload(client, blank).headers["location"])
    assert job["status"] == "done" and job["result"]["verdict"] == "no-face"
    assert not (client.app.state.service.evidence_dir / job["id"]).exists()
