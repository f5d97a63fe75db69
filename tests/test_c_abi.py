"""The C ABI from C: programs compiled with gcc (C11) and g++ (C++20) against
include/tidings.h and libtidings, checked on the wire with httpx-sse, under
AddressSanitizer + UBSan and under valgrind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx_sse
import pytest

from helpers import ROOT, assert_replays_the_match, client, events, first_events, serving

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


@pytest.mark.parametrize("source", ["examples/c/counter.c", "examples/c/livescore.c", "tests/c/abi_errors.c",
                                    "tests/c/threaded_publish.c"])
def test_the_header_and_programs_compile_clean_as_c_and_cpp(source: str, tmp_path: Path) -> None:
    build(ROOT / source, tmp_path / "as-c")
    build(ROOT / source, tmp_path / "as-cpp", CXX_FLAGS)


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


def valgrind() -> list[str]:
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is missing: install Debian's valgrind (bash .ci/run does)")
    return ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=1", "--quiet"]


def test_error_paths_under_valgrind(tmp_path: Path) -> None:
    binary = build(ROOT / "tests/c/abi_errors.c", tmp_path / "abi_errors")
    run_error_tests([*valgrind(), str(binary)])


def test_counter_in_c_sends_the_exact_sequence_and_survives_leaving_clients(tmp_path: Path) -> None:
    binary = build(EXAMPLES / "c/counter.c", tmp_path / "counter")
    # Under valgrind: clients that leave mid-stream must not leak or corrupt anything.
    command = [*valgrind(), str(binary), "--port", "0", "--delay", "0.002", "--examples", str(EXAMPLES)]
    with serving(command, stop_timeout=60) as running:
        with client() as http, httpx_sse.connect_sse(http, "GET", f"{running.url}/stream") as source:
            assert source.response.headers["access-control-allow-origin"] == "*"
            for n, _event in enumerate(source.iter_sse(), start=1):
                if n == 3:
                    break  # leave early
        got = [(e.event, e.id, e.retry, e.data) for e in events(f"{running.url}/stream")]
        expected = [("new_message", "message_id", 15000, f"Counter value {n}") for n in range(1, 21)]
        expected.append(("end_event", "message_id", 15000, "End of the stream"))
        assert got == expected
        with client() as http:
            assert "EventSource" in http.get(f"{running.url}/").text


def test_livescore_in_c_broadcasts_the_match_in_order(tmp_path: Path) -> None:
    binary = build(EXAMPLES / "c/livescore.c", tmp_path / "livescore")
    with serving([str(binary), "--port", "0", "--interval", "0.01", "--examples", str(EXAMPLES)]) as running:
        received = first_events(f"{running.url}/livescore", 40)
    assert_replays_the_match(received)
    assert all("\n" not in event.data for event in received), "updates are sent as compact one-line JSON"


def test_four_c_threads_publishing_lose_nothing(tmp_path: Path) -> None:
    readers = 20
    binary = build(ROOT / "tests/c/threaded_publish.c", tmp_path / "threaded")
    import concurrent.futures

    with serving([str(binary), str(readers)]) as running:
        def read_all() -> list[str]:
            with client() as http, httpx_sse.connect_sse(http, "GET", f"{running.url}/c") as source:
                data = []
                for event in source.iter_sse():
                    data.append(event.data)
                    if len(data) == 4 * 2500:
                        return data
            return data

        with concurrent.futures.ThreadPoolExecutor(readers) as pool:
            results = list(pool.map(lambda _: read_all(), range(readers)))
    for data in results:
        assert len(data) == 10_000
        last = [-1] * 4
        for item in data:
            thread, n = map(int, item.split(":"))
            assert n == last[thread] + 1
            last[thread] = n


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
