"""Tiny synthetic media with a real face (scikit-image's astronaut) and dataset trees in each adapter's layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_FACE_CACHE: dict[str, np.ndarray] = {}


def face_image(size: int = 128) -> np.ndarray:
    """The astronaut's head and shoulders, ``size`` x ``size`` RGB uint8."""
    key = f"face{size}"
    if key not in _FACE_CACHE:
        import cv2
        from skimage import data

        img = data.astronaut()[0:300, 90:390]
        _FACE_CACHE[key] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return _FACE_CACHE[key]


def tight_face(size: int = 160) -> np.ndarray:
    """A tight face crop (the face fills the image), like the images of face-crop datasets."""
    import cv2
    from skimage import data

    img = data.astronaut()[30:230, 150:320]
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def write_video(path: Path, n_frames: int = 8, shift: int = 0, width: int = 192, height: int = 160) -> Path:
    """An H.264 clip (10 fps) of the astronaut's face drifting right, frame number encoded in the drift."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    face = face_image(128)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(n_frames):
            frame = np.full((height, width, 3), 40 + 10 * shift % 200, np.uint8)
            x = min(width - 128, 8 + 3 * i + shift)
            frame[16 : 16 + 128, x : x + 128] = face
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_image(path: Path, image: np.ndarray) -> Path:
    """Save an RGB image (format from the suffix)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def scene_image(size: int = 480) -> np.ndarray:
    """A larger photo with the face somewhere inside (not a crop)."""
    img = np.full((size, size, 3), 90, np.uint8)
    face = face_image(192)
    img[100 : 100 + 192, 150 : 150 + 192] = face
    return img


# ------------------------------------------------------------------------------------------ dataset layouts
def build_celebdf(root: Path) -> Path:
    """Celeb-DF v2 layout: 2 Celeb-real, 1 YouTube-real, 2 Celeb-synthesis, and the official test list."""
    write_video(root / "Celeb-real" / "id0_0000.mp4", shift=0)
    write_video(root / "Celeb-real" / "id1_0000.mp4", shift=2)
    write_video(root / "YouTube-real" / "00000.mp4", shift=4)
    write_video(root / "Celeb-synthesis" / "id0_id1_0000.mp4", shift=6)
    write_video(root / "Celeb-synthesis" / "id1_id0_0000.mp4", shift=8)
    (root / "List_of_testing_videos.txt").write_text("1 YouTube-real/00000.mp4\n0 Celeb-synthesis/id1_id0_0000.mp4\n")
    return root


def build_dfdc(root: Path) -> Path:
    """Two dfdc_train_part_* folders with metadata.json."""
    part0 = root / "dfdc_train_part_0"
    write_video(part0 / "aaaaaaaaaa.mp4", shift=0)
    write_video(part0 / "bbbbbbbbbb.mp4", shift=3)
    meta0 = {
        "aaaaaaaaaa.mp4": {"label": "REAL", "split": "train", "original": None},
        "bbbbbbbbbb.mp4": {"label": "FAKE", "split": "train", "original": "aaaaaaaaaa.mp4"},
    }
    (part0 / "metadata.json").write_text(json.dumps(meta0))
    part1 = root / "dfdc_train_part_1"
    write_video(part1 / "cccccccccc.mp4", shift=5)
    (part1 / "metadata.json").write_text(
        json.dumps({"cccccccccc.mp4": {"label": "REAL", "split": "train", "original": None}})
    )
    return root


def build_dfdc_faces(root: Path) -> Path:
    """Kaggle deepfake-detection-faces: DeepFake00/DeepFake00/<video>.jpg and metadata/00.json."""
    face = tight_face(160)
    folder = root / "DeepFake00" / "DeepFake00"
    write_image(folder / "aaaaaaaaaa.jpg", face)
    write_image(folder / "bbbbbbbbbb.jpg", face[:, ::-1].copy())
    write_image(folder / "cccccccccc.jpg", face[::-1].copy())
    meta = {
        "aaaaaaaaaa.mp4": {"label": "REAL", "split": "train", "original": None},
        "bbbbbbbbbb.mp4": {"label": "FAKE", "split": "train", "original": "aaaaaaaaaa.mp4"},
        "cccccccccc.mp4": {"label": "REAL", "split": "train", "original": None},
    }
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "metadata" / "00.json").write_text(json.dumps(meta))
    return root


def build_deepfake_faces(root: Path) -> Path:
    """Kaggle deepfake-faces: faces_224/<video>.jpg and metadata.csv (videoname,label,original)."""
    face = tight_face(160)
    write_image(root / "faces_224" / "aaaaaaaaaa.jpg", face)
    write_image(root / "faces_224" / "bbbbbbbbbb.jpg", face[:, ::-1].copy())
    write_image(root / "faces_224" / "cccccccccc.jpg", np.roll(face, 9, axis=1))
    write_image(root / "faces_224" / "dddddddddd.jpg", np.roll(face, -9, axis=1))
    (root / "metadata.csv").write_text(
        "videoname,original_width,original_height,label,original\n"
        "aaaaaaaaaa.mp4,1920,1080,REAL,\n"
        "bbbbbbbbbb.mp4,1920,1080,FAKE,aaaaaaaaaa.mp4\n"
        "cccccccccc.mp4,1920,1080,REAL,\n"
        "dddddddddd.mp4,1920,1080,FAKE,cccccccccc.mp4\n"
        "eeeeeeeeee.mp4,1920,1080,FAKE,cccccccccc.mp4\n"
    )
    return root


def build_ffpp(root: Path) -> Path:
    """FaceForensics++: originals 000, 003 and 010 (c23), Deepfakes 000_003 and 003_000."""
    for i, vid in enumerate(("000", "003", "010")):
        write_video(root / "original_sequences" / "youtube" / "c23" / "videos" / f"{vid}.mp4", shift=i)
    for i, vid in enumerate(("000_003", "003_000")):
        write_video(root / "manipulated_sequences" / "Deepfakes" / "c23" / "videos" / f"{vid}.mp4", shift=5 + i)
    return root


def build_folder(root: Path) -> Path:
    """real/ and fake/ with a video and an image each."""
    write_video(root / "real" / "clip_a.mp4", shift=0)
    write_image(root / "real" / "photo_a.png", scene_image())
    write_video(root / "fake" / "clip_b.mp4", shift=4)
    write_image(root / "fake" / "face_b.jpg", tight_face(160))
    return root


def build_csv(root: Path) -> Path:
    """A labels.csv with path, label (mixed spellings) and group_id columns over face-crop images."""
    face = tight_face(160)
    lines = ["path,label,group_id,person"]
    for i in range(4):
        name = f"imgs/{'fake' if i % 2 else 'real'}_{i}.jpg"
        write_image(root / name, np.roll(face, 7 * i, axis=1))
        label = ("fake" if i % 2 else "real") if i < 2 else str(i % 2)
        lines.append(f"{name},{label},g{i // 2},p{i}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


BUILDERS = {
    "celebdf": build_celebdf,
    "dfdc": build_dfdc,
    "dfdc-faces": build_dfdc_faces,
    "deepfake-faces": build_deepfake_faces,
    "ffpp": build_ffpp,
    "folder": build_folder,
    "csv": build_csv,
}


def manifest_fingerprint(manifest_path: Path) -> tuple[list[dict], dict[str, str]]:
    """Rows (sorted by crop path) and the SHA-256 of every crop, to compare two prepare runs."""
    import hashlib

    from fakescope.data.manifest import read_manifest

    df = read_manifest(manifest_path).sort_values("crop_path").reset_index(drop=True)
    df = df.drop(columns=["media_path"])
    rows = df.astype(object).to_dict("records")
    root = Path(manifest_path).parent
    hashes = {p: hashlib.sha256((root / p).read_bytes()).hexdigest() for p in df["crop_path"]}
    return rows, hashes
