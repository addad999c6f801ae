"""The random baseline as numpy users would write it: shuffled passes over all documents.

Run: python3 benches/uniform_numpy.py (numpy 1.26.4, as pinned in
scripts/requirements-conformance.txt). It draws the same number of documents as
`uniform-v1` in benches/sample_scale.rs: 100,000,000 draws over 10,000,000 documents.
"""
import time, resource, numpy as np
n, t = 10_000_000, 100_000_000
start = time.perf_counter()
rng = np.random.default_rng(7)
out = np.empty(t, dtype=np.uint32)
pos = 0
while pos < t:
    perm = rng.permutation(n).astype(np.uint32)
    take = min(n, t - pos)
    out[pos:pos + take] = perm[:take]
    pos += take
secs = time.perf_counter() - start
print(f"numpy {np.__version__}: {t} draws in {secs:.2f} s, {t/secs/1e6:.1f} M draws/s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MiB")
