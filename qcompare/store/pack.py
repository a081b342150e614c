"""Demo packs: measured results carried from one state folder to another in one file.

A pack (`.qcpack`) is a zip archive:

* `manifest.json`: {"format": "qcpack", "version", "created_at" (UTC), "machine", "who",
  "qcompare_version", "rows": [key, ...], "baselines": [reference key, ...],
  "sensitivity": [key, ...], "generation_models": [spec key, ...], "logprobs": bool};
* `results/<key>.parquet`: each chosen row's stored file, as it is;
* `tokens/<key>.npz`: its per-token scores (paired intervals, the KL distribution, drift);
* `baselines/<reference key>/…`: each row's baseline side files: the text each token owns
  (`pieces.json`), the baseline's top tokens (`top.npy`), its targets and NLL, and its noise
  floor (`noise.json`); its log-probabilities (`logprobs.npy`, 2 bytes x vocabulary per token,
  about 200 MB at quick for the embedded model) and `meta.json` only with `logprobs=True`: without
  them the baseline is not complete here, and a new run on it computes the pass again;
* `sensitivity/<key>.parquet|json`: sensitivity sweeps of the rows' models.

`load` merges a pack into a state folder: each file is checked (a row file holds exactly one row,
whose key is its file name and whose headline numbers are finite, `results.check_finite`; any
path outside the four folders is refused), then written atomically where none is stored: a key
already here is kept as it is (de-duplicated by key), so loading twice changes nothing. The
manifest is kept in `<state_dir>/packs/` with the keys it added: the provenance (machine, date,
who) of each row a pack brought. Each row keeps its own `node` and `started_at`.
"""
from __future__ import annotations

import datetime as dt
import getpass
import io
import json
import os
import platform
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq

from qcompare import __version__
from qcompare.core.errors import UserError
from qcompare.store.results import ResultStore, check_finite

FORMAT, VERSION = "qcpack", 1
FOLDERS = ("results", "tokens", "baselines", "sensitivity")
LOGPROB_FILES = ("logprobs.npy", "meta.json")


@dataclass
class Loaded:
    added: list[str] = field(default_factory=list)       # files written
    kept: list[str] = field(default_factory=list)        # already here: left as they were
    rows_added: int = 0
    rows_kept: int = 0
    manifest: dict = field(default_factory=dict)


def write(state_dir: str | os.PathLike, output: str | os.PathLike, keys: list[str],
          who: str = "", logprobs: bool = False, generation_models: list[str] = ()) -> dict:
    """Write the rows `keys` of `state_dir` (module doc) to `output`; returns the manifest."""
    state = Path(state_dir)
    results = ResultStore(state)
    rows, files = [], {}
    for key in keys:
        row = results.get(key)
        if row is None:
            raise UserError(key="errors.pack_no_row", row=key[:16])
        rows.append(row)
        files[f"results/{key}.parquet"] = results.path(key)
        tokens = state / "tokens" / f"{key}.npz"
        if tokens.is_file():
            files[f"tokens/{key}.npz"] = tokens
    baselines = sorted({r["reference_key"] for r in rows if r.get("reference_key")})
    for rk in baselines:
        folder = state / "baselines" / rk
        for p in sorted(folder.glob("*")) if folder.is_dir() else []:
            if p.is_file() and not p.name.startswith(".") and (logprobs or p.name not in LOGPROB_FILES):
                files[f"baselines/{rk}/{p.name}"] = p
    fingerprints = {r.get("model_fingerprint") for r in rows}
    sensitivity = []
    for meta in sorted((state / "sensitivity").glob("*.json")):
        try:
            facts = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if facts.get("model_fingerprint") in fingerprints:
            sensitivity.append(meta.stem)
            for p in (meta, meta.with_suffix(".parquet")):
                if p.is_file():
                    files[f"sensitivity/{p.name}"] = p
    manifest = {"format": FORMAT, "version": VERSION,
                "created_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "machine": platform.node(), "who": who or _user(),
                "qcompare_version": __version__, "rows": list(keys), "baselines": baselines,
                "sensitivity": sensitivity, "generation_models": list(generation_models),
                "logprobs": logprobs}
    out = Path(output)
    fd, tmp = tempfile.mkstemp(dir=out.resolve().parent, prefix=f".{out.name}-", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("manifest.json", json.dumps(manifest, indent=1))
            for name, path in files.items():
                z.write(path, name)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return manifest


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def read_manifest(source) -> dict:
    """The manifest of a pack (a path or a file object), checked to be one."""
    try:
        with zipfile.ZipFile(source) as z:
            manifest = json.loads(z.read("manifest.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise UserError(key="errors.pack_not_a_pack", error=f"{type(e).__name__}: {e}") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise UserError(key="errors.pack_not_a_pack",
                        error=f"format {manifest.get('format')!r} version {manifest.get('version')!r}")
    return manifest


def _safe(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] not in FOLDERS \
            or any(part.startswith(".") for part in p.parts):
        raise UserError(key="errors.pack_bad_path", name=name)
    return p


def _check_row(name: str, data: bytes) -> str:
    """A row file's key, after checking it holds one finite row named by its key."""
    key = PurePosixPath(name).stem
    try:
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
    except Exception as e:  # noqa: BLE001 - any unreadable file is refused with why
        raise UserError(key="errors.pack_bad_row", name=name, error=f"{type(e).__name__}: {e}") from None
    if len(rows) != 1 or rows[0].get("key") != key:
        raise UserError(key="errors.pack_bad_row", name=name,
                        error=f"{len(rows)} row(s), not the one row of key {key[:16]}")
    check_finite(rows[0])
    return key


def load(state_dir: str | os.PathLike, source) -> Loaded:
    """Merge the pack at `source` (a path or a file object) into `state_dir` (module doc). Every
    file is checked before anything is written: a bad pack changes nothing."""
    state = Path(state_dir)
    manifest = read_manifest(source)
    with zipfile.ZipFile(source) as z:
        entries = [(i.filename, _safe(i.filename)) for i in z.infolist()
                   if not i.is_dir() and i.filename != "manifest.json"]
        data = {name: z.read(name) for name, _ in entries}
    row_keys = {name: _check_row(name, blob) for name, blob in data.items()
                if name.startswith("results/")}
    out = Loaded(manifest=manifest)
    for name, rel in entries:
        target = state.joinpath(*rel.parts)
        if target.exists():
            out.kept.append(name)
            out.rows_kept += name in row_keys
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-pack-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data[name])
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        out.added.append(name)
        out.rows_added += name in row_keys
    record = state / "packs"
    record.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    (record / f"{stamp}-{os.getpid()}.json").write_text(json.dumps(
        {**manifest, "loaded_at": stamp, "rows_added": [row_keys[n] for n in out.added if n in row_keys]},
        indent=1))
    return out


def provenance(state_dir: str | os.PathLike) -> dict[str, dict]:
    """key -> {machine, who, created_at} of every row a pack added to this state folder."""
    out: dict[str, dict] = {}
    for p in sorted((Path(state_dir) / "packs").glob("*.json")):
        try:
            m = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        for key in m.get("rows_added", []):
            out[key] = {k: m.get(k, "") for k in ("machine", "who", "created_at")}
    return out
