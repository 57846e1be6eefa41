"""pytorch_grad_cam.utils.settings: a process-wide setting changed for a
block and put back, and the two settings the library changes that way
(OpenCV's thread count, the default socket time-out)."""
import socket

import cv2
import pytest

from pytorch_grad_cam.datasets.loop import opencv_threads
from pytorch_grad_cam.models.network import socket_timeout
from pytorch_grad_cam.utils.settings import temporary_setting


class _Setting:
    def __init__(self, value):
        self.value = value
        self.writes = []

    def get(self):
        return self.value

    def set(self, value):
        self.writes.append(value)
        self.value = value


def test_the_value_holds_inside_the_block_and_the_old_one_comes_back():
    setting = _Setting(3)
    with temporary_setting(setting.get, setting.set, 8):
        assert setting.value == 8
    assert (setting.value, setting.writes) == (3, [8, 3])


def test_the_old_value_comes_back_when_the_block_raises():
    setting = _Setting(None)
    with pytest.raises(KeyError, match="inside"), temporary_setting(setting.get, setting.set, 1.5):
        assert setting.value == 1.5
        raise KeyError("inside")
    assert (setting.value, setting.writes) == (None, [1.5, None])


def test_opencv_threads_sets_the_count_and_puts_it_back():
    before = cv2.getNumThreads()
    wanted = 1 if before != 1 else 2
    with opencv_threads(wanted):
        assert cv2.getNumThreads() == wanted
    assert cv2.getNumThreads() == before
    with pytest.raises(RuntimeError), opencv_threads(wanted):
        raise RuntimeError
    assert cv2.getNumThreads() == before


def test_socket_timeout_sets_the_default_and_puts_it_back():
    before = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(None)
        with socket_timeout(7.5):
            assert socket.getdefaulttimeout() == 7.5
        assert socket.getdefaulttimeout() is None
        socket.setdefaulttimeout(2.0)
        with pytest.raises(OSError), socket_timeout(30):
            assert socket.getdefaulttimeout() == 30
            raise OSError("network down")
        assert socket.getdefaulttimeout() == 2.0
    finally:
        socket.setdefaulttimeout(before)
