"""The template key in a REAL Secret Service: gnome-keyring-daemon on a private D-Bus bus.

Nothing is mocked: a private ``dbus-daemon`` (no service activation, so nothing else gets
started and no prompt can reach a real desktop) and ``gnome-keyring-daemon --unlock`` fed a
password on stdin, which creates and unlocks a ``login`` collection under a temp
``XDG_DATA_HOME``. Without ``--unlock`` gnome-keyring has no collection and creating one needs
an interactive prompt, which is dismissed here (that case is tested too).

Debian packages: ``dbus gnome-keyring`` (``libsecret-tools`` optional, for ``secret-tool``).
Skipped when the binaries are missing.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from faceunlock.engine.templates import (
    KEYRING_SERVICE,
    Anchor,
    KeyringKeyProvider,
    Template,
    TemplateStore,
)
from faceunlock.errors import KeyringUnavailableError, TemplateKeyError

secretstorage = pytest.importorskip("secretstorage")
keyring = pytest.importorskip("keyring")
from keyring.backends import SecretService, fail  # noqa: E402

from tests.fakes import fake_screensaver as fs  # noqa: E402

PASSWORD = "faceunlock-test-password"
BINARIES = ("dbus-daemon", "gnome-keyring-daemon")



@dataclass
class SecretServiceEnv:
    root: Path
    address: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def keyrings_dir(self) -> Path:
        return self.root / "data" / "keyrings"

    def log(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}" for p in self.root.rglob("*.log")
        )


def _require_binaries() -> None:
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed (Debian: apt-get install dbus gnome-keyring)"
        )


def _wait_for(
    cond: Callable[[], bool], what: str, env: SecretServiceEnv, timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        for p in env.procs:
            if p.poll() is not None:
                pytest.fail(
                    f"{p.args!r} exited with {p.returncode} while waiting for {what}\n{env.log()}"
                )
        try:
            if cond():
                return
        except Exception as e:  # the service may not be ready yet
            last = e
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what} (last error: {last})\n{env.log()}")


def _service_up() -> bool:
    conn = secretstorage.dbus_init()
    try:
        return bool(secretstorage.check_service_availability(conn))
    finally:
        conn.close()


def _collections() -> list[str]:
    conn = secretstorage.dbus_init()
    try:
        return [c.collection_path for c in secretstorage.get_all_collections(conn)]
    finally:
        conn.close()


@contextlib.contextmanager
def secret_service(
    *, daemon: bool = True, unlock: bool = True, root: Path | None = None
) -> Iterator[SecretServiceEnv]:
    """A private session bus (and gnome-keyring-daemon, unless ``daemon=False``) under ``root``
    (a new temp dir by default, removed afterwards). ``DBUS_SESSION_BUS_ADDRESS`` points at the
    bus while the context is active. With ``unlock`` the login collection is created/unlocked
    with :data:`PASSWORD`."""
    _require_binaries()
    own_root = root is None
    # short path: unix socket paths are limited to 108 bytes
    env = SecretServiceEnv(Path(tempfile.mkdtemp(prefix="fu-ss-")) if root is None else root)
    for sub in ("home", "data", "config", "cache", "run"):
        (env.root / sub).mkdir(mode=0o700, exist_ok=True)
    saved = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    try:
        child_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(env.root / "home"),
            "XDG_DATA_HOME": str(env.root / "data"),
            "XDG_CONFIG_HOME": str(env.root / "config"),
            "XDG_CACHE_HOME": str(env.root / "cache"),
            "XDG_RUNTIME_DIR": str(env.root / "run"),
            "LANG": "C.UTF-8",
        }  # no DISPLAY / WAYLAND_DISPLAY: no prompt may ever reach a real screen
        bus = fs.start_bus(env.root / "run", "bus", env=child_env)
        env.procs.append(bus.proc)
        env.address = bus.address
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = env.address
        child_env["DBUS_SESSION_BUS_ADDRESS"] = env.address
        if daemon:
            cmd = [
                "gnome-keyring-daemon",
                "--foreground",
                "--components=secrets",
                f"--control-directory={env.root / 'run' / 'keyring'}",
            ]
            if unlock:
                cmd.append("--unlock")
            gkd = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=open(env.root / "gkd.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
                env=child_env,
            )
            env.procs.append(gkd)
            assert gkd.stdin is not None
            if unlock:
                gkd.stdin.write(PASSWORD.encode())
            gkd.stdin.close()
            _wait_for(_service_up, "org.freedesktop.secrets on the bus", env)
            if unlock:
                _wait_for(
                    lambda: "/org/freedesktop/secrets/collection/login" in _collections(),
                    "the login collection",
                    env,
                )
        yield env
    finally:
        for p in reversed(env.procs):
            fs.stop_process(p)
        if saved is None:
            os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SESSION_BUS_ADDRESS"] = saved
        if own_root:
            shutil.rmtree(env.root, ignore_errors=True)


@pytest.fixture(scope="session")
def real_keyring() -> Iterator[SecretServiceEnv]:
    """A running, unlocked gnome-keyring; ``keyring`` is set to the SecretService backend."""
    with secret_service() as env:
        previous = keyring.get_keyring()
        keyring.set_keyring(SecretService.Keyring())
        try:
            yield env
        finally:
            keyring.set_keyring(previous)


def _lookup(user: str) -> bytes | None:
    """The secret stored for ``user`` read straight through Secret Service (no ``keyring``)."""
    conn = secretstorage.dbus_init()
    try:
        items = list(
            secretstorage.search_items(conn, {"service": KEYRING_SERVICE, "username": user})
        )
        return items[0].get_secret() if items else None
    finally:
        conn.close()


def _template(user: str) -> Template:
    rng = np.random.default_rng(7)
    t = Template(user=user, model_sha256="c" * 64, threshold=0.4)
    for label in ("default", "glasses"):
        emb = rng.standard_normal(128).astype(np.float32)
        thumb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        t.add_anchor(Anchor.new(emb, thumb, label=label))
    return t


def test_provider_creates_and_reads_key(real_keyring: SecretServiceEnv) -> None:
    kp = KeyringKeyProvider()  # default: keyring.get_keyring(), the SecretService backend
    assert _lookup("kp-user") is None
    with pytest.raises(TemplateKeyError, match="no key in the keyring"):
        kp.get_key("kp-user", create=False)
    key = kp.get_key("kp-user", create=True)
    assert len(key) == 32
    assert kp.get_key("kp-user", create=False) == key
    assert kp.get_key("kp-user", create=True) == key  # not regenerated
    assert _lookup("kp-user") == base64.b64encode(key)  # really in the Secret Service
    # an explicitly injected backend sees the same item
    assert KeyringKeyProvider(backend=SecretService.Keyring()).get_key("kp-user", False) == key
    kp.delete_key("kp-user")
    assert _lookup("kp-user") is None


def test_store_round_trip_through_real_keyring(
    real_keyring: SecretServiceEnv, tmp_path: Path
) -> None:
    store = TemplateStore(tmp_path / "tpl")
    assert isinstance(store.key_provider, KeyringKeyProvider)
    t = _template("rt-user")
    store.save(t)
    secret = _lookup("rt-user")
    assert secret is not None
    u = TemplateStore(tmp_path / "tpl").load("rt-user", expected_model_sha256="c" * 64)
    assert u.labels() == ["default", "glasses"]
    np.testing.assert_array_equal(u.embeddings(), t.embeddings())
    np.testing.assert_array_equal(u.thumbnails(), t.thumbnails())
    # the key is in the on-disk login keyring, encrypted with the keyring password
    login = real_keyring.keyrings_dir / "login.keyring"
    assert login.is_file()
    assert secret not in login.read_bytes()
    store.delete("rt-user", remove_key=True)
    assert _lookup("rt-user") is None and not store.exists("rt-user")


def test_key_survives_daemon_restart(tmp_path: Path) -> None:
    """The key is persisted in login.keyring: a new daemon unlocked with the same password
    decrypts a template written under the previous one."""
    root = Path(tempfile.mkdtemp(prefix="fu-ss-"))
    try:
        kp = KeyringKeyProvider(backend=SecretService.Keyring())
        store = TemplateStore(tmp_path, kp)
        with secret_service(root=root):
            store.save(_template("persist"))
        with secret_service(root=root):
            assert store.load("persist").labels() == ["default", "glasses"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_locked_keyring_is_unavailable(tmp_path: Path) -> None:
    with secret_service():
        kp = KeyringKeyProvider(backend=SecretService.Keyring())
        kp.get_key("locked-user", create=True)
        conn = secretstorage.dbus_init()
        try:
            login = secretstorage.Collection(conn, "/org/freedesktop/secrets/collection/login")
            login.lock()
            assert login.is_locked()
        finally:
            conn.close()
        with pytest.raises(KeyringUnavailableError, match="locked") as ei:
            kp.get_key("locked-user", create=False)
        assert "unlock" in str(ei.value)
        with pytest.raises(KeyringUnavailableError):
            TemplateStore(tmp_path, kp).save(_template("locked-user"))
        assert not (tmp_path / "locked-user.tpl").exists()


def test_no_login_collection_is_unavailable(tmp_path: Path) -> None:
    """gnome-keyring started without --unlock has no collection; creating one needs a prompt,
    which cannot be shown, so nothing can be stored."""
    with secret_service(unlock=False):
        kp = KeyringKeyProvider(backend=SecretService.Keyring())
        with pytest.raises(KeyringUnavailableError, match="SecretService"):
            kp.get_key("nobody", create=True)


def test_no_secret_service_on_bus(tmp_path: Path) -> None:
    with secret_service(daemon=False):
        kp = KeyringKeyProvider(backend=SecretService.Keyring())
        with pytest.raises(KeyringUnavailableError):
            kp.get_key("nobody", create=True)
        with pytest.raises(KeyringUnavailableError):
            TemplateStore(tmp_path, kp).save(_template("nobody"))
        assert not (tmp_path / "nobody.tpl").exists()


def test_fail_backend_is_unavailable(tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(KeyringUnavailableError, match="gnome-keyring") as ei:
            TemplateStore(tmp_path).save(_template("nobody"))
        assert "never stored unencrypted" in str(ei.value)
        assert not any(tmp_path.iterdir())
    finally:
        keyring.set_keyring(previous)
