#!/usr/bin/env python3
"""Reference implementation of the clusterclip-v1 and uniform-v1 samplers.

This file shares no code with the Rust module. It uses only the standard
library: hashlib for SHA-256 and a ChaCha20 block function written here from
the description in RFC 8439, section 2.3. It is deliberately plain (lists,
list.remove, a literal "all documents clipped" check) so that it checks the
data structures of the Rust module rather than repeating them.

Usage:
    python3 scripts/clusterclip_reference.py --json tests/clusterclip_vectors.json
    python3 scripts/clusterclip_reference.py --markdown   # vectors for the docs

With no option the script runs its self-checks and prints nothing else.
"""

import argparse
import hashlib
import json
import struct
import sys

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF

CLUSTERCLIP_DOMAIN = b"clusterclip-v1"
UNIFORM_DOMAIN = b"uniform-v1"

POLICIES = ("stop", "random_fallback", "reset_counts")

# ---------------------------------------------------------------------------
# ChaCha20 (RFC 8439, section 2.3)
# ---------------------------------------------------------------------------

# The four constant words: "expand 32-byte k" read as little-endian u32.
CHACHA_CONSTANTS = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)


def rotate_left32(value, bits):
    return ((value << bits) | (value >> (32 - bits))) & MASK32


def quarter_round(state, a, b, c, d):
    state[a] = (state[a] + state[b]) & MASK32
    state[d] = rotate_left32(state[d] ^ state[a], 16)
    state[c] = (state[c] + state[d]) & MASK32
    state[b] = rotate_left32(state[b] ^ state[c], 12)
    state[a] = (state[a] + state[b]) & MASK32
    state[d] = rotate_left32(state[d] ^ state[a], 8)
    state[c] = (state[c] + state[d]) & MASK32
    state[b] = rotate_left32(state[b] ^ state[c], 7)


def chacha20_block_words(key, last_four_words):
    """Run the ChaCha20 block function and return the 16 output words.

    `key` is 32 bytes. `last_four_words` are state words 12 to 15. RFC 8439
    puts a 32-bit block counter in word 12 and a 96-bit nonce in words 13 to
    15. rand_chacha 0.3 puts a 64-bit counter in words 12 and 13 and a 64-bit
    stream id in words 14 and 15. The two layouts agree while the nonce and
    stream id are zero and the counter is below 2**32.
    """
    initial = list(CHACHA_CONSTANTS)
    initial += list(struct.unpack("<8I", key))
    initial += list(last_four_words)

    working = list(initial)
    for _ in range(10):
        # Column rounds.
        quarter_round(working, 0, 4, 8, 12)
        quarter_round(working, 1, 5, 9, 13)
        quarter_round(working, 2, 6, 10, 14)
        quarter_round(working, 3, 7, 11, 15)
        # Diagonal rounds.
        quarter_round(working, 0, 5, 10, 15)
        quarter_round(working, 1, 6, 11, 12)
        quarter_round(working, 2, 7, 8, 13)
        quarter_round(working, 3, 4, 9, 14)

    return [(working[i] + initial[i]) & MASK32 for i in range(16)]


def rfc8439_block(key, counter, nonce):
    """Return the 64 keystream bytes of one block in the RFC 8439 layout."""
    nonce_words = struct.unpack("<3I", nonce)
    words = chacha20_block_words(key, (counter & MASK32,) + nonce_words)
    return struct.pack("<16I", *words)


def check_rfc8439_block_vector():
    """Check the block function against RFC 8439, section 2.3.2."""
    key = bytes(range(32))
    nonce = bytes.fromhex("000000090000004a00000000")
    expected_words = [
        0xE4E7F110, 0x15593BD1, 0x1FDD0F50, 0xC47120A3,
        0xC7F4D1C7, 0x0368C033, 0x9AAA2204, 0x4E6CD4C3,
        0x466482D2, 0x09AA9F07, 0x05D7C214, 0xA2028BD9,
        0xD19C12B5, 0xB94E16DE, 0xE883D0CB, 0x4E3C50A2,
    ]
    block = rfc8439_block(key, 1, nonce)
    if block != struct.pack("<16I", *expected_words):
        raise AssertionError("ChaCha20 block function does not match RFC 8439 section 2.3.2")
    if block[:4] != bytes.fromhex("10f1e7e4"):
        raise AssertionError("ChaCha20 block serialization is not little-endian")


# ---------------------------------------------------------------------------
# Random stream, bounded integers and shuffle
# ---------------------------------------------------------------------------


def derive_key(seed, domain):
    """Return SHA-256(seed as 8 little-endian bytes || domain)."""
    if not 0 <= seed <= MASK64:
        raise ValueError(f"seed {seed} is outside the u64 range")
    return hashlib.sha256(struct.pack("<Q", seed) + domain).digest()


class RandomStream:
    """The ChaCha20 keystream (nonce zero, counter from zero) read as little-endian u64."""

    def __init__(self, seed, domain):
        self.key = derive_key(seed, domain)
        self.block_counter = 0
        self.buffer = b""
        self.position = 0

    def next_u64(self):
        if self.position == len(self.buffer):
            counter = self.block_counter
            words = chacha20_block_words(self.key, (counter & MASK32, counter >> 32, 0, 0))
            self.buffer = struct.pack("<16I", *words)
            self.position = 0
            self.block_counter += 1
        (value,) = struct.unpack_from("<Q", self.buffer, self.position)
        self.position += 8
        return value

    def bounded(self, n):
        return bounded(n, self.next_u64)

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.bounded(i + 1)
            items[i], items[j] = items[j], items[i]


def bounded(n, next_u64):
    """Return a uniform integer in [0, n) by Lemire's nearly-divisionless method."""
    if not 1 <= n <= MASK64:
        raise ValueError(f"bounded() needs 1 <= n < 2**64, got {n}")
    product = next_u64() * n
    low = product & MASK64
    if low < n:
        threshold = ((1 << 64) - n) % n
        while low < threshold:
            product = next_u64() * n
            low = product & MASK64
    return product >> 64


def check_bounded_rejection():
    """Check that bounded() rejects x = 0 for n = 3 and then takes the next value."""
    values = iter([0, 1 << 63])
    if bounded(3, lambda: next(values)) != 1:
        raise AssertionError("bounded(3) did not reject x = 0")
    if bounded(1, lambda: MASK64) != 0:
        raise AssertionError("bounded(1) is not 0")


# ---------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------


def clusterclip_v1(labels, clip, draws, seed, policy="stop"):
    """Return the clusterclip-v1 stream as a dict of the fields the Rust Stream has."""
    if clip < 1:
        raise ValueError(f"invalid clip threshold {clip}: it must be at least 1")
    if draws < 1:
        raise ValueError(f"invalid number of draws {draws}: request at least 1 draw")
    if not labels:
        raise ValueError("no documents to sample: the label list is empty")
    if policy not in POLICIES:
        raise ValueError(f"invalid exhaustion policy {policy!r}: expected one of {POLICIES}")

    rng = RandomStream(seed, CLUSTERCLIP_DOMAIN)
    documents = len(labels)
    clusters = sorted(set(labels))
    members = {label: [] for label in clusters}
    for index, label in enumerate(labels):
        members[label].append(index)

    counts = [0] * documents
    active = list(clusters)
    passes = {label: [] for label in clusters}
    indices = []
    exhausted_at = []
    resets = []
    stopped_early = False
    fallback_from = None

    while len(indices) < draws:
        if not active:
            if policy == "stop":
                stopped_early = True
                break
            if policy == "random_fallback":
                fallback_from = len(indices)
                while len(indices) < draws:
                    index = rng.bounded(documents)
                    counts[index] += 1
                    indices.append(index)
                break
            # reset_counts
            resets.append(len(indices))
            counts = [0] * documents
            active = list(clusters)
            passes = {label: [] for label in clusters}
            continue

        label = active[rng.bounded(len(active))]
        if not passes[label]:
            new_pass = [i for i in members[label] if counts[i] < clip]
            rng.shuffle(new_pass)
            passes[label] = new_pass

        index = passes[label].pop(0)
        counts[index] += 1
        indices.append(index)

        if not passes[label] and all(counts[i] == clip for i in members[label]):
            active.remove(label)
            exhausted_at.append([label, len(indices)])

    return {
        "sampler": "clusterclip-v1",
        "indices": indices,
        "counts": counts,
        "stopped_early": stopped_early,
        "exhausted_at": exhausted_at,
        "resets": resets,
        "fallback_from": fallback_from,
    }


def uniform_v1(documents, draws, seed):
    """Return the uniform-v1 stream: whole shuffled epochs of 0..N-1, the last one cut short."""
    if documents < 1:
        raise ValueError(f"no documents to sample: the corpus has {documents} documents")
    if draws < 1:
        raise ValueError(f"invalid number of draws {draws}: request at least 1 draw")

    rng = RandomStream(seed, UNIFORM_DOMAIN)
    indices = []
    while len(indices) < draws:
        epoch = list(range(documents))
        rng.shuffle(epoch)
        indices.extend(epoch[: draws - len(indices)])

    counts = [0] * documents
    for index in indices:
        counts[index] += 1

    return {
        "sampler": "uniform-v1",
        "indices": indices,
        "counts": counts,
        "stopped_early": False,
        "exhausted_at": [],
        "resets": [],
        "fallback_from": None,
    }


# ---------------------------------------------------------------------------
# Test vectors
# ---------------------------------------------------------------------------

U64_MAX = MASK64


def pseudo_random_labels(count, clusters, seed):
    """Return deterministic, unevenly sized labels for the larger vectors (not part of the spec)."""
    state = seed
    labels = []
    for _ in range(count):
        # A 64-bit LCG (Knuth's MMIX constants). Its quality does not matter here.
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK64
        # Squaring the draw skews the labels towards low values, so cluster sizes differ.
        fraction = (state >> 11) / float(1 << 53)
        labels.append(int(clusters * fraction * fraction) * 7 + 3)
    return labels


CLUSTERCLIP_CASES = [
    # (name, labels, clip, draws, seed, policy)
    ("hand_checkable_c1", [0, 0, 1], 1, 3, 0, "stop"),
    ("single_document", [5], 2, 4, 1, "stop"),
    ("uneven_1_and_7_c1_stop", [4, 9, 9, 9, 9, 9, 9, 9], 1, 20, 42, "stop"),
    ("non_contiguous_c2_stop", [10, 3, 11, 3, 10, 10, 11, 3, 3, 10], 2, 25, 0, "stop"),
    ("seed_max_c3_stop", [2, 2, 7, 2, 7, 7, 7, 1], 3, 30, U64_MAX, "stop"),
    ("c3_below_capacity", [0, 1, 1, 2, 2, 2, 3, 3, 3, 3], 3, 12, 42, "stop"),
    ("random_fallback_c1", [3, 10, 11, 10, 11, 11], 1, 15, 1, "random_fallback"),
    ("random_fallback_c2_seed_max", [0, 0, 0, 0, 0, 0, 0, 5], 2, 40, U64_MAX, "random_fallback"),
    ("reset_counts_c2", [3, 10, 11, 10, 11, 11, 10], 2, 40, 42, "reset_counts"),
    ("reset_counts_c1_seed_0", [1, 1, 1, 1, 1, 1, 1, 2], 1, 20, 0, "reset_counts"),
    ("singleton_clusters", list(range(20, 0, -1)), 2, 50, 7, "stop"),
    ("larger_uneven_c2", pseudo_random_labels(300, 12, 1), 2, 700, 42, "stop"),
    ("larger_reset_c3", pseudo_random_labels(150, 9, 2), 3, 1000, 1, "reset_counts"),
    ("larger_fallback_c1", pseudo_random_labels(120, 20, 3), 1, 400, 0, "random_fallback"),
]

UNIFORM_CASES = [
    # (name, documents, draws, seed)
    ("uniform_one_document", 1, 3, 0),
    ("uniform_partial_epoch", 10, 7, 1),
    ("uniform_three_and_a_half_epochs", 5, 17, 42),
    ("uniform_seed_max", 8, 20, U64_MAX),
    ("uniform_larger", 257, 1000, 0),
]

KEYSTREAM_SEEDS = [0, 42]

# (seed, domain, n, number of bounded() calls). n = 2**63 + 1 rejects about half of all x.
BOUNDED_CASES = [
    (0, CLUSTERCLIP_DOMAIN, 3, 16),
    (42, CLUSTERCLIP_DOMAIN, 10, 16),
    (1, CLUSTERCLIP_DOMAIN, (1 << 63) + 1, 16),
    (42, UNIFORM_DOMAIN, (1 << 64) - 1, 8),
]


def build_vectors():
    keystreams = []
    for domain in (CLUSTERCLIP_DOMAIN, UNIFORM_DOMAIN):
        for seed in KEYSTREAM_SEEDS:
            rng = RandomStream(seed, domain)
            keystreams.append({
                "seed": seed,
                "domain": domain.decode("ascii"),
                "key_hex": rng.key.hex(),
                "first_u64": [rng.next_u64() for _ in range(8)],
            })

    bounded_sequences = []
    for seed, domain, n, calls in BOUNDED_CASES:
        rng = RandomStream(seed, domain)
        outputs = [rng.bounded(n) for _ in range(calls)]
        bounded_sequences.append({
            "seed": seed,
            "domain": domain.decode("ascii"),
            "n": n,
            "outputs": outputs,
            # The next raw u64 shows how many values the calls consumed.
            "next_u64_after": rng.next_u64(),
        })

    cases = []
    for name, labels, clip, draws, seed, policy in CLUSTERCLIP_CASES:
        cases.append({
            "name": name,
            "sampler": "clusterclip-v1",
            "labels": labels,
            "clip": clip,
            "draws": draws,
            "seed": seed,
            "policy": policy,
            "expected": clusterclip_v1(labels, clip, draws, seed, policy),
        })
    for name, documents, draws, seed in UNIFORM_CASES:
        cases.append({
            "name": name,
            "sampler": "uniform-v1",
            "documents": documents,
            "draws": draws,
            "seed": seed,
            "expected": uniform_v1(documents, draws, seed),
        })

    return {
        "format": "clipaudit-sampler-vectors-1",
        "note": "Generated by scripts/clusterclip_reference.py. All integers are exact, "
                "and some exceed 2**53.",
        "keystreams": keystreams,
        "bounded": bounded_sequences,
        "cases": cases,
    }


def check_vector_coverage(vectors):
    """Fail if the vector set no longer covers what the Rust tests rely on."""
    cases = vectors["cases"]
    clusterclip = [case for case in cases if case["sampler"] == "clusterclip-v1"]
    seeds = {case["seed"] for case in cases}
    for seed in (0, 1, 42, U64_MAX):
        if seed not in seeds:
            raise AssertionError(f"no case uses seed {seed}")
    for clip in (1, 2, 3):
        if clip not in {case["clip"] for case in clusterclip}:
            raise AssertionError(f"no case uses clip {clip}")
    for policy in POLICIES:
        if policy not in {case["policy"] for case in clusterclip}:
            raise AssertionError(f"no case uses policy {policy}")
    if not any(case["draws"] > case["clip"] * len(case["labels"]) for case in clusterclip):
        raise AssertionError("no case asks for more draws than the total capacity")
    if not any(c["draws"] > 2 * c["documents"] for c in cases if c["sampler"] == "uniform-v1"):
        raise AssertionError("no uniform-v1 case spans more than two epochs")
    if not any(case["expected"]["resets"] for case in clusterclip):
        raise AssertionError("no reset_counts case resets")
    if not any(case["expected"]["fallback_from"] is not None for case in clusterclip):
        raise AssertionError("no random_fallback case falls back")
    if not any(case["expected"]["stopped_early"] for case in clusterclip):
        raise AssertionError("no stop case stops early")


def format_markdown(vectors):
    """Return the small vectors as Markdown for docs/clusterclip-v1.md."""
    lines = ["### Random stream", ""]
    for stream in vectors["keystreams"]:
        lines.append(f"`{stream['domain']}`, seed {stream['seed']}:")
        lines.append("")
        lines.append(f"- key: `{stream['key_hex']}`")
        lines.append("- first 8 `next_u64` values:")
        lines.append("")
        lines.append("  ```text")
        for value in stream["first_u64"]:
            lines.append(f"  {value:>20}  0x{value:016x}")
        lines.append("  ```")
        lines.append("")

    lines += ["### bounded", ""]
    for sequence in vectors["bounded"]:
        lines.append(
            f"`{sequence['domain']}`, seed {sequence['seed']}, {len(sequence['outputs'])} calls "
            f"of bounded({sequence['n']}): `{sequence['outputs']}`; the next raw u64 is "
            f"{sequence['next_u64_after']}."
        )
        lines.append("")

    lines += ["### Streams", ""]
    for case in vectors["cases"]:
        expected = case["expected"]
        if case["sampler"] == "clusterclip-v1":
            if len(case["labels"]) > 20:
                continue
            lines.append(
                f"**{case['name']}**: clusterclip-v1, labels `{case['labels']}`, "
                f"C = {case['clip']}, T = {case['draws']}, seed {case['seed']}, "
                f"policy `{case['policy']}`."
            )
        else:
            if case["documents"] > 20:
                continue
            lines.append(
                f"**{case['name']}**: uniform-v1, N = {case['documents']}, "
                f"T = {case['draws']}, seed {case['seed']}."
            )
        lines.append("")
        lines.append("```text")
        lines.append(f"indices       {expected['indices']}")
        lines.append(f"counts        {expected['counts']}")
        lines.append(f"stopped_early {str(expected['stopped_early']).lower()}")
        lines.append(f"exhausted_at  {[tuple(pair) for pair in expected['exhausted_at']]}")
        lines.append(f"resets        {expected['resets']}")
        fallback_from = expected["fallback_from"]
        lines.append(f"fallback_from {'none' if fallback_from is None else fallback_from}")
        lines.append("```")
        lines.append("")
    return "\n".join(lines)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="write the test vectors to PATH")
    parser.add_argument("--markdown", action="store_true",
                        help="print the small vectors as Markdown")
    args = parser.parse_args(argv)

    check_rfc8439_block_vector()
    check_bounded_rejection()
    vectors = build_vectors()
    check_vector_coverage(vectors)

    if args.json:
        with open(args.json, "w", encoding="utf-8") as output:
            json.dump(vectors, output, indent=1)
            output.write("\n")
    if args.markdown:
        print(format_markdown(vectors))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
