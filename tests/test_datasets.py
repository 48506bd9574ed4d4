"""Named datasets: downloaded from a local HTTP server on 127.0.0.1 serving an archive made here — progress bar,
resume after an interruption, checksum refusal, safe and atomic extraction, and no network work once cached."""

import hashlib
import io
import tarfile
from dataclasses import replace

import pytest
from PIL import Image

from convscale.data import catalog, make_datasets, make_val_dataset
from convscale.data.catalog import DATASETS, cached, fetch
from convscale.utils.download import DownloadError
from convscale.weights import readable_class_names

NAME = "imagenette2-160"
WNIDS = ["n01440764", "n02102040"]  # tench, English springer


def png_bytes(color: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 32), (color, 255 - color, 90)).save(buf, format="PNG")
    return buf.getvalue()


def make_archive(members: list[tuple[str, bytes | None, str]] | None = None) -> bytes:
    """A .tgz of ``(name, data, kind)``; the default is a two-class dataset laid out as fast.ai's archives are."""
    if members is None:
        members = [(f"{NAME}/{split}/{w}/img{i}.png", png_bytes(40 * i + 100 * c), "file")
                   for split in ("train", "val") for c, w in enumerate(WNIDS) for i in range(3)]  # fmt: skip
        members.append((f"{NAME}/noisy_imagenette.csv", b"path,noisy_labels_0\n", "file"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, f"{NAME}/train/x.png"
                tar.addfile(info)
    return buf.getvalue()


@pytest.fixture
def served(file_server, tmp_path, monkeypatch):
    """The dataset's catalogue row pointed at the local server, the cache in a temporary folder."""
    monkeypatch.setenv("CONVSCALE_DATASETS", str(tmp_path / "cache"))

    def serve(blob: bytes, md5: str | None = "auto", size: int | None = None):
        file_server.files[f"/{NAME}.tgz"] = blob
        digest = hashlib.md5(blob).hexdigest() if md5 == "auto" else md5
        row = replace(DATASETS[NAME], url=f"{file_server.url}/{NAME}.tgz", size=size or len(blob), md5=digest)
        monkeypatch.setitem(catalog.DATASETS, NAME, row)
        return row

    return serve


def test_download_extract_and_no_network_the_second_time(served, file_server, tmp_path, capfd):
    served(make_archive())
    folder = fetch(NAME)
    assert folder == tmp_path / "cache" / NAME
    assert sorted(p.name for p in (folder / "train").iterdir()) == WNIDS
    assert len(list((folder / "val").rglob("*.png"))) == 6
    err = capfd.readouterr().err
    assert f"{NAME}.tgz" in err and "100%" in err  # the progress bar
    assert not list((tmp_path / "cache").glob(f"{NAME}.tgz*"))  # the archive is gone once extracted
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [NAME]  # no partial folder left
    requests = len(file_server.log)
    assert fetch(NAME) == folder
    assert len(file_server.log) == requests  # cached: no network work


def test_an_interrupted_download_resumes(served, file_server, tmp_path):
    blob = make_archive()
    served(blob)
    file_server.cut[f"/{NAME}.tgz"] = len(blob) // 2
    with pytest.raises(DownloadError, match="run again to resume"):
        fetch(NAME, progress=False)
    part = tmp_path / "cache" / f"{NAME}.tgz.part"
    assert part.stat().st_size == len(blob) // 2
    assert cached(NAME) is None
    folder = fetch(NAME, progress=False)
    assert file_server.log[-1] == (f"/{NAME}.tgz", f"bytes={len(blob) // 2}-")  # asked for the rest only
    assert (folder / "val" / WNIDS[1] / "img2.png").is_file()


def test_a_wrong_checksum_is_refused_and_the_file_kept_apart(served, tmp_path):
    served(make_archive(), md5="0" * 32)
    with pytest.raises(DownloadError, match=r"md5 [0-9a-f]{32}, expected 0{32}.*kept apart as .*\.bad"):
        fetch(NAME, progress=False)
    assert (tmp_path / "cache" / f"{NAME}.tgz.bad").is_file()
    assert not (tmp_path / "cache" / f"{NAME}.tgz").exists() and cached(NAME) is None


def test_a_wrong_size_is_refused(served, tmp_path):
    blob = make_archive()
    served(blob, size=len(blob) + 10)
    with pytest.raises(DownloadError):
        fetch(NAME, progress=False)
    assert cached(NAME) is None


@pytest.mark.parametrize(
    ("member", "kind", "message"),
    [
        ("../escaped.txt", "file", "outside the dataset folder"),
        (f"{NAME}/../../escaped.txt", "file", "outside the dataset folder"),
        ("/tmp/escaped-absolute.txt", "file", "outside the dataset folder"),
        (f"{NAME}/train/link.png", "symlink", "is a link"),
        (f"{NAME}/train/hard.png", "hardlink", "is a link"),
    ],
)
def test_unsafe_members_refuse_the_archive_and_nothing_escapes(served, tmp_path, member, kind, message):
    members = [(f"{NAME}/train/{WNIDS[0]}/a.png", png_bytes(1), "file"), (member, b"evil", kind)]
    members.append((f"{NAME}/val/{WNIDS[0]}/b.png", png_bytes(2), "file"))
    served(make_archive(members))
    with pytest.raises(ValueError, match=message):
        fetch(NAME, progress=False)
    assert cached(NAME) is None
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()
    assert not __import__("pathlib").Path("/tmp/escaped-absolute.txt").exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # the partial extraction was removed


def test_an_archive_without_splits_is_not_a_dataset(served):
    served(make_archive([("readme.txt", b"hello", "file")]))
    with pytest.raises(ValueError, match="no train/ and val/"):
        fetch(NAME, progress=False)
    assert cached(NAME) is None


def test_a_half_extracted_folder_is_never_taken_for_the_dataset(served, tmp_path):
    (tmp_path / "cache" / f".{NAME}.partial-999" / "train").mkdir(parents=True)  # a killed extraction
    assert cached(NAME) is None
    served(make_archive())
    assert (fetch(NAME, progress=False) / "train").is_dir()


def test_training_data_by_name(served):
    served(make_archive())
    train, val, classes, native = make_datasets(NAME)
    assert classes == WNIDS and len(train) == 6 and len(val) == 6 and native is None
    assert readable_class_names(classes) == ["tench", "English springer"]
    assert make_val_dataset(NAME)[1] == WNIDS


def test_unknown_names_and_the_cli_listing(tmp_path, monkeypatch, capsys):
    from convscale.cli import main

    with pytest.raises(ValueError, match="no dataset named"):
        fetch("imagenet")
    monkeypatch.setenv("CONVSCALE_DATASETS", str(tmp_path))
    (tmp_path / "imagewoof2-160" / "train").mkdir(parents=True)
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert f"cache: {tmp_path}" in out and f"cached at {tmp_path / 'imagewoof2-160'}" in out
    assert "99 MB to download" in out  # imagenette2-160, not cached
