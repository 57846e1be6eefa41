"""Speed and memory of the dataset runner against a plain loop, in the same run.

A folder of JPEGs is made from ``skimage.data`` photos at several sizes
(160 x 213 to 1200 x 1600). For each model (torchvision, ``weights=None``,
seed 0, on the CPU) GradCAM explains the whole folder twice each way,
alternating:

- **loop**: what a user writes by hand: for every batch of ``--batch-size``
  files, decode (``cv2.imread``), convert to RGB, resize to 224 x 224
  (``cv2.INTER_AREA``), normalise, ``GradCAM(...)(batch)`` (one forward
  pass, the backward pass to the target layer), the maps downsampled to
  the layer's resolution as float16 and written with ``np.savez`` every 512
  images. Decoding runs in the main process, between the batches.
- **runner**: ``explain_dataset(folder, model, "gradcam", ...)`` into a
  fresh store, the whole call timed: the same decoding, resizing and
  GradCAM call, decoding in DataLoader workers (``--workers``: one row per
  setting, ``default`` = the runner's own choice, ``runner.default_workers``),
  plus what the loop does not do: the layer probe, the model fingerprint
  (a hash of the weights), top-5 predictions, the shards written
  atomically (fsync), the finalised index.

Each side's best of its runs is reported (the machine may be shared: the
best run is the one least disturbed), as images per second and the ratio
runner time / loop time (the goal: at most 1.10). ``--threads N`` fixes
torch's intra-op threads for both sides: on a machine that other work
shares, torch's OpenMP threads lose their cores at random and the same run
varies several-fold; with one thread it does not.

Memory: the runner explains ``--memory-images`` items (a Dataset cycling
through the files, so that every item is new to the store) with
mobilenet_v3_small while a thread samples the resident memory of the
process and its DataLoader workers every 0.1 s; the samples at 10 %, 25 %,
50 %, 75 % and 100 % of the run show whether it grows with the number of
images.

    python bench/dataset_benchmark.py                 # 256 images, resnet50 + mobilenet_v3_small
    python bench/dataset_benchmark.py --threads 1 --workers default 0 --runs 3
    python bench/dataset_benchmark.py --quick         # 32 images, 1 run each, a smoke check
"""
import argparse
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.datasets import Preprocess, explain_dataset  # noqa: E402
from pytorch_grad_cam.datasets.sources import list_images  # noqa: E402

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
          "immunohistochemistry", "colorwheel", "retina"]
SIZES = [(160, 213), (240, 320), (300, 451), (375, 500), (480, 640), (600, 800), (768, 1024),
         (1200, 1600)]
MODELS = {"mobilenet_v3_small": "features[-1]", "resnet50": "layer4[-1]"}


def make_folder(folder: Path, count: int) -> list:
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    for i in range(count):
        rgb = photos[i % len(photos)]
        height, width = SIZES[(i // len(photos) + i) % len(SIZES)]
        image = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"img_{i:04d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
    return list_images(folder)


def build(name: str):
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    from pytorch_grad_cam.layers import resolve_layer

    return model, resolve_layer(model, MODELS[name])


def layer_resolution(model, layer) -> tuple:
    """(H, W) of the layer's output for a 224 x 224 input (a hand-written
    loop knows it; the runner finds it with its probe)."""
    seen = {}
    handle = layer.register_forward_hook(lambda module, args, output: seen.update(out=output))
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 224, 224))
    finally:
        handle.remove()
    return tuple(seen["out"].shape[-2:])


def plain_loop(files, model, layer, batch_size: int, out: Path, layer_size: tuple) -> float:
    """Seconds to explain ``files`` the way a hand-written loop does."""
    started = time.perf_counter()
    preprocess = Preprocess(size=(224, 224))
    cam = GradCAM(model=model, target_layers=[layer], progress=False)
    kept, part = [], 0
    out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(files), batch_size):
        batch = []
        for path in files[start:start + batch_size]:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            batch.append(preprocess(rgb))  # INTER_AREA to 224, /255, ImageNet mean/std
        x = torch.stack(batch)
        maps = torch.from_numpy(cam(input_tensor=x, targets=None))
        kept.append(F.adaptive_avg_pool2d(maps[:, None], layer_size)[:, 0].half().numpy())
        if sum(len(k) for k in kept) >= 512 or start + batch_size >= len(files):
            part += 1
            np.savez(out / f"maps-{part:04d}.npz", maps=np.concatenate(kept))
            kept = []
    return time.perf_counter() - started


def runner(folder, model, layer_path, batch_size, workers, out: Path) -> tuple:
    started = time.perf_counter()
    summary = explain_dataset(folder, model, "gradcam", target_layers=[layer_path], out=out,
                              batch_size=batch_size, workers=workers, progress=False,
                              overwrite=True, preprocess=Preprocess(size=(224, 224)))
    return time.perf_counter() - started, summary


class MemorySampler(threading.Thread):
    """Resident memory (MB) of this process and its children, every 0.1 s."""

    def __init__(self):
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process()
        self.samples = []
        self.stopped = threading.Event()

    def rss(self) -> float:
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            with contextlib.suppress(Exception):  # a worker that just ended
                total += child.memory_info().rss
        return total / 2**20

    def run(self):
        while not self.stopped.is_set():
            self.samples.append((time.perf_counter(), self.rss(), self.process.memory_info().rss / 2**20))
            time.sleep(0.1)


class Cycling(torch.utils.data.Dataset):
    """``count`` items cycling through ``files``: every item is new to the store."""

    def __init__(self, files, count):
        self.files, self.count = [str(f) for f in files], count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return self.files[index % len(self.files)]


def memory_run(files, count, batch_size, workers, out: Path) -> list:
    model, _ = build("mobilenet_v3_small")
    sampler = MemorySampler()
    sampler.start()
    started = time.perf_counter()
    summary = explain_dataset(Cycling(files, count), model, "gradcam",
                              target_layers=["features[-1]"], out=out, batch_size=batch_size,
                              workers=workers, progress=False, overwrite=True, shard_size=256)
    finished = time.perf_counter()
    sampler.stopped.set()
    sampler.join()
    rows = []
    samples = [s for s in sampler.samples if s[0] >= started]
    for fraction in (0.1, 0.25, 0.5, 0.75, 1.0):
        moment = started + fraction * (finished - started)
        nearest = min(samples, key=lambda s: abs(s[0] - moment))
        rows.append((fraction, nearest[1], nearest[2]))
    return rows, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 images, one run each")
    parser.add_argument("--images", type=int, default=None, help="default 256 (--quick: 32)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", nargs="+", default=["default"],
                        help="DataLoader workers of the runner, one row each: numbers or "
                             "'default' (the runner's own choice); default: default")
    parser.add_argument("--runs", type=int, default=None, help="runs per side (default 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads of both sides (default: torch's own)")
    parser.add_argument("--memory-images", type=int, default=None,
                        help="items of the memory run (default 2048; --quick: 128; 0: none)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    count = args.images or (32 if args.quick else 256)
    runs = args.runs or (1 if args.quick else 2)
    memory_images = args.memory_images if args.memory_images is not None else (
        128 if args.quick else 2048)
    root = Path(tempfile.mkdtemp(prefix="dataset-bench-"))
    try:
        files = make_folder(root / "photos", count)
        print(f"# dataset benchmark: {count} JPEGs ({min(SIZES)[0]}x{min(SIZES)[1]} to "
              f"{max(SIZES)[0]}x{max(SIZES)[1]}), GradCAM, batch {args.batch_size}, CPU "
              f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads), {runs} run(s) a side")
        settings = [None if w == "default" else int(w) for w in args.workers]
        print(f"{'model':<20} {'loop img/s':>10} {'runner img/s':>12} {'runner/loop':>11} "
              f"{'workers':>7}  runs (s): loop | runner")
        for name in args.models:
            model, layer = build(name)
            size = layer_resolution(model, layer)
            plain_loop(files[:args.batch_size], model, layer, args.batch_size, root / "warm", size)
            loop_times: list = []
            runner_times: dict = {setting: [] for setting in settings}
            used: dict = {}
            for run in range(runs):  # the sides alternate, so that a slow spell hits both
                loop_times.append(plain_loop(files, model, layer, args.batch_size,
                                             root / f"loop-{name}-{run}", size))
                for setting in settings:
                    seconds, summary = runner(root / "photos", model, MODELS[name],
                                              args.batch_size, setting, root / f"store-{name}")
                    assert summary.status_counts == {"ok": count}, summary.status_counts
                    runner_times[setting].append(seconds)
                    used[setting] = summary.workers
            loop = min(loop_times)
            for setting in settings:
                best = min(runner_times[setting])
                label = f"{used[setting]}" + (" (default)" if setting is None else "")
                print(f"{name:<20} {count / loop:>10.1f} {count / best:>12.1f} "
                      f"{best / loop:>10.2f}x {label:>7}  "
                      f"{' '.join(f'{t:.1f}' for t in loop_times)} | "
                      f"{' '.join(f'{t:.1f}' for t in runner_times[setting])}", flush=True)
        if memory_images:
            rows, summary = memory_run(files, memory_images, args.batch_size, settings[0],
                                       root / "memory")
            print(f"\n# memory: runner, mobilenet_v3_small, {memory_images} items "
                  f"({summary.images_per_second:.1f} img/s, {summary.workers} worker(s)), "
                  "resident MB")
            print(f"{'progress':>8} {'process + workers':>17} {'main process':>12}")
            for fraction, total, main_rss in rows:
                print(f"{fraction:>8.0%} {total:>17.0f} {main_rss:>12.0f}")
            store_mb = sum(p.stat().st_size for p in (root / "memory").rglob("*") if p.is_file())
            print(f"store: {store_mb / 2**20:.1f} MB for {memory_images} items "
                  f"({store_mb / memory_images:.0f} bytes an item)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
