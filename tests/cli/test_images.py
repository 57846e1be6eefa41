"""pytorch_grad_cam.cli.images: the images of --image-path are checked
before anything is computed: a named pipe or a link to a device is a
one-line error (never a read that waits), a decompression bomb is refused
by its header (--max-pixels) without being decoded, in bounded memory."""
import os
import sys

import cv2
import pytest
from cli_helpers import BUNDLED, ROOT
from hostile_inputs import deadline, good_png, peak_memory, png_bomb, special_folder
from PIL import Image

from pytorch_grad_cam.cli import UsageError, image_parser, main
from pytorch_grad_cam.cli.images import collect_images

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="named pipes and /dev")
GB = 10 ** 9


@posix_only
@pytest.mark.parametrize("name, reason", [
    ("pipe.png", "a named pipe, not a regular file"),
    ("zero.png", "a character device (/dev/zero), not a regular file"),
    ("random.png", "a character device (/dev/urandom), not a regular file"),
])
def test_a_pipe_or_a_device_is_a_one_line_error(tmp_path, capsys, name, reason):
    folder = special_folder(tmp_path / "photos")
    argv = ["--image-path", str(folder / name), *BUNDLED, "--output-dir", str(tmp_path / "out")]
    with deadline(60):
        assert main(argv) == 2
    assert capsys.readouterr().err == f"grad-cam: error: --image-path {folder / name}: {reason}\n"
    assert not (tmp_path / "out").exists()


@posix_only
def test_a_folder_with_a_pipe_names_it(tmp_path):
    folder = special_folder(tmp_path / "photos")
    with deadline(60), pytest.raises(UsageError) as caught:
        collect_images([str(folder)])
    assert str(caught.value) == (f"--image-path {folder / 'gone.png'}: a broken symbolic link "
                                 f"(to {folder / 'missing.png'}), not a regular file")
    for name in ("gone.png", "pipe.png", "random.png", "zero.png"):
        os.remove(folder / name)
    # a link to a regular image is an image; names starting with "." are not searched
    (folder / ".hidden.png").write_bytes(b"")
    assert collect_images([str(folder)]) == [folder / "a_good.png", folder / "link.png"]


def test_max_pixels_is_read_from_the_header(tmp_path):
    path = png_bomb(tmp_path / "wide.png", 300, 200)  # 60000 pixels, 1 bit each
    assert collect_images([str(path)], max_pixels=60_000) == [path]
    with pytest.raises(UsageError) as caught:
        collect_images([str(path)], max_pixels=59_999)
    assert str(caught.value) == (f"--image-path {path}: 300 x 200 pixels (0.1 megapixels) is "
                                 "more than --max-pixels 59999; downscale it or raise "
                                 "--max-pixels")
    assert image_parser().parse_args([]).max_pixels == 80_000_000
    assert image_parser().parse_args(["--max-pixels", "60000"]).max_pixels == 60_000
    with pytest.raises(UsageError, match="argument --max-pixels: must be a positive integer"):
        image_parser().parse_args(["--max-pixels", "0"])


def test_a_folder_gives_the_images_of_the_shared_suffixes(tmp_path):
    """GIF and PPM files were left out of the command's folders before (its
    list of suffixes was shorter than the dataset runner's)."""
    picture = cv2.imread(str(good_png(tmp_path / "a.png")))
    cv2.imwrite(str(tmp_path / "b.ppm"), picture)
    Image.fromarray(picture[..., ::-1]).save(tmp_path / "c.gif")
    assert collect_images([str(tmp_path)]) == [tmp_path / name for name in ("a.png", "b.ppm",
                                                                            "c.gif")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_bomb_is_refused_before_decoding_in_bounded_memory(tmp_path):
    """A 47 KB PNG of 20000 x 20000 pixels: one line, exit status 2,
    nothing written, and the command's anonymous memory (what it allocates,
    polled) stays under 1 GB; the kernel's peak resident figure also counts
    the pages of torch's shared libraries (about 1.0 GB with a CUDA build of
    torch for `--help` alone), hence its wider bound. Before the limit the
    command decoded the bomb and passed 4 GB."""
    bomb = png_bomb(tmp_path / "bomb.png")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    (status, peak, anon, killed), watcher = peak_memory(
        [sys.executable, "-m", "pytorch_grad_cam", "--image-path", bomb, *BUNDLED,
         "--output-dir", tmp_path / "out"], env=env, cwd=tmp_path, ceiling=GB)
    assert killed == "-", f"killed ({killed}) at {anon / GB:.2f} GB of anonymous memory"
    assert status == 2
    assert watcher.stderr.splitlines()[0] == (
        f"python -m pytorch_grad_cam: error: --image-path {bomb}: 20000 x 20000 pixels (400 "
        "megapixels) is more than --max-pixels 80000000; downscale it or raise --max-pixels")
    assert len(watcher.stderr.splitlines()) == 2  # the error and the watcher's figures
    assert not (tmp_path / "out").exists()
    assert anon < GB and peak < 1.5 * GB, (anon, peak)
