"""Building C programs against include/tidings.h and libtidings for the C
tests (`test_c_*.py`): gcc (C11) or g++ (C++20), optionally under
AddressSanitizer + UBSan, and valgrind to run them under."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import ROOT

LIBDIR = ROOT / "target" / "debug"
INCLUDE = ROOT / "include"
EXAMPLES = ROOT / "examples"
C_FLAGS = ["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror"]
CXX_FLAGS = ["g++", "-std=c++20", "-x", "c++", "-Wall", "-Werror"]
SANITIZERS = ["-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]


def build(source: Path, output: Path, compiler: list[str] = C_FLAGS, extra: list[str] = ()) -> Path:
    if not (LIBDIR / "libtidings.so").exists():
        pytest.fail("target/debug/libtidings.so is missing: `cargo build -p tidings-ffi` (make test-c does)")
    soname_link = LIBDIR / "libtidings.so.0"  # what linked programs load (the SONAME)
    if not soname_link.exists():
        soname_link.symlink_to("libtidings.so")
    command = [*compiler, *extra, f"-I{INCLUDE}", str(source), f"-L{LIBDIR}", "-ltidings", "-lpthread",
               f"-Wl,-rpath,{LIBDIR}", "-o", str(output)]
    subprocess.run(command, check=True)
    return output


def valgrind() -> list[str]:
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is missing: install Debian's valgrind (bash .ci/run does)")
    return ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=1", "--quiet"]
