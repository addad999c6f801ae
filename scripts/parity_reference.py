#!/usr/bin/env python3
"""Reference vectors for the embedding parity test, made with sentence-transformers.

Picks real texts from the shipped ParlSpeech corpus in its four languages (German, English,
Spanish, Dutch). For each language it takes 60 sentences of 40 to 300 characters, one per speech
from the first speeches in file order. It adds the 10 longest whole speeches, which exceed the
model's 256 tokens. It embeds them with sentence-transformers on the CPU and writes

  OUT/texts.jsonl        one object per text: id, language, kind (sentence or speech), text
  OUT/reference.parquet  columns id and embedding (list of float32), in the same order
  OUT/reference.json     the versions and settings that produced the vectors

Usage (in an environment with the packages pinned in OUT/README.md):
  python scripts/parity_reference.py --model DIR [--corpus fixtures/parlspeech/corpus.parquet] [--out tests/parity]

DIR is the all-MiniLM-L6-v2 directory that scripts/fetch-model.sh unpacks.
"""
import argparse
import json
import platform
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

LANGUAGES = ["de", "en", "es", "nl"]
SENTENCES_PER_LANGUAGE = 60
SPEECHES_PER_LANGUAGE = 10
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def pick_texts(corpus: Path) -> list[dict]:
    table = pq.read_table(corpus, columns=["id", "language", "text"]).to_pylist()
    picked = []
    for language in LANGUAGES:
        rows = [r for r in table if r["language"] == language]
        sentences = []
        for row in rows:
            if len(sentences) == SENTENCES_PER_LANGUAGE:
                break
            for index, sentence in enumerate(SENTENCE_END.split(row["text"].strip())):
                if 40 <= len(sentence) <= 300:
                    sentences.append({"id": f"{row['id']}:s{index}", "language": language, "kind": "sentence", "text": sentence})
                    break
        speeches = [
            {"id": f"{row['id']}:speech", "language": language, "kind": "speech", "text": row["text"]}
            for row in sorted(rows, key=lambda r: -len(r["text"]))[:SPEECHES_PER_LANGUAGE]
        ]
        if len(sentences) < SENTENCES_PER_LANGUAGE:
            raise SystemExit(f"only {len(sentences)} sentences found for {language}")
        picked += sentences + speeches
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--corpus", default=Path("fixtures/parlspeech/corpus.parquet"), type=Path)
    parser.add_argument("--out", default=Path("tests/parity"), type=Path)
    args = parser.parse_args()

    texts = pick_texts(args.corpus)
    torch.manual_seed(0)
    model = SentenceTransformer(str(args.model), device="cpu")
    vectors = model.encode([t["text"] for t in texts], batch_size=32, convert_to_numpy=True).astype(np.float32)

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "texts.jsonl", "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(t, ensure_ascii=False) + "\n")
    embedding = pa.array(list(vectors), type=pa.list_(pa.float32()))
    pq.write_table(pa.table({"id": [t["id"] for t in texts], "embedding": embedding}), args.out / "reference.parquet")
    settings = {
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "python": platform.python_version(),
        "device": "cpu",
        "batch_size": 32,
        "max_seq_length": model.max_seq_length,
        "texts": len(texts),
    }
    (args.out / "reference.json").write_text(json.dumps(settings, indent=2) + "\n")
    print(f"{len(texts)} texts, vectors {vectors.shape}, written to {args.out}")


if __name__ == "__main__":
    main()
