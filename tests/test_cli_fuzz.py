"""Fuzzing the real `faceunlock` CLI (subprocesses) with random, truncated and bit-flipped
templates, configs and images, from a fixed seed (``FACEUNLOCK_FUZZ_SEED`` picks another).

For every input: the exit code is a documented :class:`AuthStatus` other than ERROR (1, "an
unexpected internal error"), stderr holds no traceback, and no file of the inputs, the config,
data or state folders changed. Images go through one `embed` run over a folder of them (a bad
image is skipped with a warning, the run goes on) and an image-folder camera; templates
through `list`, with the template key in a real gnome-keyring on a private bus (when
installed); configs through `config get`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock.cli import IMAGE_EXTS
from faceunlock.config import KEYS, Config, to_toml
from faceunlock.engine.templates import (
    MAX_FILE_SIZE,
    Anchor,
    KeyringKeyProvider,
    Template,
    TemplateStore,
)
from faceunlock.errors import AuthStatus
from tests.fakes.bad_images import huge_headers

SEED = int(os.environ.get("FACEUNLOCK_FUZZ_SEED", "1100"))
CLI = Path(sys.executable).parent / "faceunlock"
DOCUMENTED = {int(s) for s in AuthStatus} - {int(AuthStatus.ERROR)}
USER = "fuzz"

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- the sandbox


def _tree_hash(root: Path) -> dict[str, str]:
    """Every file under ``root``: relative path -> sha256 of its bytes and its mode."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(block)
            out[str(p.relative_to(root))] = f"{h.hexdigest()} {p.stat().st_mode:o}"
    return out


class Sandbox:
    """Private XDG folders and an inputs folder; :meth:`run` runs the CLI and checks it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inputs = root / "inputs"
        self.out = root / "out"
        self.watched = [self.inputs, *(root / d for d in ("config", "data", "state"))]
        for d in (*self.watched, self.out, root / "cache", root / "home"):
            d.mkdir(parents=True, exist_ok=True)
        self.data = root / "data" / "faceunlock"
        self.config = self.inputs / "config.toml"
        self.failures: list[str] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "FACEUNLOCK_"))}
        env.update(
            HOME=str(self.root / "home"),
            XDG_CONFIG_HOME=str(self.root / "config"),
            XDG_DATA_HOME=str(self.root / "data"),
            XDG_STATE_HOME=str(self.root / "state"),
            XDG_CACHE_HOME=str(self.root / "cache"),
            FACEUNLOCK_CONFIG=str(self.config),
        )
        return env

    def run(self, what: str, *argv: str, expect: set[int] | None = None) -> tuple[int, str, str]:
        """Run ``faceunlock ARGV``; record a failure (``what`` names the input) unless the exit
        code is documented (and in ``expect`` when given), there is no traceback and nothing
        watched changed."""
        before = [_tree_hash(d) for d in self.watched]
        r = subprocess.run([str(CLI), *argv], env=self.env(), capture_output=True, text=True,
                           timeout=300, stdin=subprocess.DEVNULL)
        after = [_tree_hash(d) for d in self.watched]
        problems = []
        if r.returncode not in DOCUMENTED or (expect is not None and r.returncode not in expect):
            problems.append(f"exit {r.returncode}")
        if "Traceback" in r.stderr:
            problems.append("traceback")
        for d, b, a in zip(self.watched, before, after, strict=True):
            if a != b:
                problems.append(f"{d.name}/ changed: {sorted(set(a.items()) ^ set(b.items()))}")
        if problems:
            tail = r.stderr.strip().splitlines()[-3:]
            self.failures.append(f"{what} (seed {SEED}): {'; '.join(problems)}; stderr: {tail}")
        return r.returncode, r.stdout, r.stderr

    def check(self) -> None:
        assert not self.failures, "\n".join(self.failures)


@pytest.fixture()
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "sb")


def _flip(data: bytes, rng: random.Random, at_least: int = 0) -> bytes:
    """``data`` with 1-8 random bits flipped at offsets ≥ ``at_least``."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(min(at_least, len(b) - 1), len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _cut(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(0, len(data))]


# --------------------------------------------------------------------------- configs


_VALUES = ["nan", "inf", "-inf", "1e308", "-1", "0", str(2**70), '"x"', '""', "true", "[1, 2]",
           "{a = 1}", "3.5", "99999999999999999999999", '"\\u0000"', "1979-05-27", "'''a'''"]


_VERSIONS = ["1", "0", "2", "-1", "1.0", '"1"']


def _random_config(rng: random.Random) -> bytes:
    sections: dict[str, list[str]] = {}
    for _ in range(rng.randint(1, 6)):
        key = rng.choice([*KEYS[1:], "auth.nope", "camera", "x.y"])
        section, _, name = key.partition(".")
        sections.setdefault(section, []).append(f"{name or 'k'} = {rng.choice(_VALUES)}")
    lines = [f"schema_version = {rng.choice(_VERSIONS)}"]
    for s, items in sections.items():
        lines += [f"[{s}]", *items]
    return "\n".join(lines).encode()


def test_fuzzed_configs(sandbox: Sandbox) -> None:
    rng = random.Random(SEED)
    valid = to_toml(Config()).encode()
    cases: list[tuple[str, bytes]] = [("valid", valid)]
    cases += [(f"truncated {i}", _cut(valid, rng)) for i in range(5)]
    cases += [(f"bit-flipped {i}", _flip(valid, rng)) for i in range(5)]
    cases += [(f"random bytes {i}", rng.randbytes(rng.randint(1, 4096))) for i in range(3)]
    cases += [(f"random values {i}", _random_config(rng)) for i in range(8)]
    cases += [
        ("nested 100000 deep", b"a = " + b"[" * 100_000 + b"]" * 100_000),
        ("over 1 MiB", b"#" * (2 << 20)),
        ("NUL bytes", valid.replace(b"\n", b"\0", 3)),
        ("BOM and CRLF", b"\xef\xbb\xbf" + valid.replace(b"\n", b"\r\n")),
    ]
    for what, data in cases:
        sandbox.config.write_bytes(data)
        sandbox.run(f"config {what}", "config", "get",
                    expect={0, int(AuthStatus.BAD_INPUT)})
    sandbox.check()


# --------------------------------------------------------------------------- templates


def _peer(name: str) -> object:
    """A test module of tests/engine by file (it is not on sys.path when run on its own)."""
    if name in sys.modules:  # pytest imported it already (same name: rootdir-less import)
        return sys.modules[name]
    path = Path(__file__).parent / "engine" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


@contextlib.contextmanager
def _keyring() -> Iterator[KeyringKeyProvider | None]:
    """A real, unlocked gnome-keyring on a private bus (DBUS_SESSION_BUS_ADDRESS set while
    it runs) and a provider using it; None where gnome-keyring is not installed."""
    try:
        ss = _peer("test_keyring_secret_service")
    except pytest.skip.Exception:
        yield None
        return
    try:
        ctx = ss.secret_service()  # type: ignore[attr-defined]
        env = ctx.__enter__()
    except pytest.skip.Exception:
        yield None
        return
    try:
        from keyring.backends import SecretService

        assert env.address
        yield KeyringKeyProvider(backend=SecretService.Keyring())
    finally:
        ctx.__exit__(None, None, None)


def test_fuzzed_templates(sandbox: Sandbox, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    with _keyring() as provider:
        if provider is None:  # no keyring: only framing errors are reached
            good = b"FUTPL\x01" + rng.randbytes(12) + (100).to_bytes(4, "big") + bytes(100)
            other = good
        else:
            store = TemplateStore(tmp_path / "made", provider)
            np_rng = np.random.default_rng(SEED)
            for user in (USER, "other"):
                t = Template(user=user, model_sha256="d" * 64, threshold=0.5)
                for _ in range(3):
                    t.add_anchor(Anchor.new(
                        np_rng.standard_normal(128).astype(np.float32),
                        np_rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
                store.save(t)
            good = store.path(USER).read_bytes()
            other = store.path("other").read_bytes()
        cases: list[tuple[str, bytes | None]] = []
        if provider is not None:
            cases.append(("valid", good))
        cases += [
            ("empty", b""),
            ("another user's template", other if provider is not None else b"FUTPL"),
            ("trailing garbage", good + rng.randbytes(7)),
            ("over the size limit", None),
        ]
        cases += [(f"truncated {i}", _cut(good, rng)) for i in range(5)]
        cases += [(f"bit-flipped {i}", _flip(good, rng)) for i in range(4)]
        cases += [(f"bit-flipped ciphertext {i}", _flip(good, rng, 22)) for i in range(3)]
        cases += [(f"random bytes {i}", rng.randbytes(rng.randint(1, 3000))) for i in range(2)]
        cases += [("magic + random", b"FUTPL" + rng.randbytes(200))]
        sandbox.data.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = sandbox.data / f"{USER}.tpl"
        for what, data in cases:
            if data is None:
                with open(target, "wb") as f:
                    f.write(good)
                    f.truncate(MAX_FILE_SIZE + 1)  # sparse
            else:
                target.write_bytes(data)
            target.chmod(0o600)
            expect = {0} if what == "valid" else None
            sandbox.run(f"template {what}", "list", "--user", USER, "--json", expect=expect)
    sandbox.check()


# --------------------------------------------------------------------------- images


def _base_image() -> np.ndarray:
    default = Path(__file__).resolve().parents[2] / "shared"
    shared = Path(os.environ.get("FACEUNLOCK_SHARED", default))
    lfw = shared / "datasets" / "lfw" / "images"
    face = lfw / "AJ_Cook" / "AJ_Cook_0001.jpg"
    if face.is_file():
        img = cv2.imread(str(face))
        if img is not None:
            return img
    yy, xx = np.mgrid[0:120, 0:160]
    return np.dstack([xx, yy, (xx + yy) // 2]).astype(np.uint8)


FORMATS = (".png", ".jpg", ".bmp", ".webp", ".tif", ".ppm", ".pgm", ".gif", ".jp2", ".avif")


def _fuzzed_images(rng: random.Random) -> dict[str, bytes]:
    base = _base_image()
    files: dict[str, bytes] = {}
    for ext in FORMATS:
        if not cv2.haveImageWriter(ext):
            continue
        ok, buf = cv2.imencode(ext, base[:, :, 0] if ext == ".pgm" else base)
        if not ok:
            continue
        data = buf.tobytes()
        name = ext[1:]
        # `embed` lists only its own suffixes; the decoder goes by the content anyway
        suffix = ext if ext in IMAGE_EXTS else ext + ".png"
        files[f"{name}-valid{suffix}"] = data
        for i in range(3):
            files[f"{name}-cut{i}{suffix}"] = _cut(data, rng)
            files[f"{name}-flip{i}{suffix}"] = _flip(data, rng)
        files[f"{name}-header-flip{suffix}"] = _flip(data[:64], rng) + data[64:]
    for fmt, data in huge_headers(rng.randint(7000, 60000), rng.randint(7000, 60000)).items():
        files[f"bomb.{fmt}" if f".{fmt}" in IMAGE_EXTS else f"bomb.{fmt}.png"] = data
    for i in range(4):
        files[f"random{i}.{rng.choice(['png', 'jpg', 'bmp', 'webp'])}"] = rng.randbytes(
            rng.randint(0, 5000))
    return files


def test_fuzzed_images(sandbox: Sandbox) -> None:
    rng = random.Random(SEED)
    folder = sandbox.inputs / "images"
    folder.mkdir()
    files = _fuzzed_images(rng)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    out = sandbox.out / "e.npz"
    rc, stdout, _ = sandbox.run("embed on the fuzzed folder", "embed", str(folder), "--out",
                                str(out), "--json", expect={0})
    if rc == 0:
        summary = json.loads(stdout)
        assert summary["images"] == len(files)
        assert summary["found"] + summary["unreadable"] <= len(files)
        assert summary["unreadable"] >= 7  # at least the bombs
    names = sorted(files)
    for name in [names[0], "bomb.png", *rng.sample(names, 3)]:
        p = str(folder / name)
        sandbox.run(f"verify {name}", "verify", p, p)
    sandbox.run("image-folder camera", "live", "--source", str(folder), "--max-frames", "200")
    sandbox.check()
