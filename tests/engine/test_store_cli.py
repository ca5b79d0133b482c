"""The template store through the real CLI (subprocesses of ``.venv/bin/faceunlock``) with a
REAL Secret Service (gnome-keyring-daemon on a private D-Bus bus, from
test_keyring_secret_service.py): exit codes of bad templates and keyring failures, ``clear``
with a locked or missing keyring, two enrolments at once, temp files left by a save killed
with SIGKILL, and template files or folders that other accounts could write."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from faceunlock.config import config_set, save_config
from faceunlock.engine.modelfile import load_sidecar
from faceunlock.engine.pipeline import MODEL_FILES
from faceunlock.engine.templates import Anchor, Template, TemplateStore, encrypt_template
from faceunlock.errors import AuthStatus
from faceunlock.paths import models_dir, user_data_dir

secretstorage = pytest.importorskip("secretstorage")
keyring = pytest.importorskip("keyring")
from keyring.backends import SecretService  # noqa: E402
from test_keyring_secret_service import (  # noqa: E402
    SecretServiceEnv,
    _lookup,
    secret_service,
)

from tests.fakes.clip_material import FEMALE, clip_config, clip_frames, png_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FACEUNLOCK = REPO / ".venv" / "bin" / "faceunlock"
USER = "alice"
KEYRING_ERROR = 22  # AuthStatus.KEYRING_ERROR (spelt out: the tests also run against old code)
TEMP_SUFFIX = ".faceunlock-tmp"  # faceunlock.fileio.TEMP_SUFFIX


def _encoder_sha(precision: str) -> str:
    return str(load_sidecar(models_dir() / MODEL_FILES["encoder"][precision])["sha256"])


def _template(user: str = USER, sha: str | None = None) -> Template:
    rng = np.random.default_rng(3)
    t = Template(user=user, model_sha256=sha or _encoder_sha("int8"), threshold=0.5)
    for label in ("default", "glasses"):
        for _ in range(2):
            emb = rng.standard_normal(128).astype(np.float32)
            t.add_anchor(Anchor.new(emb / np.linalg.norm(emb) * 0.6,
                                    rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
                                    label=label))
    return t


def _lock_login_collection() -> None:
    conn = secretstorage.dbus_init()
    try:
        login = secretstorage.Collection(conn, "/org/freedesktop/secrets/collection/login")
        login.lock()
        assert login.is_locked()
    finally:
        conn.close()


def _key_item_exists(user: str) -> bool:
    """Whether the keyring holds an item for ``user`` (also when the collection is locked)."""
    conn = secretstorage.dbus_init()
    try:
        return bool(list(secretstorage.search_items(
            conn, {"service": "faceunlock", "username": user})))
    finally:
        conn.close()


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)  # the XDG dirs of conftest's isolation, DBUS_SESSION_BUS_ADDRESS
    env.update(
        USER=USER,
        PYTHON_KEYRING_BACKEND="keyring.backends.SecretService.Keyring",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FACEUNLOCK), *args], env=_env(**extra), capture_output=True,
                          text=True, timeout=300)


@pytest.fixture()
def ss() -> Iterator[SecretServiceEnv]:
    """A fresh unlocked gnome-keyring for one test (tests here lock or stop it)."""
    with secret_service() as env:
        previous = keyring.get_keyring()
        keyring.set_keyring(SecretService.Keyring())
        try:
            yield env
        finally:
            keyring.set_keyring(previous)


@pytest.fixture()
def store(ss: SecretServiceEnv) -> TemplateStore:
    """The CLI's own store ($XDG_DATA_HOME/faceunlock), keys in the real keyring."""
    return TemplateStore(user_data_dir())


def _saved(store: TemplateStore, t: Template | None = None) -> Path:
    return store.save(t or _template())


# ----------------------------------------------------------------------- exit codes (item 12)


def _flip(p: Path) -> None:
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 0x01
    p.write_bytes(bytes(b))


def test_broken_templates_exit_template_error(store: TemplateStore, tmp_path: Path) -> None:
    """Truncated, bit-flipped, empty, oversized and another user's template: exit 20 (was 1),
    with the file named; nothing is changed."""
    other = TemplateStore(tmp_path / "other")
    other.save(_template(user="bob"))
    cases = {
        "truncated": lambda p: p.write_bytes(p.read_bytes()[:100]),
        "bit-flipped": _flip,
        "empty": lambda p: p.write_bytes(b""),
        "oversized": lambda p: os.truncate(p, 65 << 20),
        "another user's": lambda p: p.write_bytes(other.path("bob").read_bytes()),
    }
    for what, damage in cases.items():
        p = _saved(store)
        store.backup_path(USER).unlink(missing_ok=True)
        damage(p)
        before = p.read_bytes()
        r = _cli("list")
        assert r.returncode == AuthStatus.TEMPLATE_ERROR, (what, r.returncode, r.stderr)
        assert str(p) in r.stderr and "Traceback" not in r.stderr, (what, r.stderr)
        assert p.read_bytes() == before, what
        p.unlink()


def test_template_of_other_model_says_so(store: TemplateStore, face_sample: list[Path],
                                         tmp_path: Path) -> None:
    """A template of the fp32 encoder used with the int8 one: exit 20 (was 11, "No face
    enrolled"), naming model.precision; one of no installed model: exit 20, re-enrol."""
    cfg_path = tmp_path / "config.toml"
    save_config(config_set(clip_config(), "model.precision", "int8"), cfg_path)
    src = tmp_path / "frames"  # an image-folder camera of the woman's committed faces
    src.mkdir()
    for p in face_sample[:3]:
        shutil.copy(p, src / p.name)
    _saved(store, _template(sha=_encoder_sha("fp32")))
    r = _cli("auth", "--source", str(src), "--timeout", "5", FACEUNLOCK_CONFIG=str(cfg_path))
    assert r.returncode == AuthStatus.TEMPLATE_ERROR, (r.returncode, r.stdout, r.stderr)
    assert "made with the fp32 face model" in r.stderr, r.stderr
    assert "faceunlock config set model.precision fp32" in r.stderr
    assert "enroll --replace" in r.stderr
    _saved(store, _template(sha="e" * 64))
    r = _cli("auth", "--source", str(src), "--timeout", "5", FACEUNLOCK_CONFIG=str(cfg_path))
    assert r.returncode == AuthStatus.TEMPLATE_ERROR, (r.returncode, r.stderr)
    assert "not one of those installed" in r.stderr and "enroll --replace" in r.stderr


def test_locked_keyring_exits_keyring_error(store: TemplateStore) -> None:
    p = _saved(store)
    _lock_login_collection()
    r = _cli("list")
    assert r.returncode == KEYRING_ERROR, (r.returncode, r.stderr)
    assert "keyring is locked" in r.stderr and "Traceback" not in r.stderr
    assert p.is_file()


def test_no_keyring_exits_keyring_error(tmp_path: Path) -> None:
    with secret_service(daemon=False):  # a bus, but no Secret Service on it
        d = user_data_dir()
        d.mkdir(parents=True, mode=0o700)
        # well framed (the keyring is asked only then), with a key the keyring never had
        (d / f"{USER}.tpl").write_bytes(encrypt_template(_template(), os.urandom(32)))
        os.chmod(d / f"{USER}.tpl", 0o600)
        r = _cli("list")
    assert r.returncode == KEYRING_ERROR, (r.returncode, r.stderr)
    assert "no usable keyring" in r.stderr


# ----------------------------------------------------------------------- clear (item 8)


def test_clear_with_locked_keyring_deletes_nothing(store: TemplateStore) -> None:
    """Before: the template and its backup were deleted, then exit 1 with the key left. Now:
    exit 22, every file kept, and the message says so."""
    _saved(store)
    p = _saved(store)
    files = {q: q.read_bytes() for q in (p, store.backup_path(USER))}
    _lock_login_collection()
    r = _cli("clear", "--yes")
    assert r.returncode == KEYRING_ERROR, (r.returncode, r.stderr)
    assert "nothing was deleted" in r.stderr and str(p) in r.stderr, r.stderr
    assert {q: q.read_bytes() for q in files} == files
    assert _key_item_exists(USER)


def test_clear_without_secret_service_deletes_nothing(tmp_path: Path) -> None:
    with secret_service() as env:
        previous = keyring.get_keyring()
        keyring.set_keyring(SecretService.Keyring())
        try:
            store = TemplateStore(user_data_dir())
            _saved(store)
            p = _saved(store)
        finally:
            keyring.set_keyring(previous)
        for proc in env.procs[1:]:  # stop gnome-keyring: the bus stays, the service goes
            proc.terminate()
            proc.wait(10)
        r = _cli("clear", "--yes")
    assert r.returncode == KEYRING_ERROR, (r.returncode, r.stderr)
    assert "nothing was deleted" in r.stderr
    assert p.is_file() and store.backup_path(USER).is_file()


def test_clear_removes_files_and_key(store: TemplateStore) -> None:
    _saved(store)
    p = _saved(store)
    r = _cli("clear", "--yes")
    assert r.returncode == 0, r.stderr
    assert str(p) in r.stdout and "key" in r.stdout
    assert not p.exists() and not store.backup_path(USER).exists()
    assert _lookup(USER) is None
    assert sorted(q.name for q in store.directory.iterdir()) == []


# ----------------------------------------------------------------------- concurrency (item 7)


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.mark.slow
def test_two_enrolments_at_once_keep_both(ss: SecretServiceEnv, clips_dir: Path,
                                          tmp_path: Path) -> None:
    """Two `faceunlock enroll` processes whose read-modify-write overlap for sure: the test
    holds the store's write lock while both capture (adding an appearance checks the owner
    live first, so both read the template, and its key, before their capture), so each blocks
    at its save, after the capture; both go on when the lock is released. Before the lock both
    had read the old template by then, and the second save dropped the first's appearance."""
    cfg_path = tmp_path / "config.toml"
    # a 30 s owner check: two enrolments and the keyring share a loaded machine, and the
    # default 3 s attempt can end before two frames matched (NO_MATCH, not what is tested)
    save_config(clip_config(**{"enrol.anchors": "3", "auth.timeout": "30"}), cfg_path)
    src = png_folder(tmp_path / "frames", clip_frames(clips_dir / FEMALE)[:40])
    cfg = {"FACEUNLOCK_CONFIG": str(cfg_path)}
    first = _cli("enroll", "--label", "base", "--source", str(src), **cfg)
    assert first.returncode == 0, first.stderr
    store = TemplateStore(user_data_dir())
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    with store.locked(USER):
        for label in ("A1", "B1"):
            out = tmp_path / f"{label}.out"
            with open(out, "wb") as f:
                procs.append((subprocess.Popen(
                    [str(FACEUNLOCK), "enroll", "--label", label, "--source", str(src)],
                    env=_env(**cfg), stdout=f, stderr=subprocess.STDOUT), out))
        # wait until both have captured and sit idle (blocked on the keyring or the lock)
        deadline = time.monotonic() + 240
        last: dict[int, int] = {}
        while True:
            assert time.monotonic() < deadline, [o.read_text() for _, o in procs]
            for p, out in procs:
                assert p.poll() is None, out.read_text()
            ticks = {p.pid: _cpu_ticks(p.pid) for p, _ in procs}
            captured = all("anchor 3/3 captured" in o.read_text() for _, o in procs)
            if captured and ticks == last:
                break
            last = ticks
            time.sleep(1.0)
    for p, out in procs:
        assert p.wait(120) == 0, out.read_text()
        assert "Enrolled 3 anchors" in out.read_text()
    r = _cli("list", "--json", **cfg)
    assert r.returncode == 0, r.stderr
    labels = [a["label"] for a in json.loads(r.stdout)["anchors"]]
    assert sorted(set(labels)) == ["A1", "B1", "base"], labels
    assert len(labels) == 9


# ----------------------------------------------------------------------- leftovers (item 14)

_KILLED_SAVE = """
import os, signal
import numpy as np
from faceunlock.engine.templates import Anchor, Template, TemplateStore, encrypt_template
rng = np.random.default_rng(5)
t = Template(user={user!r}, model_sha256={sha!r})
for _ in range(4):
    t.add_anchor(Anchor.new(rng.standard_normal(128).astype(np.float32) * 0.05,
                            np.zeros((64, 64, 3), np.uint8)))
store = TemplateStore()
store.save(t)  # a good one first
real_replace = os.replace
def die(src, dst):
    if str(dst).endswith(".tpl"):
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 between the temp file and the rename
    real_replace(src, dst)
os.replace = die
store.save(t)
"""


def _leftovers(d: Path) -> list[str]:
    return sorted(q.name for q in d.iterdir() if q.name.startswith(f".{USER}.tpl"))


def test_temp_files_of_a_killed_save_are_removed(store: TemplateStore) -> None:
    """A save killed with SIGKILL leaves its temp file, named .alice.tpl.*.faceunlock-tmp (was
    .alice.tpl.XXXXXXXX, never removed); the next load (`faceunlock list`) removes it, and
    so does the next save; the template itself is intact throughout."""
    code = _KILLED_SAVE.format(user=USER, sha=_encoder_sha("int8"))
    for then in ("list", "save"):
        r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == -signal.SIGKILL, r.stderr
        left = _leftovers(store.directory)
        assert len(left) >= 1 and all(n.endswith(TEMP_SUFFIX) for n in left), left
        if then == "list":
            r = _cli("list")
            assert r.returncode == 0, r.stderr
        else:
            store.save(store.load(USER))
        assert _leftovers(store.directory) == [], then
        assert len(store.load(USER).anchors) == 4


def test_legacy_temp_names_are_removed_when_old(store: TemplateStore) -> None:
    _saved(store)
    old = store.directory / f".{USER}.tpl.ab3_x9zq"  # what tempfile.mkstemp made before
    old.write_bytes(b"partial")
    young = store.directory / f".{USER}.tpl.cd4_y8wr"
    young.write_bytes(b"partial")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    _saved(store)
    assert not old.exists() and young.exists()


# ----------------------------------------------------------------------- modes (item 14)


def test_world_writable_template_or_folder_is_refused(store: TemplateStore) -> None:
    """A 0666 template or a 0777 template folder (someone else could have replaced the
    template): refused with exit 20 and the fix (was: used silently)."""
    p = _saved(store)
    os.chmod(p, 0o666)
    r = _cli("list")
    assert r.returncode == AuthStatus.TEMPLATE_ERROR, (r.returncode, r.stderr)
    assert "mode 0666" in r.stderr and "other users may write" in r.stderr
    os.chmod(p, 0o600)
    os.chmod(store.directory, 0o777)
    for args in (("list",), ("clear", "--yes")):
        r = _cli(*args)
        assert r.returncode == AuthStatus.TEMPLATE_ERROR, (args, r.returncode, r.stderr)
        assert "mode 0777" in r.stderr and f"chmod 700 {store.directory}" in r.stderr
    assert p.is_file()
    os.chmod(store.directory, 0o700)
    assert _cli("list").returncode == 0


def test_template_owned_by_another_uid_is_refused(store: TemplateStore) -> None:
    p = _saved(store)
    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    os.chown(p, 65534, 65534)
    r = _cli("list")
    assert r.returncode == AuthStatus.TEMPLATE_ERROR, (r.returncode, r.stderr)
    assert "owned by uid 65534" in r.stderr


def test_readable_template_warns(store: TemplateStore) -> None:
    p = _saved(store)
    os.chmod(p, 0o644)
    r = _cli("list")
    assert r.returncode == 0, r.stderr
    assert "readable by other users (mode 0644)" in r.stderr and f"chmod 600 {p}" in r.stderr
