"""`hiresgan shards --captions`: NAME.txt beside images, CSV and JSONL of file,caption (several
captions per image), written as each sample's .txt; missing or empty captions named."""

import json

import pytest
import webdataset as wds
from PIL import Image

from trainer.shards import ShardError, write_shards


def images(folder, names=("a.png", "b.png", "sub/c.png")):
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 24), (40 * i, 0, 0)).save(folder / name)
    return folder


def read_txt(out):
    manifest = json.loads((out / "manifest.json").read_text())
    urls = [str(out / s["name"]) for s in manifest["shards"]]
    return manifest, {
        s["json"]["path"] if isinstance(s["json"], dict) else json.loads(s["json"])["path"]: s["txt"]
        for s in wds.WebDataset(urls, shardshuffle=False).decode()
    }


def test_txt_beside_each_image_is_read_by_stock_webdataset(tmp_path):
    src = images(tmp_path / "src")
    (src / "a.txt").write_text("a dark square\nsomething dark\n")
    (src / "b.txt").write_text("a red square")
    (src / "sub" / "c.txt").write_text("  a brighter   square ")
    write_shards(src, tmp_path / "out", resolution=16)
    manifest, texts = read_txt(tmp_path / "out")
    assert manifest["captioned"] and manifest["caption_words"]["square"] == 3
    assert texts == {
        "a.png": "a dark square\nsomething dark",
        "b.png": "a red square",
        "sub/c.png": "a brighter square",
    }


def test_missing_or_empty_caption_is_named(tmp_path):
    src = images(tmp_path / "src")
    (src / "a.txt").write_text("a dark square")
    (src / "b.txt").write_text("   \n")
    with pytest.raises(ShardError, match=r"2 images have no caption.*b\.png; sub/c\.png.*--captions none"):
        write_shards(src, tmp_path / "out", resolution=16)
    manifest = write_shards(src, tmp_path / "none", resolution=16, captions="none")
    assert not manifest.captioned


def test_csv_and_jsonl_with_several_captions_per_file(tmp_path):
    src = images(tmp_path / "src")
    csv = tmp_path / "captions.csv"
    csv.write_text('file,caption\na.png,first\na.png,"second, with a comma"\nb.png,bee\nsub/c.png,sea\n')
    write_shards(src, tmp_path / "csv", resolution=16, captions=str(csv))
    _, texts = read_txt(tmp_path / "csv")
    assert texts["a.png"] == "first\nsecond, with a comma" and texts["sub/c.png"] == "sea"
    jsonl = tmp_path / "captions.jsonl"
    jsonl.write_text('{"file": "a.png", "caption": ["one", "two"]}\n{"file": "b.png", "caption": "bee"}\n')
    with pytest.raises(ShardError, match=r"1 images have no caption \(an entry in .*captions.jsonl\).*sub/c\.png"):
        write_shards(src, tmp_path / "jsonl", resolution=16, captions=str(jsonl))
    bad = tmp_path / "bad.csv"
    bad.write_text("name,words\na.png,x\n")
    with pytest.raises(ShardError, match="needs a header row with a 'file' and a 'caption' column"):
        write_shards(src, tmp_path / "bad", resolution=16, captions=str(bad))


def test_uncaptioned_folder_stays_uncaptioned(tmp_path):
    manifest = write_shards(images(tmp_path / "src"), tmp_path / "out", resolution=16)
    assert not manifest.captioned and manifest.caption_words is None and "captions" not in manifest.args
