"""pywork.py: an allocation-heavy Python workload for recording demos and benchmarks.

Run with PYTHONMALLOC=malloc so every object allocation reaches malloc.  It builds and
drops dictionaries, strings, lists and JSON documents in phases, so the trace has a
ramp, a plateau, churn and a release: a realistic mix of small objects and a few
larger buffers.  Deterministic for a given scale (first argument, default 1).
"""
import json
import random
import sys

scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
rng = random.Random(42)


def record(i):
    return {
        "id": i,
        "name": "user-%d" % i,
        "tags": [rng.choice("abcdefgh") * rng.randint(1, 12) for _ in range(rng.randint(0, 6))],
        "score": rng.random(),
    }


# ramp: a growing table of records, some of them kept
table = {}
for i in range(int(60000 * scale)):
    table[i] = record(i)
    if i % 3 == 0:
        table.pop(i // 2, None)

# churn: serialise and parse batches, keep a sliding window
window = []
for batch in range(int(60 * scale)):
    items = [record(batch * 1000 + j) for j in range(400)]
    doc = json.dumps(items)
    back = json.loads(doc)
    window.append(back)
    if len(window) > 8:
        window.pop(0)

# text processing: split, join, count
words = " ".join("w%d" % rng.randint(0, 5000) for _ in range(int(200000 * scale))).split()
counts = {}
for w in words:
    counts[w] = counts.get(w, 0) + 1
top = sorted(counts.items(), key=lambda kv: -kv[1])[:10]

# release most of it, then a short second peak
del table, window, words
blobs = [bytearray(rng.randint(1000, 200000)) for _ in range(int(200 * scale))]
print(len(top), sum(len(b) for b in blobs) > 0)
