"""Benchmarks: epoch time against torchvision (and FFCV) on the SSL augmentation ladder."""
