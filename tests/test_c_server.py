"""The C server's contract on misuse (tests/c/abi_errors.c: every bad
argument returns its documented status and message, plain, under ASan +
UBSan and under valgrind), and an installed library that pkg-config finds."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from cabi import EXAMPLES, SANITIZERS, build, valgrind
from helpers import ROOT, events, serving


def run_error_tests(command: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\d+ passed, 0 failed$", result.stdout, re.M), result.stdout
    return result.stdout + result.stderr


def test_error_paths_return_documented_statuses(tmp_path: Path) -> None:
    run_error_tests([str(build(ROOT / "tests/c/abi_errors.c", tmp_path / "abi_errors"))])


def test_error_paths_under_address_and_undefined_behaviour_sanitizers(tmp_path: Path) -> None:
    binary = build(ROOT / "tests/c/abi_errors.c", tmp_path / "abi_asan", extra=SANITIZERS)
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1", "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
    output = run_error_tests([str(binary)], env)
    assert "ERROR: AddressSanitizer" not in output and "runtime error" not in output


def test_error_paths_under_valgrind(tmp_path: Path) -> None:
    binary = build(ROOT / "tests/c/abi_errors.c", tmp_path / "abi_errors")
    run_error_tests([*valgrind(), str(binary)])


def test_make_install_gives_a_working_pkg_config_setup(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    subprocess.run(["make", "-s", "install", f"PREFIX={prefix}"], cwd=ROOT, check=True, timeout=900)
    assert (prefix / "include/tidings.h").exists()
    assert (prefix / "lib/libtidings.so").exists() and (prefix / "lib/libtidings.a").exists()
    # The versioned library, its SONAME link, and the link the linker finds.
    assert os.readlink(prefix / "lib/libtidings.so") == "libtidings.so.0"
    assert os.readlink(prefix / "lib/libtidings.so.0").startswith("libtidings.so.0.")
    dynamic = subprocess.run(["readelf", "-d", str(prefix / "lib/libtidings.so")], check=True,
                             capture_output=True, text=True).stdout
    assert "Library soname: [libtidings.so.0]" in dynamic, dynamic
    env = {**os.environ, "PKG_CONFIG_PATH": str(prefix / "lib/pkgconfig")}
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "tidings"], env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    binary = tmp_path / "counter"
    subprocess.run(["cc", str(EXAMPLES / "c/counter.c"), *flags, "-lpthread", "-o", str(binary)], check=True)
    run_env = {**os.environ, "LD_LIBRARY_PATH": str(prefix / "lib")}
    command = [str(binary), "--port", "0", "--delay", "0", "--examples", str(EXAMPLES)]
    needed = subprocess.run(["readelf", "-d", str(binary)], check=True, capture_output=True, text=True).stdout
    assert "Shared library: [libtidings.so.0]" in needed, needed
    with serving(command, env=run_env) as running:
        assert len(events(f"{running.url}/stream")) == 21
