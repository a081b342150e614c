"""The calculator's shape of a model a run can name: from a GGUF header (the embedded model, a
.gguf file) or a folder's config.json, without loading any weights."""
from __future__ import annotations

import json
from pathlib import Path

from qcompare.core.shape import ModelShape


def shape_of_gguf(path: Path, name: str = "") -> ModelShape:
    """Layers, sizes and vocabulary from a GGUF file's metadata; tied when the file has no
    `output.weight`; the file's non-tensor bytes kept for GGUF sizes."""
    from qcompare.methods.kernels.gguf_types import source_metadata_bytes
    from qcompare.sources import gguf_header

    r = gguf_header.reader(path)

    def field(key: str):
        f = r.fields[key]
        return f.parts[f.data[0]].tolist()[0] if len(f.data) == 1 else [f.parts[i] for i in f.data]

    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    names = {t.name for t in r.tensors}
    heads = int(field(f"{arch}.attention.head_count"))
    return ModelShape(
        name=name or Path(path).stem, layers=int(field(f"{arch}.block_count")),
        hidden=int(field(f"{arch}.embedding_length")), heads=heads,
        kv_heads=int(field(f"{arch}.attention.head_count_kv")) if
        f"{arch}.attention.head_count_kv" in r.fields else heads,
        intermediate=int(field(f"{arch}.feed_forward_length")),
        vocab=len(r.fields["tokenizer.ggml.tokens"].data), tied="output.weight" not in names,
        attention_bias="blk.0.attn_q.bias" in names, basis="the GGUF file's header",
        gguf_metadata_bytes=source_metadata_bytes(path))


def shape_of_folder(folder: Path, name: str = "") -> ModelShape:
    return ModelShape.from_config(json.loads((Path(folder) / "config.json").read_text()),
                                  name or Path(folder).name)


def shape_of(spec) -> ModelShape | None:
    """The shape of a ModelSpec's model, or None where it cannot be read here (a hub id not in
    the local cache, a folder without config.json, an architecture the calculator does not
    model)."""
    from qcompare.sources import models

    try:
        gguf = models.source_gguf(spec)
        if gguf is not None:
            return shape_of_gguf(gguf, spec.label if hasattr(spec, "label") else "")
        folder = Path(spec.ref) if spec.source == "local" else models._hub_folder(spec.ref)
        return shape_of_folder(folder)
    except Exception:  # noqa: BLE001 - a page shows "no shape"; it must not fail on a model
        return None
