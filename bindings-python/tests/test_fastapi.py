"""The FastAPI demos (examples/fastapi) as their users run them: each a
process under ``tidings run``, read with httpx-sse, and the same app under
uvicorn for comparison; ChannelResponse under both; the livescore page in
Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Iterator

import httpx
import httpx_sse
import pytest

from helpers import PATIENCE, ROOT, Demo, client, events, first_events, serving

FASTAPI_EXAMPLES = ROOT / "examples" / "fastapi"
FAST = {"DEMO_DELAY": "0.01", "DEMO_INTERVAL": "0.05", "DEMO_MIN_DELAY": "0", "DEMO_MAX_DELAY": "0.002"}


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, **FAST, **extra}


@contextlib.contextmanager
def tidings_run(target: str, *args: str, **env: str) -> Iterator[Demo]:
    """``tidings run TARGET`` on a free port, from the examples' directory."""
    command = [sys.executable, "-m", "tidings", "run", target, "--app-dir", str(FASTAPI_EXAMPLES), "--port", "0", *args]
    with serving(command, env=environment(**env)) as running:
        yield running


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def uvicorn_run(target: str, **env: str) -> Iterator[str]:
    """The same app under uvicorn, for comparison and for the fallbacks."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", target, "--app-dir", str(FASTAPI_EXAMPLES), "--port", str(port)],
        env=environment(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + PATIENCE
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(PATIENCE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def sse_headers(url: str, **headers: str) -> httpx.Headers:
    with client() as http, http.stream("GET", url, headers=headers) as response:
        return response.headers


def counter_contract(received: list[httpx_sse.ServerSentEvent]) -> None:
    assert [(e.event, e.data, e.id, e.retry) for e in received] == [
        ("new_message", f"Counter value {n}", "message_id", 15000) for n in range(1, 21)
    ] + [("end_event", "End of the stream", "message_id", 15000)]


def test_counter_with_sse_starlette_runs_unchanged() -> None:
    with tidings_run("counter:app") as running:
        counter_contract(events(f"{running.url}/stream"))
        headers = sse_headers(f"{running.url}/stream", origin="http://elsewhere.example")
        with client() as http:
            page = http.get(f"{running.url}/")
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["access-control-allow-origin"] == "*"
    assert page.status_code == 200 and "EventSource" in page.text
    with uvicorn_run("counter:app") as url:
        counter_contract(events(f"{url}/stream"))
        reference = sse_headers(f"{url}/stream", origin="http://elsewhere.example")
    for name in ("content-type", "cache-control", "access-control-allow-origin", "x-accel-buffering"):
        assert headers.get(name) == reference.get(name), name


def test_numbers_with_starlette_streams_one_to_five_on_both_paths() -> None:
    with tidings_run("numbers_app:app") as running:
        for path in ("/", "/numbers"):
            received = events(f"{running.url}{path}")
            assert [(e.event, e.data) for e in received] == [("message", str(n)) for n in range(1, 6)]


def test_progress_renders_sessions_streams_and_refuses_bad_ids() -> None:
    with tidings_run("progress:app") as running, client() as http:
        pages = [http.get(f"{running.url}/").text for _ in range(2)]
        assert '<span id="session">1</span>' in pages[0]
        assert '<span id="session">2</span>' in pages[1]
        received = events(f"{running.url}/progress?session_id=7")
        assert [json.loads(e.data)["progress"] for e in received] == list(range(100))
        assert {(e.event, e.id) for e in received} == {("progress", "7")}
        for bad in ("", "?session_id=x"):
            refused = http.get(f"{running.url}/progress{bad}")
            assert refused.status_code == 400
            assert "session_id must be an integer" in refused.text


def resume_contract(url: str) -> None:
    """Three live updates, then a reconnect with the first id: the two
    after it come from history, in order, with nothing missing."""
    first = first_events(f"{url}/livescore", 3)
    resumed = first_events(f"{url}/livescore", 2, **{"last-event-id": first[0].id})
    assert [e.data for e in resumed] == [e.data for e in first[1:]]
    for event in first:
        update = json.loads(event.data)
        assert event.event == ("goal" if update["event"]["type"] == "goal" else "message")


def test_livescore_with_streaming_response_broadcasts_and_resumes() -> None:
    with tidings_run("livescore:app") as running:
        resume_contract(running.url)


def test_livescore_with_channel_response_is_served_by_the_engine() -> None:
    with tidings_run("livescore_channel:app") as running:
        resume_contract(running.url)
        headers = sse_headers(f"{running.url}/livescore", origin="http://elsewhere.example")
    assert headers["content-type"] == "text/event-stream; charset=utf-8"
    assert headers["access-control-allow-origin"] == "*"  # the app's CORSMiddleware
    assert headers["cache-control"] == "no-cache"


def test_channel_response_runs_after_the_dependency_that_guards_it() -> None:
    with tidings_run("livescore_channel:app", DEMO_TOKEN="s3cret") as running, client() as http:
        refused = http.get(f"{running.url}/livescore")
        assert refused.status_code == 401
        assert refused.json() == {"detail": "a valid token is required"}
        # The channel has no route of its own: its name is no way around the check.
        assert http.get(f"{running.url}/internal/livescore").status_code == 404
        allowed = first_events(f"{running.url}/livescore?token=s3cret", 1)
        assert json.loads(allowed[0].data)["teams"]["home"] == "Riverside Rovers"


def test_channel_response_falls_back_to_streaming_from_python_under_uvicorn() -> None:
    with uvicorn_run("livescore_channel:app") as url:
        resume_contract(url)
        unknown = first_events(f"{url}/livescore", 2, **{"last-event-id": "not-an-id"})
        assert unknown[0].event == "reset"


def test_the_livescore_page_runs_in_chromium_under_tidings_run(browser) -> None:
    with tidings_run("livescore_channel:app") as running:
        page = browser.new_page()
        page.goto(running.url + "/")
        page.wait_for_function("document.querySelector('#connection').dataset.state === 'live'")
        page.wait_for_function("Number(document.querySelector('#updates').textContent) >= 5")
        assert page.locator("#home-name").text_content() == "Riverside Rovers"
        page.close()


# tidings run itself ------------------------------------------------------------


def run_to_exit(*args: str, timeout: float = PATIENCE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings", "run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(),
        cwd=ROOT,
    )


def test_a_target_that_does_not_exist_exits_1_with_a_clear_message() -> None:
    missing = run_to_exit("no_such_module:app", "--port", "0")
    assert missing.returncode == 1
    assert "could not import module 'no_such_module'" in missing.stderr
    wrong = run_to_exit("counter:nothing", "--app-dir", str(FASTAPI_EXAMPLES), "--port", "0")
    assert wrong.returncode == 1
    assert "has no attribute 'nothing'" in wrong.stderr
    shape = run_to_exit("counter", "--port", "0")
    assert shape.returncode == 1 and "module:attribute" in shape.stderr


@pytest.fixture
def app_dir(tmp_path: os.PathLike[str]) -> os.PathLike[str]:
    (tmp_path / "apps.py").write_text(  # type: ignore[operator]
        '''
import contextlib
import os
from fastapi import FastAPI, Request

def create():
    app = FastAPI()

    @app.get("/pid")
    async def pid():
        return {"pid": os.getpid()}

    @app.get("/where")
    async def where(request: Request):
        return {"root_path": request.scope["root_path"], "path": request.url.path}

    return app

@contextlib.asynccontextmanager
async def broken(app):
    raise RuntimeError("the database is down")
    yield

failing = FastAPI(lifespan=broken)
'''
    )
    return tmp_path


def test_factory_and_root_path(app_dir: os.PathLike[str]) -> None:
    command = [sys.executable, "-m", "tidings", "run", "apps:create", "--factory", "--root-path", "/api"]
    command += ["--app-dir", str(app_dir), "--port", "0"]
    with serving(command, env=environment()) as running, client() as http:
        answer = http.get(f"{running.url}/where").json()
    assert answer == {"root_path": "/api", "path": "/api/where"}


def test_each_response_is_logged_as_uvicorn_does_unless_turned_off(app_dir: os.PathLike[str]) -> None:
    command = [sys.executable, "-m", "tidings", "run", "apps:create", "--factory"]
    command += ["--app-dir", str(app_dir), "--port", "0"]
    with serving(command, env=environment()) as running, client() as http:
        assert http.get(f"{running.url}/pid?x=1").status_code == 200
        assert http.get(f"{running.url}/missing").status_code == 404
        deadline = time.monotonic() + PATIENCE
        while '"GET /missing HTTP/1.1" 404' not in running.log() and time.monotonic() < deadline:
            time.sleep(0.01)
        log = running.log()
    assert re.search(r'INFO:\s+tidings\.access: 127\.0\.0\.1:\d+ - "GET /pid\?x=1 HTTP/1\.1" 200', log), log
    assert '"GET /missing HTTP/1.1" 404' in log
    with serving([*command, "--no-access-log"], env=environment()) as running, client() as http:
        assert http.get(f"{running.url}/pid").status_code == 200
    assert "tidings.access" not in running.log()


def test_workers_share_one_port_and_stop_together_on_ctrl_c(app_dir: os.PathLike[str]) -> None:
    command = [sys.executable, "-m", "tidings", "run", "apps:create", "--factory", "--workers", "2"]
    command += ["--app-dir", str(app_dir), "--port", "0"]
    workers: set[int] = set()
    with serving(command, env=environment()) as running:
        # The kernel spreads fresh connections among the workers listening;
        # the second may still be starting when the first says it is open.
        deadline = time.monotonic() + PATIENCE
        while len(workers) < 2 and time.monotonic() < deadline:
            with client() as http:
                workers.add(http.get(f"{running.url}/pid").json()["pid"])
            time.sleep(0.01)
        assert len(workers) == 2 and running.process.pid not in workers
    # `serving` saw the supervisor exit 0 after Ctrl-C; its workers are gone.
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_bad_worker_counts_and_workers_with_reload_are_refused() -> None:
    zero = run_to_exit("apps:create", "--workers", "0")
    assert zero.returncode == 2 and "must be at least 1" in zero.stderr
    both = run_to_exit("apps:create", "--workers", "2", "--reload")
    assert both.returncode == 1 and "--reload and --workers cannot be combined" in both.stderr


def test_a_failing_startup_exits_3_with_the_apps_error(app_dir: os.PathLike[str]) -> None:
    failed = run_to_exit("apps:failing", "--app-dir", str(app_dir), "--port", "0")
    assert failed.returncode == 3, failed.stderr
    assert "the database is down" in failed.stderr
    assert "open http" not in failed.stdout
    # With workers, the first that fails stops the others, with its status.
    workers = run_to_exit("apps:failing", "--app-dir", str(app_dir), "--port", "0", "--workers", "2")
    assert workers.returncode == 3, workers.stderr
    assert "the database is down" in workers.stderr


def test_reload_restarts_the_app_when_its_file_changes(tmp_path: os.PathLike[str]) -> None:
    source = tmp_path / "live.py"  # type: ignore[operator]
    source.write_text('from starlette.responses import PlainTextResponse\napp = PlainTextResponse("one")\n')
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tidings", "run", "live:app", "--reload", "--app-dir", str(tmp_path), "--port", str(port)],
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def body() -> str | None:
        try:
            with httpx.Client(trust_env=False, timeout=1) as http:
                return http.get(f"http://127.0.0.1:{port}/").text
        except httpx.HTTPError:
            return None

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 2 * PATIENCE
        while body() != text:
            assert time.monotonic() < deadline, f"never served {text!r}"
            time.sleep(0.1)

    try:
        wait_for("one")
        source.write_text('from starlette.responses import PlainTextResponse\napp = PlainTextResponse("two")\n')
        wait_for("two")
    finally:
        os.killpg(process.pid, signal.SIGINT)  # the watcher and the server it runs
        try:
            process.wait(PATIENCE)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
