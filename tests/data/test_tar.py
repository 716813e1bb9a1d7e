"""The streaming tar reader against what real tar writers produce: Python's tarfile in its
three formats (long names as ustar prefix, GNU 'L' records, pax), gzip, directories and links
(skipped), and damage (bad checksum, missing end block)."""

import gzip
import io
import tarfile

import pytest

from trainer.data.tar import TarDamage, iter_tar

LONG = "a" * 90 + "/" + "b" * 120 + "/00000001"


def make_tar(fmt, names, extra=()):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for kind, name in extra:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "elsewhere"
            tar.addfile(info)
        for i, name in enumerate(names):
            payload = bytes([i]) * (700 + i)
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_every_tarfile_format_reads_back_names_and_payloads(fmt):
    names = ["x/0001.png", "x/0001.cls", ("p" * 80 + "/" + "q" * 60 + "/0002.png")]
    if fmt != tarfile.USTAR_FORMAT:
        names.append(LONG + ".png")  # over ustar's 255 characters: GNU 'L' or pax 'path'
    data = make_tar(fmt, names, extra=[(tarfile.DIRTYPE, "x"), (tarfile.SYMTYPE, "x/link.png")])
    got = list(iter_tar(io.BytesIO(data)))
    assert [n for n, _ in got] == names
    assert all(p == bytes([i]) * (700 + i) for i, (_, p) in enumerate(got))


def test_gzipped_tar_and_short_reads():
    class Trickle(io.BytesIO):  # a network stream that hands out at most 100 bytes per read
        def read(self, n=-1):
            return super().read(100 if n < 0 else min(n, 100))

    data = gzip.compress(make_tar(tarfile.USTAR_FORMAT, ["0001.jpg", "0001.cls"]))
    assert [n for n, _ in iter_tar(Trickle(data))] == ["0001.jpg", "0001.cls"]


def test_damage_is_reported_with_its_byte_offset():
    data = bytearray(make_tar(tarfile.USTAR_FORMAT, ["0001.png", "0002.png"]))
    with pytest.raises(TarDamage, match="without its end-of-archive block"):
        list(iter_tar(io.BytesIO(bytes(data[:1536]))))  # cut right after the first member (512 + 1024)
    data[1536 + 10] ^= 0xFF  # a flipped bit in the second header
    with pytest.raises(TarDamage, match="invalid tar header at byte 1536"):
        list(iter_tar(io.BytesIO(bytes(data))))


def test_random_bytes_are_named_as_no_tar():
    import numpy as np

    junk = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    with pytest.raises(TarDamage, match="invalid tar header at byte 0"):
        list(iter_tar(io.BytesIO(junk)))
