"""Hostile inputs for the tests of the front-ends' image reading: a PNG
decompression bomb written by hand (never allocated), folders with named
pipes and links to devices, a subprocess runner that reports the peak
memory of a command and stops it when it passes a ceiling, and a deadline
for the tests that could block.

Not a conftest.py: importable by name from every test folder (pytest puts
tests/ on the path for tests/conftest.py).
"""
import contextlib
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np

#: a watcher that runs argv and polls its anonymous resident memory (RssAnon of
#: /proc/<pid>/status: what the command allocates, without the shared libraries' pages) every
#: 10 ms, kills it above the ceiling or after the timeout, and prints last "<exit status> <peak
#: resident bytes, the kernel's exact figure (getrusage of the children)> <peak anonymous
#: bytes, polled> <- or why it was killed>"
_WATCH = r"""
import resource, subprocess, sys, time
ceiling, timeout, argv = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
child = subprocess.Popen(argv)
anon, killed, started = 0, "-", time.monotonic()
while child.poll() is None:
    try:
        with open(f"/proc/{child.pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    anon = max(anon, int(line.split()[1]) * 1024)
    except OSError:
        pass
    if anon > ceiling or time.monotonic() - started > timeout:
        killed = "memory" if anon > ceiling else "timeout"
        child.kill()
        child.wait()
        break
    time.sleep(0.01)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(child.returncode, peak, anon, killed, file=sys.stderr)
"""


def png_bomb(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A 1-bit grayscale PNG of ``width`` x ``height`` black pixels, written
    row by row into one zlib stream (a 20000 x 20000 one is about 47 KB and
    400 megapixels); nothing of its size is ever in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    compressor = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


def good_png(path: Path, height: int = 40, width: int = 48, seed: int = 0) -> Path:
    """A small smooth random photo."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    cv2.imwrite(str(path), cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC))
    return path


def special_folder(folder: Path) -> Path:
    """``a_good.png`` and, beside it, what must not be read as an image:
    ``pipe.png`` (a named pipe, no writer), ``zero.png`` -> /dev/zero,
    ``random.png`` -> /dev/urandom, ``gone.png`` -> a missing file, and
    ``link.png`` -> a_good.png (a link to a good image: allowed)."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    good_png(folder / "a_good.png")
    os.mkfifo(folder / "pipe.png")
    os.symlink("/dev/zero", folder / "zero.png")
    os.symlink("/dev/urandom", folder / "random.png")
    os.symlink(folder / "missing.png", folder / "gone.png")
    os.symlink(folder / "a_good.png", folder / "link.png")
    return folder


def peak_memory(argv, *, env, cwd, ceiling: int, timeout: float = 300):
    """Run ``argv`` under a fresh watcher process (Linux: /proc): returns
    (the exit status, the peak resident memory in bytes, the peak anonymous
    memory in bytes, "-" or why it was killed: "memory" above ``ceiling``
    anonymous bytes, "timeout") and the watcher's completed process (the
    command's output)."""
    watcher = subprocess.run([sys.executable, "-c", _WATCH, str(ceiling), str(timeout),
                              *map(str, argv)], env=env, cwd=cwd, capture_output=True,
                             text=True, timeout=timeout + 60)
    status, peak, anon, killed = watcher.stderr.strip().splitlines()[-1].split()
    return (int(status), int(peak), int(anon), killed), watcher


class Blocked(Exception):
    """Raised by :func:`deadline`; not an OSError, so that code that turns
    read errors into messages does not swallow it."""


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail (:class:`Blocked`) instead of hanging when the block takes
    longer, a read blocked in the kernel included (SIGALRM interrupts it)."""
    def expire(signum, frame):
        raise Blocked(f"still running after {seconds} s: something blocked")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
