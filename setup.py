"""Install fastssl_loader with pip alone: every dependency is a PyPI wheel (no compiler, no conda).

Only the library (``fastssl_loader``) is packaged; ``benches/``, ``converters/`` (a shim of ``fastssl
convert``) and ``train_ref.py`` are checkout-only tools whose own dependencies are extras.
"""
from pathlib import Path

from setuptools import find_packages, setup

TORCHVISION = "torchvision>=0.16"
YAML = "pyyaml>=6"
PSUTIL = "psutil>=5"
MATPLOTLIB = "matplotlib>=3.5"
TURBOJPEG = "turbojpeg==0.0.2"

setup(
    name="fastssl_loader",
    version="0.1.0",
    description="High-throughput, decode-once multi-view data loading for self-supervised learning",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["fastssl_loader", "fastssl_loader.*"]),
    entry_points={"console_scripts": ["fastssl = fastssl_loader.cli:main"]},
    # what `import fastssl_loader` and its modules import, nothing else
    install_requires=[
        "numpy>=1.24",
        "numba>=0.59",
        "llvmlite>=0.42",  # numba's own dependency; ops/simd.py builds vector IR with it directly
        "torch>=2.1,<3",
        "opencv-python-headless>=4.8",  # area downscale (max_resolution)
        "simplejpeg>=1.7",  # libjpeg-turbo binding shipped as wheels; releases the GIL, DCT-scaled decode
        "pillow>=9",  # source images of any format at conversion
        "tqdm>=4.60",  # conversion progress bar
    ],
    extras_require={
        "train": [TORCHVISION, YAML],  # train_ref.py (torchvision models/baseline, --config x.yaml)
        "bench": [TORCHVISION, MATPLOTLIB, PSUTIL],  # python -m benches
        "tensorboard": ["tensorboard>=2.10"],  # train_ref.py --tensorboard
        "hf": ["pyarrow>=12"],  # Hugging Face datasets source (save_to_disk folders, Parquet)
        "preview": [MATPLOTLIB],  # fastssl preview
        "lightning": ["lightning>=2.0"],  # fastssl_loader.lightning (pytorch-lightning>=2.0 works too)
        "lightly": ["lightly>=1.5"],  # examples/lightly_simclr.py; batch_format(..., "lightly") needs nothing
        # region-limited JPEG decode (TurboJPEG 3 API of the bundled libturbojpeg; Linux x86_64 wheels)
        "turbo": [TURBOJPEG],
        # the test suite: every test dependency, including the trainer's, the benches' and the integrations'
        # (tested against the real libraries), and what its wheel test builds with (build + setuptools)
        "dev": ["pytest>=7", "scipy>=1.9", TORCHVISION, MATPLOTLIB, PSUTIL, YAML, "build>=1", "setuptools>=70.1",
                "lightning>=2.0", "lightly>=1.5", "pyarrow>=12", "datasets>=2.14",
                f"{TURBOJPEG}; platform_system == 'Linux' and platform_machine == 'x86_64'"],
    },
)
