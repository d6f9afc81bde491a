"""VIRTUE Lab: the VIRTUE visual-interactive text-image embedder and its reproducible experiments."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("virtue-lab")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
