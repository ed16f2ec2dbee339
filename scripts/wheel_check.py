"""Build Cadence's wheel, install it into a fresh virtual environment outside the checkout, and
run it from an empty directory as a new user would: `cadence init`, then a short
`cadence demo`, checking that its pages answer 200 and that deliveries were sent.

    python scripts/wheel_check.py [--duration 60] [--reuse-dependencies] [--keep]

`--reuse-dependencies` installs only the wheel and lets the new environment see the running
interpreter's third-party packages (never its Cadence), so the check needs no downloads; the
default installs the wheel with all its dependencies from the package index. Exit 0 when
everything worked, 1 with the reason otherwise.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Files the wheel must carry besides the Python modules: what Cadence opens at run time.
DATA_DIRS = {
    "templates": "cadence/templates",
    "cadence/samples": "cadence/samples",
    "cadence/store/migrations": "cadence/store/migrations",
}


class CheckFailed(Exception):
    pass


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise CheckFailed(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result  # type: ignore[no-any-return]


def build_wheel(out: Path) -> Path:
    run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)])
    wheels = sorted(out.glob("cadence-*.whl"))
    if len(wheels) != 1:
        raise CheckFailed(f"expected one wheel in {out}, found {wheels}")
    return wheels[0]


def missing_from_wheel(wheel: Path) -> list[str]:
    """Every data file of the checkout that the wheel lacks."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = []
    for source, target in DATA_DIRS.items():
        for path in sorted((ROOT / source).rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts:
                continue
            name = f"{target}/{path.relative_to(ROOT / source).as_posix()}"
            if name not in names:
                missing.append(name)
    return missing


def make_environment(venv: Path, wheel: Path, reuse_dependencies: bool) -> Path:
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if reuse_dependencies:
        # A plain path line: the new environment imports this interpreter's dependencies, but
        # that folder's own .pth files (an editable Cadence among them) are not run.
        site = run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).stdout.strip()
        Path(site, "cadence-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        run([*pip, "--no-deps", str(wheel)])
    else:
        run([*pip, str(wheel)])
    return venv / "bin" / "cadence"


def clean_env(workdir: Path, venv: Path) -> dict[str, str]:
    """The environment of a fresh shell: no CADENCE_* settings, the new venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CADENCE_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    env["HOME"] = str(workdir)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(opener: urllib.request.OpenerDirector, url: str, data: bytes | None = None) -> str:
    request = urllib.request.Request(url, data=data)
    if data is not None:
        request.add_header("Origin", url.split("/", 3)[0] + "//" + url.split("/", 3)[2])
    try:
        with opener.open(request, timeout=10) as response:
            if response.status != 200:
                raise CheckFailed(f"{url} answered {response.status}")
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        raise CheckFailed(f"{url} answered {exc.code}: {exc.read()[:300]!r}") from None


def wait_for(url: str, deadline: float, demo: subprocess.Popen[str]) -> None:
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            raise CheckFailed(f"cadence demo exited {demo.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise CheckFailed(f"{url} did not answer within the demo's start-up")


def check_pages(base: str, email: str, password: str) -> list[str]:
    """Visit the pages a new user opens; return what was checked."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    checked = []
    health = get(opener, f"{base}/health")
    if '"ok"' not in health:
        raise CheckFailed(f"/health does not say ok: {health}")
    checked.append("/health")
    inbox = get(opener, f"{base}/inbox")
    people = re.findall(r'href="(/inbox/[^"?#]+)"', inbox)
    if not people:
        raise CheckFailed("/inbox lists nobody")
    get(opener, base + people[0])
    checked += ["/inbox", people[0]]
    form = get(opener, f"{base}/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    if csrf is None:
        raise CheckFailed("/login has no form token")
    fields = {"email": email, "password": password, "csrf": csrf[1], "next": "/dashboard"}
    dashboard = get(opener, f"{base}/login", urllib.parse.urlencode(fields).encode())
    if "Sign in" in dashboard and "Sign out" not in dashboard:
        raise CheckFailed("signing in to the dashboard did not work")
    checked += ["/login", "/dashboard"]
    return checked


def check_demo(cadence: Path, workdir: Path, venv: Path, duration: int) -> str:
    env = clean_env(workdir, venv)
    where = run(
        [str(venv / "bin" / "python"), "-c", "import cadence.templates as t; print(t.__file__)"],
        cwd=workdir,
        env=env,
    ).stdout.strip()
    if not where.startswith(str(venv)):
        raise CheckFailed(f"cadence.templates comes from {where}, not the installed wheel")
    run([str(cadence), "init"], cwd=workdir, env=env)
    # A comms user of our own: the demo prints its password into a feed we read only later.
    password = "wheel-check-" + os.urandom(8).hex()
    user = [str(cadence), "user", "add", "check@example.com", "--role", "comms"]
    run([*user, "--password-stdin"], cwd=workdir, env=env, input=password + "\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = workdir.parent / "demo.log"
    with log_path.open("w") as log:
        demo = subprocess.Popen(
            [str(cadence), "demo", "--duration", str(duration), "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for(f"{base}/health", time.monotonic() + 40, demo)
            # The demo's first message goes out a few seconds after start-up.
            time.sleep(min(15, duration / 3))
            checked = check_pages(base, "check@example.com", password)
            demo.wait(timeout=duration + 60)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
    output = log_path.read_text()
    if demo.returncode != 0:
        raise CheckFailed(f"cadence demo exited {demo.returncode}\n{output}")
    for bad in ("Traceback", "TemplateNotFound"):
        if bad in output:
            raise CheckFailed(f"cadence demo printed {bad}\n{output}")
    sent = re.search(r"stopped; (\d+) deliveries sent", output)
    if sent is None or int(sent[1]) == 0:
        raise CheckFailed(f"cadence demo sent nothing\n{output}")
    return f"pages {', '.join(checked)} answered 200; {sent[1]} deliveries sent"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds the demo runs")
    parser.add_argument("--reuse-dependencies", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cadence-wheel-"))
    try:
        wheel = build_wheel(scratch / "dist")
        missing = missing_from_wheel(wheel)
        if missing:
            raise CheckFailed("the wheel lacks: " + ", ".join(missing))
        venv = scratch / "venv"
        cadence = make_environment(venv, wheel, options.reuse_dependencies)
        workdir = scratch / "empty"
        workdir.mkdir()
        print(f"{wheel.name}: {check_demo(cadence, workdir, venv, options.duration)}")
        return 0
    except CheckFailed as failure:
        print(f"wheel check failed: {failure}", file=sys.stderr)
        return 1
    finally:
        if options.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
