"""Install fastssl_loader with pip alone: every dependency is a PyPI wheel (no compiler, no conda)."""
from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="fastssl_loader",
    version="0.1.0",
    description="High-throughput, decode-once multi-view data loading for self-supervised learning",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["fastssl_loader", "fastssl_loader.*", "converters", "benches"]),
    py_modules=["train_ref"],
    install_requires=[
        "numpy>=1.24",
        "numba>=0.59",
        "torch>=2.1,<3",
        "torchvision>=0.16",
        "opencv-python-headless>=4.8",
        "simplejpeg>=1.7",  # libjpeg-turbo binding shipped as wheels; releases the GIL, DCT-scaled decode
        "pillow>=9",
        "psutil>=5",
        "tqdm>=4.60",
    ],
    extras_require={
        "dev": ["pytest>=7", "scipy>=1.9", "matplotlib>=3.5",
                "turbojpeg==0.0.2; platform_system == 'Linux' and platform_machine == 'x86_64'"],
        "bench": ["matplotlib>=3.5"],
        "tensorboard": ["tensorboard>=2.10"],
        # region-limited JPEG decode (TurboJPEG 3 API of the bundled libturbojpeg; Linux x86_64 wheels)
        "turbo": ["turbojpeg==0.0.2"],
    },
)
