from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from faceunlock.engine.templates import (
    Anchor,
    KeyFileKeyProvider,
    KeyringKeyProvider,
    StaticKeyProvider,
    SystemTemplateStore,
    Template,
    TemplateStore,
    install_system_copy,
)
from faceunlock.errors import (
    AuthStatus,
    InputError,
    KeyringUnavailableError,
    RootRequiredError,
    TemplateCorruptError,
    TemplateError,
    TemplateKeyError,
    TemplateModelMismatchError,
    TemplateNotFoundError,
)
from faceunlock.paths import user_data_dir

SHA_A = "a" * 64
SHA_B = "b" * 64


def make_anchor(rng: np.random.Generator, label: str = "default") -> Anchor:
    emb = rng.standard_normal(128).astype(np.float32)
    emb /= np.linalg.norm(emb)
    thumb = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    return Anchor.new(emb, thumb, label=label, quality={"sharpness": 0.7, "det_score": 0.99})


def make_template(user: str = "alice", n: int = 3, seed: int = 0) -> Template:
    rng = np.random.default_rng(seed)
    t = Template(
        user=user,
        model_sha256=SHA_A,
        threshold=0.42,
        security_level="balanced",
        calibration={"genuine_mean": 0.31, "genuine_std": 0.05, "n": n},
    )
    t.add_anchors(make_anchor(rng) for _ in range(n))
    return t


@pytest.fixture
def key() -> bytes:
    return StaticKeyProvider.generate()


@pytest.fixture
def store(tmp_path: Path, key: bytes) -> TemplateStore:
    return TemplateStore(tmp_path / "store", StaticKeyProvider(key))


def assert_same(a: Template, b: Template) -> None:
    assert a.user == b.user
    assert a.model_sha256 == b.model_sha256
    assert a.threshold == b.threshold
    assert a.security_level == b.security_level
    assert a.calibration == b.calibration
    assert a.created == b.created
    assert a.updated == b.updated
    assert a.schema_version == b.schema_version
    assert [x.id for x in a.anchors] == [x.id for x in b.anchors]
    assert [x.label for x in a.anchors] == [x.label for x in b.anchors]
    assert [x.created for x in a.anchors] == [x.created for x in b.anchors]
    assert [x.quality for x in a.anchors] == [x.quality for x in b.anchors]
    np.testing.assert_array_equal(a.embeddings(), b.embeddings())
    np.testing.assert_array_equal(a.thumbnails(), b.thumbnails())


def test_round_trip(store: TemplateStore) -> None:
    t = make_template()
    p = store.save(t)
    assert p == store.path("alice") and store.exists("alice")
    u = store.load("alice", expected_model_sha256=SHA_A)
    assert_same(t, u)
    assert u.source == p and not u.from_backup
    e = u.embeddings()
    assert e.shape == (3, 128) and e.dtype == np.float32
    assert u.thumbnails().shape == (3, 64, 64, 3) and u.thumbnails().dtype == np.uint8
    assert store.users() == ["alice"]


def test_file_is_encrypted(store: TemplateStore) -> None:
    t = make_template()
    store.save(t)
    blob = store.path("alice").read_bytes()
    assert blob.startswith(b"FUTPL\x01")
    assert b"alice" not in blob and b"genuine_mean" not in blob
    assert t.anchors[0].embedding.tobytes()[:16] not in blob
    # a fresh nonce per write: same template, different bytes
    store.save(t)
    assert store.path("alice").read_bytes()[6:18] != blob[6:18]


def test_modes(store: TemplateStore) -> None:
    store.save(make_template())
    store.save(make_template())
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path("alice").stat().st_mode) == 0o600
    assert stat.S_IMODE(store.backup_path("alice").stat().st_mode) == 0o600
    assert sorted(p.name for p in store.directory.iterdir()) == ["alice.tpl", "alice.tpl.bak"]


def test_existing_loose_dir_is_tightened(tmp_path: Path, key: bytes) -> None:
    d = tmp_path / "loose"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    TemplateStore(d, StaticKeyProvider(key)).save(make_template())
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_backup_is_previous_version(store: TemplateStore) -> None:
    t = make_template()
    store.save(t)
    first = store.path("alice").read_bytes()
    assert not store.backup_path("alice").exists()
    t.remove_anchor(t.anchors[0].id)
    store.save(t)
    assert store.backup_path("alice").read_bytes() == first
    second = store.path("alice").read_bytes()
    t.add_anchor(make_anchor(np.random.default_rng(5), "glasses"))
    store.save(t)
    assert store.backup_path("alice").read_bytes() == second  # exactly one backup, the last
    assert len(store.load("alice").anchors) == 3


def test_tamper_fails_authentication(store: TemplateStore) -> None:
    store.save(make_template())
    p = store.path("alice")
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(TemplateCorruptError, match="authentication failed") as ei:
        store.load("alice")
    assert ei.value.path == p
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("keep", [0, 3, 10, 33, -1, -100])
def test_truncation(store: TemplateStore, keep: int) -> None:
    store.save(make_template())
    p = store.path("alice")
    data = p.read_bytes()
    p.write_bytes(data[:keep])
    with pytest.raises(TemplateCorruptError, match="truncated"):
        store.load("alice")


def test_trailing_data(store: TemplateStore) -> None:
    store.save(make_template())
    p = store.path("alice")
    p.write_bytes(p.read_bytes() + b"x")
    with pytest.raises(TemplateCorruptError, match="trailing data"):
        store.load("alice")


def test_bad_magic_and_version(store: TemplateStore) -> None:
    store.save(make_template())
    p = store.path("alice")
    good = p.read_bytes()
    p.write_bytes(b"PK\x03\x04" + good[4:])
    with pytest.raises(TemplateCorruptError, match="bad magic"):
        store.load("alice")
    p.write_bytes(good[:5] + b"\x07" + good[6:])
    with pytest.raises(TemplateCorruptError, match="unsupported format version 7"):
        store.load("alice")


def test_framing_checked_before_key(tmp_path: Path) -> None:
    """A corrupt file is reported as such even when no key is available."""
    s = TemplateStore(tmp_path, StaticKeyProvider({}))
    s.path("alice").write_bytes(b"garbage!")
    with pytest.raises(TemplateCorruptError, match="bad magic"):
        s.load("alice")


def test_wrong_key(store: TemplateStore, tmp_path: Path) -> None:
    store.save(make_template())
    other = TemplateStore(store.directory, StaticKeyProvider(StaticKeyProvider.generate()))
    with pytest.raises(TemplateCorruptError, match=r"authentication failed.*key is wrong"):
        other.load("alice")


def test_missing_key(store: TemplateStore) -> None:
    store.save(make_template())
    s = TemplateStore(store.directory, StaticKeyProvider({}))
    with pytest.raises(TemplateKeyError, match="no key"):
        s.load("alice")


def test_model_mismatch(store: TemplateStore) -> None:
    store.save(make_template())
    with pytest.raises(TemplateModelMismatchError) as ei:
        store.load("alice", expected_model_sha256=SHA_B)
    msg = str(ei.value)
    assert "made with another face model" in msg and "encoder aaaaaaaaaaaa…" in msg
    assert "the encoder in use is bbbbbbbbbbbb…" in msg and "re-enrol" in msg
    assert ei.value.status == AuthStatus.TEMPLATE_ERROR
    assert store.load("alice").model_sha256 == SHA_A  # no expectation: loads fine


def test_not_found(store: TemplateStore) -> None:
    assert not store.exists("bob")
    with pytest.raises(TemplateNotFoundError, match="bob"):
        store.load("bob")


@pytest.mark.parametrize("target", ["backup", "main"])
def test_crash_during_write_keeps_previous(
    store: TemplateStore, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    t = make_template()
    store.save(t)
    before = store.path("alice").read_bytes()
    real_replace = os.replace
    victim = store.backup_path("alice") if target == "backup" else store.path("alice")

    def boom(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst) == victim:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", boom)
    t.add_anchor(make_anchor(np.random.default_rng(9), "glasses"))
    with pytest.raises(OSError, match="No space"):
        store.save(t)
    monkeypatch.undo()
    assert store.path("alice").read_bytes() == before
    assert len(store.load("alice").anchors) == 3
    leftovers = [p.name for p in store.directory.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_invalid_template_never_touches_file(store: TemplateStore) -> None:
    t = make_template()
    store.save(t)
    before = store.path("alice").read_bytes()
    t.calibration["bad"] = object()
    with pytest.raises(InputError, match="calibration"):
        store.save(t)
    t.calibration.pop("bad")
    t.anchors.clear()
    with pytest.raises(InputError, match="no anchors"):
        store.save(t)
    assert store.path("alice").read_bytes() == before


def test_swap_between_users_fails(tmp_path: Path, key: bytes) -> None:
    # the same key for everybody: only the associated data (user name) tells files apart
    s = TemplateStore(tmp_path, StaticKeyProvider(key))
    s.save(make_template("alice", seed=1))
    s.save(make_template("bob", seed=2))
    s.path("alice").replace(s.path("bob"))
    with pytest.raises(TemplateCorruptError, match="authentication failed"):
        s.load("bob")


def test_corrupt_main_backup_fallback(
    store: TemplateStore, caplog: pytest.LogCaptureFixture
) -> None:
    t = make_template()
    store.save(t)
    t.add_anchor(make_anchor(np.random.default_rng(3), "glasses"))
    store.save(t)
    p = store.path("alice")
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(TemplateCorruptError):
        store.load("alice")
    u = store.load("alice", allow_backup=True)
    assert u.from_backup and u.source == store.backup_path("alice")
    assert len(u.anchors) == 3
    assert "loaded the backup" in caplog.text
    # both broken: the main file's error, with a note about the backup
    b = store.backup_path("alice")
    b.write_bytes(b"nope")
    with pytest.raises(TemplateCorruptError, match="truncated") as ei:
        store.load("alice", allow_backup=True)
    assert any("backup" in n for n in getattr(ei.value, "__notes__", []))


def test_corrupt_main_is_not_rotated_into_backup(store: TemplateStore) -> None:
    t = make_template()
    store.save(t)
    store.save(t)
    good_backup = store.backup_path("alice").read_bytes()
    store.path("alice").write_bytes(b"FUTPL\x01junk")
    store.save(t)
    assert store.backup_path("alice").read_bytes() == good_backup
    store.load("alice")


def test_delete(tmp_path: Path) -> None:
    kp = StaticKeyProvider({})
    s = TemplateStore(tmp_path, kp)
    s.save(make_template())
    s.save(make_template())
    assert s.delete("alice")
    assert not s.exists("alice") and not s.backup_path("alice").exists()
    assert kp.get_key("alice", create=False)  # key kept unless asked
    assert not s.delete("alice", remove_key=True)
    with pytest.raises(TemplateKeyError):
        kp.get_key("alice", create=False)


def test_appearances() -> None:
    rng = np.random.default_rng(1)
    t = make_template(n=2)
    t.add_anchors([make_anchor(rng, "glasses"), make_anchor(rng, "glasses")])
    t.add_anchor(make_anchor(rng, "beard"))
    assert t.labels() == ["default", "glasses", "beard"]
    assert t.anchor_labels() == ["default"] * 2 + ["glasses"] * 2 + ["beard"]
    assert len(t.anchors_for("glasses")) == 2
    gone = t.remove_label("glasses")
    assert len(gone) == 2 and t.labels() == ["default", "beard"]
    a = t.anchors[0]
    assert t.remove_anchor(a.id) is a
    assert t.embeddings().shape == (2, 128)
    with pytest.raises(InputError):
        t.remove_label("glasses")
    with pytest.raises(InputError):
        t.remove_anchor("nope")
    with pytest.raises(InputError, match="already"):
        t.add_anchor(t.anchors[0])
    assert Template("x", SHA_A).embeddings().shape == (0, 128)


def test_anchor_validation() -> None:
    rng = np.random.default_rng(0)
    thumb = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(InputError, match="embedding"):
        Anchor.new(np.zeros(127, np.float32), thumb)
    with pytest.raises(InputError, match="NaN"):
        Anchor.new(np.full(128, np.nan, np.float32), thumb)
    with pytest.raises(InputError, match="thumbnail"):
        Anchor.new(rng.standard_normal(128), np.zeros((64, 64, 3), np.float32))
    with pytest.raises(InputError, match="label"):
        Anchor.new(rng.standard_normal(128), thumb, label="")
    a = Anchor.new(rng.standard_normal(128), thumb)  # float64 input is converted
    assert a.embedding.dtype == np.float32


@pytest.mark.parametrize("user", ["", "../x", ".hidden", "a/b", "-rf", "x" * 200, "a b"])
def test_bad_user_names(store: TemplateStore, user: str) -> None:
    with pytest.raises(InputError):
        store.path(user)


def test_default_directory_is_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_data_dir() == tmp_path / "xdg" / "faceunlock"
    assert TemplateStore().directory == tmp_path / "xdg" / "faceunlock"


def test_payload_round_trip_and_garbage() -> None:
    t = make_template()
    u = Template.from_payload(t.to_payload())
    assert_same(t, u)
    with pytest.raises(TemplateCorruptError, match="invalid payload"):
        Template.from_payload(b"\x00\x00\x00\x02{}")
    with pytest.raises(TemplateCorruptError, match="invalid payload"):
        Template.from_payload(t.to_payload()[:-1])


def test_keyring_provider_without_backend() -> None:
    from keyring.backends import fail, null

    for backend in (fail.Keyring(), null.Keyring()):
        kp = KeyringKeyProvider(backend=backend)
        with pytest.raises(KeyringUnavailableError, match="gnome-keyring"):
            kp.get_key("alice", create=True)
        s = TemplateStore(Path("/nonexistent"), kp)
        with pytest.raises(KeyringUnavailableError):
            s.save(make_template())


def test_key_file_provider(tmp_path: Path) -> None:
    kp = KeyFileKeyProvider(tmp_path / "keys")
    with pytest.raises(TemplateKeyError, match="does not exist"):
        kp.get_key("alice", create=False)
    k = kp.get_key("alice", create=True)
    assert len(k) == 32 and kp.get_key("alice", create=True) == k
    assert kp.get_key("alice", create=False) == k
    p = kp.key_path("alice")
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE(p.parent.stat().st_mode) == 0o700
    os.chmod(p, 0o644)
    with pytest.raises(TemplateKeyError, match="insecure mode 0644"):
        kp.get_key("alice", create=False)
    os.chmod(p, 0o600)
    p.write_bytes(b"short")
    with pytest.raises(TemplateKeyError, match="5 bytes"):
        kp.get_key("alice", create=False)
    kp.delete_key("alice")
    assert not p.exists()


def test_system_copy(tmp_path: Path, key: bytes) -> None:
    user_store = TemplateStore(tmp_path / "user", StaticKeyProvider(key))
    t = make_template()
    user_store.save(t)
    sys_store = SystemTemplateStore(tmp_path / "var-lib-faceunlock")
    p = install_system_copy(user_store.load("alice"), sys_store, require_root=False)
    assert p == tmp_path / "var-lib-faceunlock" / "alice.tpl"
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE(p.parent.stat().st_mode) == 0o700
    assert p.stat().st_uid == os.geteuid()
    keyfile = tmp_path / "var-lib-faceunlock" / "keys" / "alice.key"
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert stat.S_IMODE(keyfile.parent.stat().st_mode) == 0o700
    u = sys_store.load("alice", expected_model_sha256=SHA_A)
    assert_same(t, u)
    # re-encrypted with the system key: the user's key cannot open it, and vice versa
    with pytest.raises(TemplateCorruptError, match="authentication"):
        TemplateStore(sys_store.directory, StaticKeyProvider(key)).load("alice")
    assert keyfile.read_bytes() != key
    # a second install keeps one backup of the previous system copy
    install_system_copy(user_store.load("alice"), sys_store, require_root=False)
    assert sys_store.backup_path("alice").is_file()


def test_system_copy_requires_root(
    tmp_path: Path, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_store = TemplateStore(tmp_path / "user", StaticKeyProvider(key))
    user_store.save(make_template())
    t = user_store.load("alice")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(RootRequiredError, match="root"):
        install_system_copy(t, SystemTemplateStore(tmp_path / "sys"))
    assert not (tmp_path / "sys").exists()


def test_system_store_default_location() -> None:
    s = SystemTemplateStore()
    assert s.directory == Path("/var/lib/faceunlock")
    assert isinstance(s.key_provider, KeyFileKeyProvider)
    assert s.key_provider.directory == Path("/var/lib/faceunlock/keys")


def test_error_hierarchy() -> None:
    for cls in (
        TemplateCorruptError,
        TemplateModelMismatchError,
        TemplateNotFoundError,
        TemplateKeyError,
        KeyringUnavailableError,
    ):
        assert issubclass(cls, TemplateError)


def test_update_from_threads_and_stores_keeps_every_change(tmp_path: Path, key: bytes) -> None:
    """Read-modify-writes from 4 threads, each with its own TemplateStore of the same folder
    (as separate programs would have): every added anchor is kept, none is lost."""
    import threading

    TemplateStore(tmp_path / "t", StaticKeyProvider(key)).save(make_template())

    def work(i: int) -> None:
        s = TemplateStore(tmp_path / "t", StaticKeyProvider(key))
        rng = np.random.default_rng(100 + i)
        for _ in range(10):
            def add(cur: Template | None) -> Template:
                assert cur is not None
                cur.add_anchor(make_anchor(rng, f"t{i}"))
                return cur

            s.update("alice", add)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t = TemplateStore(tmp_path / "t", StaticKeyProvider(key)).load("alice")
    assert len(t) == 3 + 40
    assert sorted(t.labels()) == ["default", "t0", "t1", "t2", "t3"]


def test_lock_is_reentrant_and_save_inside_update(store: TemplateStore) -> None:
    store.save(make_template())
    with store.locked("alice"), store.locked("alice"):
        t = store.load("alice")
        t.threshold = 0.42
        store.save(t)
    assert store.load("alice").threshold == pytest.approx(0.42)
