"""Training data: chip datasets and cache, the P x K sampler, augmentations."""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from faceunlock.errors import InputError  # noqa: E402
from faceunlock.training import augment  # noqa: E402
from faceunlock.training.data import (  # noqa: E402
    FolderDataset,
    LfwPeopleDataset,
    PKSampler,
    read_people,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------------------------
# PKSampler
# ---------------------------------------------------------------------------------------------

# class sizes: some below k=4, some above
SIZES = [5, 1, 3, 4, 2, 6, 4, 7, 1, 4]
LABELS = np.repeat(np.arange(len(SIZES)), SIZES)
rng_perm = np.random.default_rng(0).permutation(len(LABELS))
LABELS = LABELS[rng_perm]  # labels scattered over the dataset order


def test_pk_sampler_batch_composition():
    sampler = PKSampler(LABELS, p=3, k=4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == len(SIZES) // 3
    seen: list[int] = []
    for b in batches:
        assert len(b) == 12
        counts = Counter(int(LABELS[i]) for i in b)
        assert len(counts) == 3 and set(counts.values()) == {4}
        for c in counts:
            members = [i for i in b if LABELS[i] == c]
            # grouped by identity
            assert b[b.index(members[0]) : b.index(members[0]) + 4] == members
            if SIZES[c] >= 4:
                assert len(set(members)) == 4
            else:  # every image of a small identity, then repeats
                assert set(members) == {int(i) for i in np.flatnonzero(np.equal(LABELS, c))}
        seen += list(counts)
    assert len(seen) == len(set(seen))  # no identity twice in one pass


def test_pk_sampler_deterministic():
    a = list(PKSampler(LABELS, 2, 3, seed=5))
    assert a == list(PKSampler(LABELS, 2, 3, seed=5))
    assert a != list(PKSampler(LABELS, 2, 3, seed=6))
    s = PKSampler(LABELS, 2, 3, seed=5)
    s.set_epoch(1)
    b = list(s)
    assert b != a and b == list(s)
    s.set_epoch(0)
    assert list(s) == a


def test_pk_sampler_more_batches_than_a_pass():
    s = PKSampler(torch.as_tensor(LABELS), p=4, k=2, seed=0, batches_per_epoch=7)
    batches = list(s)
    assert len(batches) == 7
    for b in batches:
        assert len({int(LABELS[i]) for i in b}) == 4
    with pytest.raises(ValueError):
        PKSampler(LABELS, p=11, k=2)


def test_pk_sampler_with_dataloader():
    ds = torch.utils.data.TensorDataset(torch.arange(len(LABELS)), torch.as_tensor(LABELS))
    loader = torch.utils.data.DataLoader(ds, batch_sampler=PKSampler(LABELS, 2, 2, seed=3))
    idx, lab = next(iter(loader))
    assert idx.shape == (4,) and torch.equal(lab, torch.as_tensor(LABELS)[idx])


# ---------------------------------------------------------------------------------------------
# augmentations
# ---------------------------------------------------------------------------------------------


def chips(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 20, 24, 3), generator=g, dtype=torch.uint8)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("fn", [augment.hflip, augment.color_jitter, augment.ir_like])
def test_augmentations_keep_dtype_shape_and_are_seeded(fn):
    x = chips()
    a = fn(x, generator=gen(3))
    assert a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, fn(x, generator=gen(3)))
    assert not torch.equal(a, x)
    assert torch.equal(x, chips())  # the input is not modified


def test_hflip_probability_extremes():
    x = chips()
    assert torch.equal(augment.hflip(x, p=1.0, generator=gen(0)), x.flip(2))
    assert torch.equal(augment.hflip(x, p=0.0, generator=gen(0)), x)


def test_color_jitter_identity_at_zero_strength():
    x = chips()
    assert torch.equal(augment.color_jitter(x, 0.0, 0.0, 0.0, generator=gen(0)), x)


def test_ir_like_is_grey_and_stretched():
    x = (chips() // 4 + 60).to(torch.uint8)  # low-contrast input, levels 60..123
    y = augment.ir_like(x, p=1.0, blur_sigma=0.0, generator=gen(0))
    assert torch.equal(y[..., 0], y[..., 1]) and torch.equal(y[..., 0], y[..., 2])
    flat = y[..., 0].reshape(len(y), -1).float()
    assert (flat.min(dim=1).values <= 1).all() and (flat.max(dim=1).values >= 254).all()
    blurred = augment.ir_like(x, p=1.0, blur_sigma=0.8, generator=gen(0))
    assert blurred.float().std() < y.float().std()  # the blur smooths the noise
    assert torch.equal(augment.ir_like(x, p=0.0, generator=gen(0)), x)


def test_augmenter_deterministic_under_seed():
    x = chips(16)
    a, b, c = augment.Augmenter(7), augment.Augmenter(7), augment.Augmenter(8)
    first = a(x)
    assert first.dtype == torch.uint8 and first.shape == x.shape
    assert torch.equal(first, b(x))
    assert not torch.equal(first, c(x))
    second = a(x)
    assert not torch.equal(first, second)  # the sequence moves on
    a.reseed(7)
    assert torch.equal(a(x), first)


def test_augment_rejects_bad_input():
    with pytest.raises(TypeError):
        augment.hflip(chips().float())
    with pytest.raises(ValueError):
        augment.color_jitter(torch.zeros(2, 5, 5, 1, dtype=torch.uint8))


# ---------------------------------------------------------------------------------------------
# datasets: cache logic with a stand-in pipeline (no models, no LFW)
# ---------------------------------------------------------------------------------------------


@dataclass
class _Obs:
    chip: np.ndarray
    fallback: bool
    embedding: np.ndarray


class FakePipeline:
    """Chip = the image resized to 150x150; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def observe(self, image, select="all", fallback_center=False):
        assert select == "center" and fallback_center
        self.calls += 1
        chip = cv2.resize(image, (150, 150), interpolation=cv2.INTER_NEAREST)
        return [_Obs(chip, bool(image[0, 0, 0] > 127), np.full(128, image.mean(), np.float32))]


def _write(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((40, 30, 3), value, np.uint8))


def test_folder_dataset_and_cache(tmp_path):
    root = tmp_path / "faces"
    for person, values in {"bob": [10, 200], "alice": [50], "carol": [90, 130, 170]}.items():
        for n, v in enumerate(values):
            _write(root / person / f"{n}.png", v)
    (root / "carol" / "notes.txt").write_text("not an image")
    (root / "carol" / "broken.jpg").write_bytes(b"not a jpeg")
    cache = tmp_path / "cache" / "chips.npz"
    fake = FakePipeline()
    ds = FolderDataset(root, cache=cache, pipeline=fake)
    assert fake.calls == 6 and cache.is_file()
    assert ds.classes == ["alice", "bob", "carol"] and ds.num_classes == 3
    assert ds.paths == ["alice/0.png", "bob/0.png", "bob/1.png", "carol/0.png", "carol/1.png",
                        "carol/2.png"]
    assert ds.labels.tolist() == [0, 1, 1, 2, 2, 2]
    assert ds.chips.shape == (6, 150, 150, 3) and ds.chips.dtype == np.uint8
    assert ds.chips[:, 0, 0, 0].tolist() == [50, 10, 200, 90, 130, 170]
    assert ds.fallback.tolist() == [False, False, True, False, True, True]
    chip, label = ds[2]
    assert chip.dtype == torch.uint8 and chip.shape == (150, 150, 3) and label == 1
    x, y = ds.batch([0, 5])
    assert x.shape == (2, 150, 150, 3) and y.dtype == torch.int64 and y.tolist() == [0, 2]

    # second time: everything from the cache
    again = FolderDataset(root, cache=cache, pipeline=fake)
    assert fake.calls == 6
    np.testing.assert_array_equal(again.chips, ds.chips)
    np.testing.assert_array_equal(again.embeddings, ds.embeddings)

    # a new image: only it is computed, the cache grows
    _write(root / "alice" / "1.png", 77)
    grown = FolderDataset(root, cache=cache, pipeline=fake, min_images=2)
    assert fake.calls == 7
    assert grown.classes == ["alice", "bob", "carol"] and len(grown) == 7
    # min_images drops identities
    assert FolderDataset(root, cache=cache, pipeline=fake, min_images=3).classes == ["carol"]
    assert fake.calls == 7


def test_read_people(tmp_path):
    f = tmp_path / "people.txt"
    f.write_text("2\nAlice_A\t3\nBob_B 1\n")
    assert read_people(f) == [("Alice_A", 3), ("Bob_B", 1)]
    f.write_text("Alice_A\t3\nBob_B 1\n")  # lfw-names.txt style, no count line
    assert read_people(f) == [("Alice_A", 3), ("Bob_B", 1)]
    f.write_text("3\nAlice_A\t3\nBob_B 1\n")
    with pytest.raises(InputError, match="header"):
        read_people(f)
    f.write_text("1\nAlice_A three\n")
    with pytest.raises(InputError):
        read_people(f)


# ---------------------------------------------------------------------------------------------
# datasets on LFW with the real engine
# ---------------------------------------------------------------------------------------------


def _lfw_people(lfw: Path, n: int) -> list[tuple[str, int]]:
    """The first ``n`` people of lfw-names.txt with 2 or 3 images."""
    people = [p for p in read_people(lfw / "lfw-names.txt") if 2 <= p[1] <= 3]
    return people[:n]


@pytest.fixture(scope="module")
def engine_pipeline():
    from faceunlock.training.data import default_pipeline

    return default_pipeline(threads=1)


def test_folder_dataset_on_lfw_matches_engine(lfw_dir, tmp_path, engine_pipeline):
    from faceunlock.engine.imageio import read_image

    people = _lfw_people(lfw_dir, 2)
    root = tmp_path / "lfw"
    for name, count in people:
        (root / name).mkdir(parents=True)
        for i in range(1, count + 1):
            shutil.copy(lfw_dir / "images" / name / f"{name}_{i:04d}.jpg", root / name)
    cache = tmp_path / "chips.npz"
    ds = FolderDataset(root, cache=cache, pipeline=engine_pipeline)
    assert ds.classes == sorted(n for n, _ in people)
    assert len(ds) == sum(c for _, c in people)
    for i in (0, len(ds) - 1):
        obs = engine_pipeline.observe(read_image(root / ds.paths[i]), select="center",
                                      fallback_center=True)
        np.testing.assert_array_equal(ds.chips[i], obs[0].chip)
        np.testing.assert_allclose(ds.embeddings[i], obs[0].embedding, atol=1e-5)

    # the LFW people-list dataset over the same images shares the cache format
    people_file = tmp_path / "people.txt"
    people_file.write_text(f"{len(people)}\n" + "".join(f"{n}\t{c}\n" for n, c in people))
    lfw_ds = LfwPeopleDataset(people_file, root, cache=cache, pipeline=engine_pipeline)
    assert lfw_ds.classes == ds.classes and lfw_ds.labels.tolist() == ds.labels.tolist()
    np.testing.assert_array_equal(lfw_ds.chips, ds.chips)
