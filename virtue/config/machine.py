"""What this machine offers, as the `auto` settings (model.dtype, train.compile) read it when a config is loaded."""

import os
import shutil


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def cpu_has_amx() -> bool:
    """Intel AMX tiles (Sapphire Rapids and later): oneDNN's bfloat16 matmuls run on them, far faster than
    float32; without them bfloat16 is emulated with AVX-512 and slower than float32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return any(line.startswith("flags") and " amx_bf16" in line for line in f)
    except OSError:
        return False


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on CPU ($CXX, else the first of c++, g++, clang++ on PATH)."""
    cxx = os.environ.get("CXX")
    if cxx:
        return shutil.which(cxx)
    return next((p for p in map(shutil.which, ("c++", "g++", "clang++")) if p), None)
