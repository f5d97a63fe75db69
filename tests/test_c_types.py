"""The header as a type contract: it and every C program compile clean, with
-Werror, as C11 and as C++20."""

from __future__ import annotations

from pathlib import Path

import pytest

from cabi import CXX_FLAGS, build
from helpers import ROOT


@pytest.mark.parametrize("source", ["examples/c/counter.c", "examples/c/livescore.c", "tests/c/abi_errors.c",
                                    "tests/c/threaded_publish.c", "tests/c/events.c",
                                    "tests/c/slow_reader.c"])
def test_the_header_and_programs_compile_clean_as_c_and_cpp(source: str, tmp_path: Path) -> None:
    build(ROOT / source, tmp_path / "as-c")
    build(ROOT / source, tmp_path / "as-cpp", CXX_FLAGS)
